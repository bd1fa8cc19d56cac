//! Per-user rate limiting at the front door: a token bucket per authenticated user.
//!
//! Each user may make `RATE_LIMIT_PER_MINUTE` requests per minute on average, in bursts of up to
//! that many: the bucket holds that many tokens and refills continuously. A request that finds
//! no token answers 429 with `Retry-After` (when the next token arrives) and the IETF
//! `RateLimit-Policy` / `RateLimit` fields (draft-ietf-httpapi-ratelimit-headers), which every
//! authenticated answer carries, so a client (a chat agent's tool loop, say) can slow down
//! before it is refused.
//!
//! The limit is **per replica**, not shared: a shared count would cost a state-store round trip
//! on every request and make the front door depend on the store for answers it otherwise serves
//! from memory. KEDA runs few task-api replicas and the Service spreads one user's requests over
//! them, so a user gets at most the limit times the replica count; the default is generous for
//! that reason. Buckets of users who have been idle long enough to be full again are forgotten,
//! which bounds the memory to the users active within one window.
//!
//! The arithmetic is a pure function of the bucket and the time ([`Bucket::take`]), tested
//! without a clock.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};

/// The name of the one policy, as the `RateLimit` fields quote it.
pub const POLICY: &str = "per-user";

/// The window the limit is expressed over, in seconds.
pub const WINDOW_SECS: u64 = 60;

/// Default `RATE_LIMIT_PER_MINUTE`: generous (a person clicking, a chat agent calling tools in a
/// loop), since the limit is per replica; the point is to stop a runaway client.
pub const DEFAULT_PER_MINUTE: u32 = 600;

/// Forget idle buckets once the map holds this many (and at most every `WINDOW_SECS`).
const PRUNE_ABOVE: usize = 10_000;

/// Marks a request as counted already: the in-process REST request of an MCP tool call
/// ([`crate::mcp::rest`]), whose `/mcp` request was counted when it came in. Only code in this
/// process can set an extension, so no client can skip its limit with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counted;

/// The limit as the response fields state it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    pub limit: u32,
    /// Whole tokens left after this request.
    pub remaining: u32,
    /// Seconds until the bucket is full again (`t` of the `RateLimit` field).
    pub reset_secs: u64,
}

/// What the limiter decided for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Allowed(Quota),
    /// Refused; a token arrives in `retry_after_secs` (at least 1).
    Limited {
        quota: Quota,
        retry_after_secs: u64,
    },
}

/// One user's bucket: `tokens` as of `at`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bucket {
    pub tokens: f64,
    pub at: DateTime<Utc>,
}

impl Bucket {
    /// A full bucket.
    pub fn full(limit: u32, at: DateTime<Utc>) -> Self {
        Self { tokens: f64::from(limit), at }
    }

    /// Refills for the time since `at`, then takes one token if there is one.
    pub fn take(&mut self, limit: u32, now: DateTime<Utc>) -> Decision {
        let capacity = f64::from(limit);
        let per_sec = capacity / WINDOW_SECS as f64;
        let elapsed = (now - self.at).num_milliseconds().max(0) as f64 / 1000.0;
        self.tokens = (self.tokens + elapsed * per_sec).min(capacity);
        self.at = now;
        let allowed = self.tokens >= 1.0;
        if allowed {
            self.tokens -= 1.0;
        }
        let quota = Quota {
            limit,
            remaining: self.tokens.floor() as u32,
            reset_secs: ceil_secs((capacity - self.tokens) / per_sec),
        };
        if allowed {
            Decision::Allowed(quota)
        } else {
            Decision::Limited { quota, retry_after_secs: ceil_secs((1.0 - self.tokens) / per_sec).max(1) }
        }
    }

    /// Whether the bucket is full again at `now` (nothing to remember).
    fn is_full(&self, limit: u32, now: DateTime<Utc>) -> bool {
        let elapsed = (now - self.at).num_milliseconds().max(0) as f64 / 1000.0;
        self.tokens + elapsed * f64::from(limit) / WINDOW_SECS as f64 >= f64::from(limit)
    }
}

/// Whole seconds, rounded up, ignoring the last bits of floating-point noise (59.000000001 s is
/// 59 s, not 60).
fn ceil_secs(secs: f64) -> u64 {
    (secs - 1e-6).ceil().max(0.0) as u64
}

/// The buckets of one replica.
#[derive(Debug)]
pub struct Limiter {
    /// Requests per minute per user; 0 turns limiting off.
    limit: u32,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    buckets: HashMap<String, Bucket>,
    pruned_at: Option<DateTime<Utc>>,
}

impl Limiter {
    pub fn new(per_minute: u32) -> Self {
        Self { limit: per_minute, state: Mutex::new(State { buckets: HashMap::new(), pruned_at: None }) }
    }

    /// `None` when limiting is off.
    pub fn check(&self, user: &str, now: DateTime<Utc>) -> Option<Decision> {
        if self.limit == 0 {
            return None;
        }
        // A poisoned lock only means another request panicked mid-update of plain numbers.
        let mut state = self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let prune_due = state.pruned_at.is_none_or(|at| (now - at).num_seconds() >= WINDOW_SECS as i64);
        if state.buckets.len() > PRUNE_ABOVE && prune_due {
            let limit = self.limit;
            state.buckets.retain(|_, bucket| !bucket.is_full(limit, now));
            state.pruned_at = Some(now);
        }
        let bucket = state.buckets.entry(user.to_owned()).or_insert_with(|| Bucket::full(self.limit, now));
        Some(bucket.take(self.limit, now))
    }

    /// How many users' buckets are held (for tests).
    pub fn tracked(&self) -> usize {
        self.state.lock().map(|s| s.buckets.len()).unwrap_or_default()
    }
}

/// Where the request's extractor leaves its quota for the response: the router's middleware puts
/// an empty one in every request and turns what it holds into the `RateLimit` fields.
#[derive(Debug, Clone, Default)]
pub struct QuotaSlot(Arc<Mutex<Option<Quota>>>);

impl QuotaSlot {
    pub fn set(&self, quota: Quota) {
        *self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(quota);
    }

    pub fn get(&self) -> Option<Quota> {
        *self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Adds `RateLimit-Policy` and `RateLimit` for `quota`.
pub fn insert_fields(headers: &mut axum::http::HeaderMap, quota: &Quota) {
    for (name, value) in [("ratelimit-policy", policy_field(quota.limit)), ("ratelimit", limit_field(quota))] {
        if let Ok(value) = axum::http::HeaderValue::from_str(&value) {
            headers.insert(name, value);
        }
    }
}

/// `RateLimit-Policy: "per-user";q=600;w=60`.
pub fn policy_field(limit: u32) -> String {
    format!("\"{POLICY}\";q={limit};w={WINDOW_SECS}")
}

/// `RateLimit: "per-user";r=599;t=1`.
pub fn limit_field(quota: &Quota) -> String {
    format!("\"{POLICY}\";r={};t={}", quota.remaining, quota.reset_secs)
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone as _;

    use super::*;

    fn t(secs: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_800_000_000 + secs, 0).single().unwrap_or_default()
    }

    #[test]
    fn a_burst_of_the_limit_passes_and_the_next_waits_for_one_token() {
        let mut bucket = Bucket::full(10, t(0));
        for n in 0..10 {
            match bucket.take(10, t(0)) {
                Decision::Allowed(quota) => assert_eq!(quota.remaining, 9 - n),
                other => panic!("request {n} refused: {other:?}"),
            }
        }
        // 10 per minute: one token every 6 s.
        assert_eq!(
            bucket.take(10, t(0)),
            Decision::Limited { quota: Quota { limit: 10, remaining: 0, reset_secs: 60 }, retry_after_secs: 6 }
        );
        assert!(matches!(bucket.take(10, t(3)), Decision::Limited { retry_after_secs: 3, .. }));
        assert!(matches!(bucket.take(10, t(6)), Decision::Allowed(Quota { remaining: 0, .. })));
    }

    #[test]
    fn an_idle_bucket_refills_to_the_limit_and_no_further() {
        let mut bucket = Bucket::full(60, t(0));
        for _ in 0..60 {
            assert!(matches!(bucket.take(60, t(0)), Decision::Allowed(_)));
        }
        assert!(matches!(bucket.take(60, t(30)), Decision::Allowed(Quota { remaining: 29, reset_secs: 31, .. })));
        assert!(matches!(bucket.take(60, t(3600)), Decision::Allowed(Quota { remaining: 59, reset_secs: 1, .. })));
        assert!(bucket.is_full(60, t(3601)));
    }

    #[test]
    fn users_have_their_own_buckets_and_zero_turns_limiting_off() {
        let limiter = Limiter::new(1);
        assert!(matches!(limiter.check("alice", t(0)), Some(Decision::Allowed(_))));
        assert!(matches!(limiter.check("alice", t(1)), Some(Decision::Limited { retry_after_secs: 59, .. })));
        assert!(matches!(limiter.check("bob", t(1)), Some(Decision::Allowed(_))));
        assert_eq!(limiter.tracked(), 2);
        assert_eq!(Limiter::new(0).check("alice", t(0)), None);
    }

    #[test]
    fn idle_users_are_forgotten_once_many_are_held() {
        let limiter = Limiter::new(60);
        for n in 0..=PRUNE_ABOVE {
            limiter.check(&format!("user-{n}"), t(0));
        }
        // A minute later every bucket is full again: the next check prunes them all but its own.
        limiter.check("late", t(61));
        assert_eq!(limiter.tracked(), 1);
    }

    #[test]
    fn fields_follow_the_ietf_draft() {
        assert_eq!(policy_field(600), "\"per-user\";q=600;w=60");
        assert_eq!(limit_field(&Quota { limit: 600, remaining: 12, reset_secs: 59 }), "\"per-user\";r=12;t=59");
    }
}

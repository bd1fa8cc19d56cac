//! Delivering one reminder on one channel, exactly once in effect: the delivery record, who
//! may send, and what an attempt's result makes of it.
//!
//! The notifier keeps one record per reminder event and channel
//! (`delivery:<event id>:<channel>` in the `deliveries` store). Before sending it *claims* the
//! record (an ETag-guarded write saying `sending`, with the time), so that two handlers of the
//! same event (a duplicate on another replica, a redelivery racing a retry job) cannot both
//! send: the loser sees a fresh claim and backs off. After the send it writes the result. The
//! window left is a crash, or a lost write, between the receiver's answer and that write: the
//! claim then goes stale after [`RetryPolicy::lease`] and the next handler sends again, with the
//! same `webhook-id` (the event id), so a receiver can tell.
//!
//! A failed attempt that is worth repeating (a timeout, 5xx, 429) is retried by a Dapr job due
//! at `next_attempt_at`, not by answering RETRY to the broker: a RETRY holds the partition, so
//! one person's broken webhook would delay everyone else's reminders behind it for as long as
//! the backoff lasts. A final failure (4xx, the budget spent) is `failed` and dead-lettered.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::events::ID_NAMESPACE;

/// The prefix of the notifier's retry jobs (`notify-<channel>-<attempt>-<uuid>`).
pub const JOB_PREFIX: &str = "notify-";

/// The longest `last_error` kept, in characters: a receiver's body can be anything.
pub const MAX_ERROR_CHARS: usize = 300;

/// Where a reminder is delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Channel {
    Webhook,
    Email,
}

impl Channel {
    pub const ALL: [Channel; 2] = [Channel::Webhook, Channel::Email];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Webhook => "webhook",
            Self::Email => "email",
        }
    }
}

/// The state key of the delivery of reminder event `event_id` on `channel`.
pub fn delivery_key(event_id: &str, channel: Channel) -> String {
    format!("delivery:{event_id}:{}", channel.as_str())
}

/// The name of the job that makes attempt `attempt` of that delivery: deterministic, so a
/// handler that schedules it twice schedules one job.
pub fn retry_job_name(event_id: &str, channel: Channel, attempt: u32) -> String {
    let id = Uuid::new_v5(&ID_NAMESPACE, event_id.as_bytes());
    format!("{JOB_PREFIX}{}-{attempt}-{id}", channel.as_str())
}

/// Where one delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum DeliveryStatus {
    /// An attempt is under way (or its handler died; see [`RetryPolicy::lease`]).
    Sending,
    /// The last attempt failed in a way worth repeating; the next is due at `next_attempt_at`.
    Retrying,
    /// The receiver took it (a 2xx, or the SMTP server accepted the mail).
    Delivered,
    /// Final: refused (4xx), or the retry budget is spent. The event was dead-lettered.
    Failed,
}

/// The record `delivery:<event id>:<channel>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryRecord {
    pub event_id: String,
    pub task_id: Uuid,
    pub channel: Channel,
    pub status: DeliveryStatus,
    /// Attempts made or under way.
    pub attempts: u32,
    /// When the current or last attempt started.
    pub attempted_at: DateTime<Utc>,
    pub delivered_at: Option<DateTime<Utc>>,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
}

/// What `GET /v1/tasks/{id}/reminder` shows of a delivery.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DeliveryView {
    pub channel: Channel,
    pub status: DeliveryStatus,
    pub attempts: u32,
    pub delivered_at: Option<DateTime<Utc>>,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
}

impl DeliveryRecord {
    pub fn view(&self) -> DeliveryView {
        DeliveryView {
            channel: self.channel,
            status: self.status,
            attempts: self.attempts,
            delivered_at: self.delivered_at,
            next_attempt_at: self.next_attempt_at,
            last_error: self.last_error.clone(),
        }
    }
}

/// The retry budget and timing (the notifier's configuration).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included.
    pub max_attempts: u32,
    /// The wait before the second attempt; each later wait doubles, up to `max_backoff`.
    pub first_backoff: Duration,
    pub max_backoff: Duration,
    /// How long a claim holds off other handlers. Longer than an attempt can take (the send
    /// timeouts), so that a live attempt is never doubled; a dead one is taken over after it.
    pub lease: Duration,
}

impl Default for RetryPolicy {
    /// 10 attempts over about 17 minutes (1, 2, 4 ... 256 s, with jitter): long enough for a
    /// receiver's restart or deploy, short enough that a reminder is still worth having.
    fn default() -> Self {
        Self {
            max_attempts: 10,
            first_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(300),
            lease: Duration::from_secs(60),
        }
    }
}

/// Who is handling a delivery: the broker's event, or retry job `attempt`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    Event,
    Retry { attempt: u32 },
}

/// Whether to send now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// Send: save this record (ETag-guarded on the one read) first, then send.
    Send(DeliveryRecord),
    /// Nothing to do: delivered, failed for good, or a retry job owns the next attempt.
    Done(&'static str),
    /// Another handler claimed it less than a lease ago. A job calls again (its failure policy);
    /// an event is acknowledged after scheduling retry job `attempt` at `until`, when the claim
    /// goes stale: RETRY would hold the partition, and the broker's bounded retries could end
    /// before the lease does, leaving a crashed handler's claim `sending` with nobody to take it
    /// over. If the claim's holder settles first, the job finds the delivery done, or its own
    /// retry job of the same name replaces it.
    Busy { attempt: u32, until: DateTime<Utc> },
}

/// Decides whether `trigger` may send delivery `(event_id, channel)` given the `current` record.
pub fn claim(
    event_id: &str,
    task_id: Uuid,
    channel: Channel,
    current: Option<&DeliveryRecord>,
    trigger: Trigger,
    now: DateTime<Utc>,
    policy: &RetryPolicy,
) -> Claim {
    let attempt = |attempts: u32, previous: Option<&DeliveryRecord>| {
        Claim::Send(DeliveryRecord {
            event_id: event_id.to_owned(),
            task_id,
            channel,
            status: DeliveryStatus::Sending,
            attempts,
            attempted_at: now,
            delivered_at: None,
            next_attempt_at: None,
            last_error: previous.and_then(|r| r.last_error.clone()),
        })
    };
    let Some(record) = current else {
        return attempt(1, None);
    };
    match (record.status, trigger) {
        (DeliveryStatus::Delivered, _) => Claim::Done("already delivered"),
        (DeliveryStatus::Failed, _) => Claim::Done("already failed for good"),
        (DeliveryStatus::Sending, _) => {
            let lease = chrono::Duration::from_std(policy.lease).unwrap_or(chrono::Duration::MAX);
            let until = record.attempted_at + lease;
            if until > now {
                Claim::Busy { attempt: record.attempts + 1, until }
            } else {
                attempt(record.attempts + 1, Some(record))
            }
        }
        (DeliveryStatus::Retrying, Trigger::Event) => Claim::Done("a retry job owns the next attempt"),
        (DeliveryStatus::Retrying, Trigger::Retry { attempt: n }) if n == record.attempts + 1 => {
            attempt(n, Some(record))
        }
        (DeliveryStatus::Retrying, Trigger::Retry { .. }) => Claim::Done("a stale retry job"),
    }
}

/// How one attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sent {
    Delivered,
    /// Worth repeating (timeout, connection error, 408/425/429/5xx, an SMTP server's failure).
    Retry(String),
    /// Final (a 4xx, a redirect, a target refused at send time).
    Failed(String),
}

/// What follows an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    Done,
    /// Schedule attempt `attempt` at `at`.
    RetryAt {
        attempt: u32,
        at: DateTime<Utc>,
    },
    /// Publish the event to the dead-letter topic.
    DeadLetter,
}

/// The record after attempt `claimed` ended with `sent`, and what to do next. `seed` makes the
/// jitter differ between deliveries but not between runs (tests can predict it).
pub fn settle(
    claimed: &DeliveryRecord,
    sent: Sent,
    now: DateTime<Utc>,
    policy: &RetryPolicy,
    seed: u64,
) -> (DeliveryRecord, Next) {
    let mut record = claimed.clone();
    record.next_attempt_at = None;
    let next = match sent {
        Sent::Delivered => {
            record.status = DeliveryStatus::Delivered;
            record.delivered_at = Some(now);
            record.last_error = None;
            Next::Done
        }
        Sent::Failed(error) => {
            record.status = DeliveryStatus::Failed;
            record.last_error = Some(truncate(&error));
            Next::DeadLetter
        }
        Sent::Retry(error) if record.attempts >= policy.max_attempts => {
            record.status = DeliveryStatus::Failed;
            record.last_error = Some(truncate(&format!("gave up after {} attempts: {error}", record.attempts)));
            Next::DeadLetter
        }
        Sent::Retry(error) => {
            let wait = backoff(record.attempts, policy, seed);
            let at = now + chrono::Duration::from_std(wait).unwrap_or(chrono::Duration::MAX);
            record.status = DeliveryStatus::Retrying;
            record.last_error = Some(truncate(&error));
            record.next_attempt_at = Some(at);
            Next::RetryAt { attempt: record.attempts + 1, at }
        }
    };
    (record, next)
}

/// The wait after attempt `attempt` failed: `first_backoff * 2^(attempt-1)`, capped at
/// `max_backoff`, then "equal jitter" (half fixed, half spread by `seed`) so that reminders that
/// failed together (a receiver's outage) do not come back together.
pub fn backoff(attempt: u32, policy: &RetryPolicy, seed: u64) -> Duration {
    let doubled = policy.first_backoff.saturating_mul(1u32 << attempt.saturating_sub(1).min(20));
    let cap = doubled.min(policy.max_backoff);
    let half = cap / 2;
    let spread = u64::try_from(half.as_millis()).unwrap_or(u64::MAX);
    let jitter = if spread == 0 { 0 } else { mix(seed ^ u64::from(attempt)) % (spread + 1) };
    half + Duration::from_millis(jitter)
}

/// A seed for [`backoff`] from an event id (FNV-1a): stable across processes and runs.
pub fn seed(event_id: &str) -> u64 {
    event_id.bytes().fold(0xcbf2_9ce4_8422_2325, |hash, byte| (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3))
}

/// SplitMix64's finaliser: spreads a seed's bits.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn truncate(error: &str) -> String {
    if error.chars().count() <= MAX_ERROR_CHARS {
        return error.to_owned();
    }
    let mut cut: String = error.chars().take(MAX_ERROR_CHARS).collect();
    cut.push('…');
    cut
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    const EVENT: &str = "reminder:00000000-0000-0000-0000-000000000007:1767225600";

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_767_225_600 + secs, 0).unwrap()
    }

    fn policy() -> RetryPolicy {
        RetryPolicy {
            max_attempts: 3,
            first_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(8),
            lease: Duration::from_secs(30),
        }
    }

    fn claim_at(current: Option<&DeliveryRecord>, trigger: Trigger, now: i64) -> Claim {
        claim(EVENT, Uuid::from_u128(7), Channel::Webhook, current, trigger, at(now), &policy())
    }

    fn claimed(current: Option<&DeliveryRecord>, trigger: Trigger, now: i64) -> DeliveryRecord {
        match claim_at(current, trigger, now) {
            Claim::Send(record) => record,
            other => panic!("expected a send, got {other:?}"),
        }
    }

    #[test]
    fn keys_and_job_names_are_stable_and_distinct() {
        assert_eq!(delivery_key(EVENT, Channel::Email), format!("delivery:{EVENT}:email"));
        let job = retry_job_name(EVENT, Channel::Webhook, 2);
        assert!(job.starts_with("notify-webhook-2-"), "{job}");
        assert_eq!(job, retry_job_name(EVENT, Channel::Webhook, 2));
        assert_ne!(job, retry_job_name(EVENT, Channel::Webhook, 3));
        assert_ne!(job, retry_job_name(EVENT, Channel::Email, 2));
        assert_ne!(job, retry_job_name("reminder:other:1", Channel::Webhook, 2));
        assert!(job.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'), "a valid job name: {job}");
    }

    #[test]
    fn the_first_event_sends_and_a_duplicate_meanwhile_backs_off() {
        let first = claimed(None, Trigger::Event, 0);
        assert_eq!((first.status, first.attempts, first.attempted_at), (DeliveryStatus::Sending, 1, at(0)));
        assert_eq!(
            claim_at(Some(&first), Trigger::Event, 5),
            Claim::Busy { attempt: 2, until: at(30) },
            "a live claim is not doubled; the takeover is due when the lease ends"
        );
        let takeover = claimed(Some(&first), Trigger::Retry { attempt: 2 }, 30);
        assert_eq!(takeover.attempts, 2, "the takeover job sends once the claim is stale");
        let retaken = claimed(Some(&first), Trigger::Event, 31);
        assert_eq!(retaken.attempts, 2, "a claim older than the lease is a dead handler's: taken over");
    }

    #[test]
    fn delivered_and_failed_are_final_for_every_trigger() {
        let sending = claimed(None, Trigger::Event, 0);
        let (delivered, next) = settle(&sending, Sent::Delivered, at(1), &policy(), 0);
        assert_eq!(next, Next::Done);
        assert_eq!((delivered.status, delivered.delivered_at), (DeliveryStatus::Delivered, Some(at(1))));
        let (failed, next) = settle(&sending, Sent::Failed("410 Gone".into()), at(1), &policy(), 0);
        assert_eq!(next, Next::DeadLetter);
        assert_eq!(failed.last_error.as_deref(), Some("410 Gone"));
        for record in [&delivered, &failed] {
            for trigger in [Trigger::Event, Trigger::Retry { attempt: 2 }] {
                assert!(matches!(claim_at(Some(record), trigger, 100), Claim::Done(_)), "{record:?} {trigger:?}");
            }
        }
    }

    #[test]
    fn a_retryable_failure_hands_the_next_attempt_to_its_job_until_the_budget_is_spent() {
        let first = claimed(None, Trigger::Event, 0);
        let (retrying, next) = settle(&first, Sent::Retry("503".into()), at(1), &policy(), 9);
        let Next::RetryAt { attempt: 2, at: due } = next else { panic!("{next:?}") };
        assert_eq!(retrying.next_attempt_at, Some(due));
        assert!(due >= at(1) && due <= at(2), "first wait within [0.5, 1] s: {due}");
        assert!(matches!(claim_at(Some(&retrying), Trigger::Event, 2), Claim::Done(_)), "a redelivered event waits");
        assert!(matches!(claim_at(Some(&retrying), Trigger::Retry { attempt: 3 }, 2), Claim::Done(_)), "wrong job");
        let second = claimed(Some(&retrying), Trigger::Retry { attempt: 2 }, 2);
        assert_eq!((second.attempts, second.last_error.as_deref()), (2, Some("503")));
        let (retrying, _) = settle(&second, Sent::Retry("timed out".into()), at(3), &policy(), 9);
        let third = claimed(Some(&retrying), Trigger::Retry { attempt: 3 }, 10);
        let (given_up, next) = settle(&third, Sent::Retry("timed out".into()), at(11), &policy(), 9);
        assert_eq!(next, Next::DeadLetter);
        assert_eq!(given_up.status, DeliveryStatus::Failed);
        assert_eq!(given_up.last_error.as_deref(), Some("gave up after 3 attempts: timed out"));
    }

    #[test]
    fn backoff_doubles_to_its_cap_with_bounded_jitter() {
        let policy = policy();
        for seed in [0, 1, seed(EVENT), u64::MAX] {
            for (attempt, full) in [(1, 1000), (2, 2000), (3, 4000), (4, 8000), (5, 8000), (40, 8000)] {
                let wait = backoff(attempt, &policy, seed).as_millis();
                assert!(wait >= full / 2 && wait <= full, "attempt {attempt}, seed {seed}: {wait} ms");
            }
        }
        let spread: std::collections::HashSet<_> = (0..50).map(|s| backoff(3, &policy, s)).collect();
        assert!(spread.len() > 10, "jitter spreads deliveries: {spread:?}");
        assert_eq!(seed(EVENT), seed(EVENT));
    }

    #[test]
    fn a_long_error_is_cut() {
        let first = claimed(None, Trigger::Event, 0);
        let (record, _) = settle(&first, Sent::Failed("x".repeat(5000)), at(1), &policy(), 0);
        assert_eq!(record.last_error.unwrap().chars().count(), MAX_ERROR_CHARS + 1);
    }

    #[test]
    fn the_view_shows_what_a_person_needs() {
        let first = claimed(None, Trigger::Event, 0);
        let (record, _) = settle(&first, Sent::Retry("503 Service Unavailable".into()), at(1), &policy(), 0);
        let view = serde_json::to_value(record.view()).unwrap();
        assert_eq!(view["channel"], "webhook");
        assert_eq!(view["status"], "retrying");
        assert_eq!(view["attempts"], 1);
        assert_eq!(view["last_error"], "503 Service Unavailable");
        assert!(view["next_attempt_at"].is_string());
        assert!(view["delivered_at"].is_null());
    }
}

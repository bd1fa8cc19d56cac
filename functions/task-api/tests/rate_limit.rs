//! The per-user rate limit at the front door: every authenticated answer states the quota, the
//! request over it answers 429 with `Retry-After` and the IETF fields, other users are not
//! affected, and an unauthenticated request neither counts nor learns anything.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Harness, config, now, task};
use dapr_fn::clock::Clock;
use dapr_fn::runtime::RuntimeConfig;
use serde_json::json;

#[tokio::test]
async fn a_user_over_the_limit_gets_429_with_the_fields_and_others_do_not() {
    let mut config = config();
    config.rate_limit_per_minute = 3;
    // The limiter reads wall time: over the milliseconds of this test, at 3 per minute, no token
    // comes back.
    let h = Harness::custom(config, RuntimeConfig::default(), |_| Clock::fixed(now())).await;
    let t = task(1, "alice", "Pay rent");
    h.put_task(&t);
    let path = format!("/v1/tasks/{}", t.id);

    for remaining in [2, 1, 0] {
        let answer = h.get(&path).user("alice").send().await;
        assert_eq!(answer.status, 200);
        assert_eq!(answer.header("ratelimit-policy"), Some("\"per-user\";q=3;w=60"));
        let expected = format!("\"per-user\";r={remaining};t={}", (3 - remaining) * 20);
        assert_eq!(answer.header("ratelimit"), Some(expected.as_str()));
    }
    let refused = h.get(&path).user("alice").send().await;
    assert_eq!(refused.status, 429);
    assert_eq!(refused.header("retry-after"), Some("20"), "3 per minute: one token every 20 s");
    assert_eq!(refused.header("ratelimit"), Some("\"per-user\";r=0;t=60"));
    assert_eq!(refused.body, json!({"error": "too many requests: at most 3 per minute per user; try again in 20 s"}));

    let bob = h.get("/v1/tasks").user("bob").send().await;
    assert_eq!(bob.status, 200, "bob has his own bucket");
    let anonymous = h.get("/v1/tasks").send().await;
    assert_eq!(anonymous.status, 401);
    assert_eq!(anonymous.header("ratelimit"), None, "nothing counted or told before authentication");
}

#[tokio::test]
async fn zero_turns_the_limit_off() {
    let mut config = config();
    config.rate_limit_per_minute = 0;
    let h = Harness::custom(config, RuntimeConfig::default(), |_| Clock::fixed(now())).await;
    for _ in 0..20 {
        let answer = h.get("/v1/tasks").user("alice").send().await;
        assert_eq!(answer.status, 200);
        assert_eq!(answer.header("ratelimit"), None);
    }
}

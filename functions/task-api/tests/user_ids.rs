//! User ids at the door: a `sub` that could collide in state keys (`:`, `/`) or forge log lines
//! (control characters), or is longer than 128 bytes, is no identity here, whether it arrives
//! in a token (401) or is asked of `dev-token`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{Harness, SECRET};
use serde_json::json;
use task_api::Config;
use task_api::auth::sign;

fn bad_subs() -> Vec<(String, &'static str)> {
    vec![
        ("alice:admin".into(), "contains ':', '/' or a control character"),
        ("tenant/alice".into(), "contains ':', '/' or a control character"),
        ("alice\nINFO forged log line".into(), "contains ':', '/' or a control character"),
        ("alice\u{7f}".into(), "contains ':', '/' or a control character"),
        ("ü".repeat(65), "at most 128 are accepted"),
        ("a".repeat(129), "at most 128 are accepted"),
    ]
}

#[tokio::test]
async fn a_token_whose_sub_could_collide_is_401_with_the_reason() {
    let h = Harness::start().await;
    let exp = chrono::Utc::now().timestamp() + 3600;
    for (sub, reason) in bad_subs() {
        let token = sign(SECRET.as_bytes(), &json!({"sub": sub, "exp": exp})).unwrap();
        let answer = h.get("/v1/tasks").authorization(&format!("Bearer {token}")).send().await;
        assert_eq!(answer.status, 401, "{sub:?}");
        let error = answer.body["error"].as_str().unwrap();
        assert!(error.starts_with("the token's sub (user id)") && error.contains(reason), "{sub:?}: {error}");
        assert_eq!(answer.field(), Some("Authorization"));
    }
    // The longest accepted id, in bytes, and ordinary punctuation still pass.
    for sub in ["a".repeat(128), "ü".repeat(64), "alice@example.com".into(), "auth0|5f7c8ec7c33c6c004bbafe82".into()] {
        let token = sign(SECRET.as_bytes(), &json!({"sub": sub, "exp": exp})).unwrap();
        let answer = h.get("/v1/tasks").authorization(&format!("Bearer {token}")).send().await;
        assert_eq!(answer.status, 200, "{sub:?}: {:?}", answer.body);
    }
}

#[test]
fn dev_token_refuses_the_same_ids() {
    let config = Config::with_secret(SECRET);
    for (sub, reason) in bad_subs() {
        let error = task_api::dev_token::token(&config, &sub, Duration::from_secs(60)).unwrap_err().to_string();
        assert!(error.contains(reason), "{sub:?}: {error}");
    }
    assert!(task_api::dev_token::token(&config, "alice@example.com", Duration::from_secs(60)).is_ok());
}

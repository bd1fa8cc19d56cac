//! `devhost dev-token`: the development tokens task-api no longer mints itself.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Command, Output};

const SECRET: &str = "devhost-dev-token-test-0123456789abcdef";

fn dev_token(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_devhost"));
    command.arg("dev-token").args(args).env_clear();
    for (name, value) in env {
        command.env(name, value);
    }
    command.output().expect("devhost runs")
}

#[tokio::test]
async fn prints_a_token_task_api_accepts() {
    let env = [("JWT_SECRET", SECRET), ("JWT_ISSUER", "dev"), ("JWT_AUDIENCE", "task-api")];
    let output = dev_token(&["alice", "--ttl-hours", "24"], &env);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let token = String::from_utf8(output.stdout).unwrap().trim().to_owned();

    let mut config = task_api::Config::with_secret(SECRET);
    config.jwt_issuer = Some("dev".into());
    config.jwt_audience = Some("task-api".into());
    let user = task_api::auth::Authenticator::new(&config).verify(&token).await.unwrap();
    assert_eq!(user.id, "alice");
    use base64::Engine as _;
    let header = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(token.split('.').next().unwrap()).unwrap();
    let header: serde_json::Value = serde_json::from_slice(&header).unwrap();
    assert_eq!(header["kid"], task_api::crypto::hs256_kid(SECRET.as_bytes()), "the current key's kid");
}

#[test]
fn refuses_lifetimes_beyond_the_cap_and_a_missing_secret() {
    let too_long = dev_token(&["alice", "--ttl-hours", "25"], &[("JWT_SECRET", SECRET)]);
    assert!(!too_long.status.success());
    assert!(String::from_utf8_lossy(&too_long.stderr).contains("25"), "clap names the bad value");
    let no_secret = dev_token(&["alice"], &[]);
    assert!(!no_secret.status.success());
    assert!(String::from_utf8_lossy(&no_secret.stderr).contains("JWT_SECRET"));
}

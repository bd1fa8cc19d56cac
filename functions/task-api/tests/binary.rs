//! The built task-api binary itself: it cannot mint tokens, and it refuses to start with a
//! configuration that would accept tokens issued for someone else.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Command, Output};

const BINARY: &str = env!("CARGO_BIN_EXE_task-api");
const SECRET: &str = "binary-test-secret-0123456789abcdef";

/// Runs the binary with only `env` (and no Dapr to talk to: every case here must stop before).
fn run(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(BINARY);
    command.args(args).env_clear();
    // The runtime's own checks must not be what stops it.
    command.env("APP_API_TOKEN", "binary-test-app-token").env("APP_API_TOKEN_OPTIONAL", "true");
    command.env("APP_PORT", "0").env("APP_HOST", "127.0.0.1");
    for (name, value) in env {
        command.env(name, value);
    }
    command.output().expect("the task-api binary runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn the_binary_cannot_mint_a_token() {
    let output = run(&["dev-token", "alice"], &[("JWT_SECRET", SECRET)]);
    assert!(!output.status.success(), "task-api dev-token must fail");
    let (stdout, stderr) = (text(&output.stdout), text(&output.stderr));
    assert!(!stdout.contains("eyJ"), "no token on stdout: {stdout}");
    assert!(stderr.contains("devhost dev-token"), "the error points at devhost: {stderr}");

    // Nor is the minting command compiled in: its option and the old usage line, string
    // literals that linking keeps only when code uses them, are absent.
    // (Lossy text, so that the search is std's optimised substring search.)
    let binary = text(&std::fs::read(BINARY).unwrap());
    for marker in ["--ttl-hours", "usage: task-api dev-token"] {
        assert!(
            !binary.contains(marker),
            "the task-api binary contains {marker:?}: the dev-token command is still in it"
        );
    }
}

#[test]
fn other_arguments_are_refused_too() {
    let output = run(&["serve"], &[("JWT_SECRET", SECRET)]);
    assert!(!output.status.success());
    assert!(text(&output.stderr).contains("takes no arguments"), "{}", text(&output.stderr));
}

#[test]
fn strict_mode_refuses_to_start_without_issuer_and_audience() {
    let output = run(&[], &[("JWT_SECRET", SECRET), ("JWT_STRICT", "true"), ("JWT_ISSUER", "https://id.example")]);
    assert!(!output.status.success(), "it must not start");
    let stderr = text(&output.stderr);
    assert!(stderr.contains("JWT_STRICT=true: JWT_AUDIENCE must be set"), "{stderr}");
}

#[test]
fn a_jwks_refuses_to_start_without_issuer_and_audience() {
    let output = run(&[], &[("JWT_JWKS_URL", "https://id.example/jwks")]);
    assert!(!output.status.success(), "it must not start");
    let stderr = text(&output.stderr);
    assert!(stderr.contains("JWT_JWKS_URL is set, so JWT_ISSUER and JWT_AUDIENCE must be too"), "{stderr}");
}

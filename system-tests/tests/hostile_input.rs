//! Hostile input to everything that parses what arrives from outside: CloudEvent envelopes,
//! task JSON and RRULE text. Arbitrary bytes and structured near-misses must give an error or a
//! value, never a panic, and deeply nested JSON must be refused, not overflow the stack.
//!
//! Part of the fault suite (the end-to-end faults are in `faults.rs` beside it): each
//! input kind gets `HOSTILE_CASES` cases (default 512), and the test prints how many it fuzzed.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::http::HeaderMap;
use dapr_fn::runtime::cloudevent;
use proptest::prelude::*;
use todo_core::recurrence::Rule;
use todo_core::validate::{NewTask, TaskPatch, parse_json};

fn cases() -> u32 {
    std::env::var("HOSTILE_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(512)
}

/// JSON-ish text: the shapes a broken producer sends, mixed with random bytes.
fn jsonish() -> impl Strategy<Value = Vec<u8>> {
    let fragments = prop::sample::select(vec![
        "{",
        "}",
        "[",
        "]",
        ",",
        ":",
        "\"",
        "null",
        "true",
        "1e999",
        "-0",
        "\"id\"",
        "\"type\"",
        "\"data\"",
        "\"specversion\"",
        "\"1.0\"",
        "\"todo.task.created\"",
        "\"title\"",
        "\"due\"",
        "\"2026-02-30T25:61:00Z\"",
        "\"recurrence\"",
        "\"rule\"",
        "\"FREQ=DAILY\"",
        "\\u0000",
        "\u{202e}",
    ]);
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..256),
        prop::collection::vec(fragments, 0..64).prop_map(|f| f.concat().into_bytes()),
    ]
}

/// RRULE-ish text: real part names and values in random order and number.
fn ruleish() -> impl Strategy<Value = String> {
    let parts = prop::sample::select(vec![
        "FREQ=DAILY",
        "FREQ=WEEKLY",
        "FREQ=MONTHLY",
        "FREQ=YEARLY",
        "FREQ=SECONDLY",
        "FREQ=",
        "INTERVAL=0",
        "INTERVAL=1",
        "INTERVAL=99999999999",
        "COUNT=-1",
        "COUNT=3",
        "UNTIL=20261231",
        "UNTIL=99991231T235959Z",
        "BYDAY=MO",
        "BYDAY=-53MO",
        "BYDAY=54FR",
        "BYDAY=5SU",
        "BYMONTHDAY=-31",
        "BYMONTHDAY=0",
        "BYMONTHDAY=31",
        "BYMONTH=2",
        "BYMONTH=13",
        "BYSETPOS=-1",
        "BYSETPOS=367",
        "WKST=SU",
        "BYHOUR=9",
        "X-NAME=1",
        ";",
        "=",
        "RRULE:",
    ]);
    prop_oneof![prop::collection::vec(parts, 0..10).prop_map(|p| p.join(";")), ".{0,64}",]
}

/// Runs `check` on `cases()` values of `strategy`; returns how many inputs it fuzzed.
fn fuzz<S: Strategy>(strategy: S, check: impl Fn(S::Value) -> Result<(), TestCaseError>) -> u64 {
    let config = ProptestConfig { cases: cases(), failure_persistence: None, ..ProptestConfig::default() };
    let mut runner = proptest::test_runner::TestRunner::new(config);
    let seen = AtomicU64::new(0);
    let result = runner.run(&strategy, |value| {
        seen.fetch_add(1, Ordering::Relaxed);
        check(value)
    });
    if let Err(e) = result {
        panic!("{e}");
    }
    seen.load(Ordering::Relaxed)
}

/// Everything that parses outside input, on arbitrary and near-miss input: an error or a
/// value, never a panic; rule parsing fast, and round-tripping when it succeeds.
#[test]
fn hostile_input_never_panics() {
    let envelopes = fuzz(jsonish(), |body| {
        let _ = cloudevent::parse(&body, &HeaderMap::new()).map(|e| e.decode::<NewTask>());
        Ok(())
    });
    let tasks = fuzz(jsonish(), |body| {
        let _ = parse_json::<NewTask>(&body);
        let _ = parse_json::<TaskPatch>(&body);
        Ok(())
    });
    let rules = fuzz(ruleish(), |text| {
        let started = Instant::now();
        match Rule::parse(&text) {
            Ok(rule) => prop_assert_eq!(Rule::parse(&rule.to_string()).unwrap(), rule),
            Err(e) => prop_assert!(!e.to_string().is_empty()),
        }
        prop_assert!(started.elapsed() < Duration::from_secs(1), "{:?} took {:?}", text, started.elapsed());
        Ok(())
    });
    let total = envelopes + tasks + rules;
    eprintln!("hostile input: {total} inputs fuzzed ({envelopes} envelopes, {tasks} task bodies, {rules} rules)");
    assert!(total >= 3 * u64::from(cases()), "fewer inputs than asked for: {total}");
}

#[test]
fn deeply_nested_json_is_refused_without_overflowing_the_stack() {
    for depth in [200, 100_000] {
        let nested = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
        let envelope = format!(r#"{{"id":"1","source":"s","type":"t","specversion":"1.0","data":{nested}}}"#);
        assert!(cloudevent::parse(envelope.as_bytes(), &HeaderMap::new()).is_err(), "depth {depth}");
        let task = format!(r#"{{"title":"x","tags":{nested}}}"#);
        assert!(parse_json::<NewTask>(task.as_bytes()).is_err(), "depth {depth}");
    }
}

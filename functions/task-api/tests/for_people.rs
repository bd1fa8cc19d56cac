//! Errors are written for the person reading them: every malformed create or patch body names
//! the field and says what it must be, without the parser's vocabulary; a task without a
//! reminder is not a missing task; a weak `If-Match` says why it cannot match.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Harness, task};
use serde_json::json;
use todo_core::task::Reminder;

/// What serde, serde_json and chrono say that means nothing to a client.
const JARGON: &[&str] = &[
    "premature end of input",
    "expected value",
    "at line",
    "column",
    "invalid type",
    "invalid value",
    "unknown variant",
    "input contains invalid characters",
    "trailing characters",
    "EOF while parsing",
    "expected `",
    "expected one of",
];

/// (body, the field named, a fragment of the message). The field of a body that is not JSON at
/// all is `body`, or the value it breaks off in.
const CASES: &[(&str, &str, &str)] = &[
    ("", "body", "the body is empty"),
    ("[]", "body", "must be a JSON object"),
    ("{", "body", "the body is not valid JSON"),
    (r#"{"title": "Buy milk""#, "body", "the body is not valid JSON"),
    (r#"{"title": "x", "due": "2026-12-31T09:"#, "due", "the body is not valid JSON: it ends before"),
    (r#"{"title" "Buy milk"}"#, "body", r#"near `{"title" "Buy milk"#),
    (r#"{"title": "Buy milk",}"#, "body", "the body is not valid JSON"),
    (r#"{"title": "Buy milk"} x"#, "body", "something follows the object"),
    (r#"{"title": 42}"#, "title", r#"like "Buy milk""#),
    (r#"{"title": "x", "description": ["a"]}"#, "description", "must be a text"),
    (r#"{"title": "x", "priority": "asap"}"#, "priority", "low, medium, high or urgent"),
    (r#"{"title": "x", "priority": 3}"#, "priority", "low, medium, high or urgent"),
    (r#"{"title": "x", "tags": "home"}"#, "tags", r#"like ["home", "errands"]"#),
    (r#"{"title": "x", "tags": [true]}"#, "tags[0]", r#"like "errands""#),
    (r#"{"title": "x", "due": "2026-12-31"}"#, "due", "RFC 3339 with an offset, like 2026-12-31T09:00:00+01:00"),
    (r#"{"title": "x", "due": "2026-12-31T09:00:00"}"#, "due", "like 2026-12-31T09:00:00+01:00"),
    (r#"{"title": "x", "due": "2026-12-31T09:00"}"#, "due", "like 2026-12-31T09:00:00+01:00"),
    (r#"{"title": "x", "due": 1767168000}"#, "due", "like 2026-12-31T09:00:00+01:00"),
    (r#"{"title": "x", "time_zone": "CEST"}"#, "time_zone", "an IANA time zone, like Europe/Berlin"),
    (r#"{"title": "x", "time_zone": 1}"#, "time_zone", "an IANA time zone, like Europe/Berlin"),
    (r#"{"title": "x", "reminder": "9:00"}"#, "reminder", r#"{"before_due_seconds": 900}"#),
    (r#"{"title": "x", "reminder": {"in_minutes": 5}}"#, "reminder", r#"{"before_due_seconds": 900}"#),
    (r#"{"title": "x", "reminder": {"at": "soon"}}"#, "reminder.at", "RFC 3339 with an offset"),
    (r#"{"title": "x", "reminder": {"before_due_seconds": -5}}"#, "reminder.before_due_seconds", "like 900"),
    (r#"{"title": "x", "reminder": {"before_due_seconds": "900"}}"#, "reminder.before_due_seconds", "like 900"),
    (r#"{"title": "x", "recurrence": "weekly"}"#, "recurrence", "FREQ=WEEKLY;BYDAY=MO"),
    (r#"{"title": "x", "recurrence": {"mode": "strict"}}"#, "recurrence.rule", "is required"),
    (r#"{"title": "x", "recurrence": {"rule": 7}}"#, "recurrence.rule", "RFC 5545 RRULE, like FREQ=WEEKLY"),
    (r#"{"title": "x", "recurrence": {"rule": "FREQ=HOURLY"}}"#, "recurrence.rule", "FREQ"),
    (r#"{"title": "x", "recurrence": {"rule": "FREQ=DAILY", "mode": "x"}}"#, "recurrence.mode", "after_completion"),
    (r#"{"title": "x", "recurrence": {"rule": "FREQ=DAILY", "exdates": ["x"]}}"#, "recurrence.exdates[0]", "RFC 3339"),
    (r#"{"title": "x", "recurrence": {"rule": "FREQ=DAILY", "every": 2}}"#, "recurrence.every", "rule, mode, exdates"),
    (r#"{"title": "x", "colour": "red"}"#, "colour", "is not a known field; the fields here are title"),
    (r#"{"title": "x", "title": "y"}"#, "title", "given twice"),
];

fn assert_for_people(what: &str, body: &str, answer: &common::Answer, field: &str, says: &str) {
    assert_eq!(answer.status, 400, "{what} {body}: {:?}", answer.body);
    assert_eq!(answer.field(), Some(field), "{what} {body}: {:?}", answer.body);
    let error = answer.body["error"].as_str().unwrap();
    assert!(error.contains(says), "{what} {body}: {error:?} does not say {says:?}");
    for fragment in JARGON {
        assert!(!error.contains(fragment), "{what} {body}: {error:?} contains {fragment:?}");
    }
    if field != "body" {
        assert!(error.starts_with(&format!("{field}: ")), "{what} {body}: {error:?} does not start with the field");
    }
}

#[tokio::test]
async fn malformed_create_bodies_name_the_field_in_words() {
    let h = Harness::start().await;
    for (body, field, says) in CASES {
        let answer = h.post("/v1/tasks").user("alice").raw_body(body.as_bytes(), Some("application/json")).send().await;
        assert_for_people("POST", body, &answer, field, says);
    }
    let answer = h.post("/v1/tasks").user("alice").json(&json!({})).send().await;
    assert_for_people("POST", "{}", &answer, "title", "is required");
    assert!(h.task_transactions().is_empty(), "nothing was written");
}

#[tokio::test]
async fn malformed_patch_bodies_name_the_field_in_words() {
    let h = Harness::start().await;
    let t = task(1, "alice", "Pay rent");
    h.put_task(&t);
    let path = format!("/v1/tasks/{}", t.id);
    for (body, field, says) in CASES {
        // A recurrence without its rule merges onto the task's (none here): that is the 422 of
        // tests/merge_and_reminders.rs, not a malformed body.
        if body.contains(r#""recurrence": {"#) && !body.contains(r#""rule""#) {
            continue;
        }
        // A merge patch reaches into the reminder object (RFC 7396) and names the member itself.
        let (field, says) = if body.contains("in_minutes") {
            ("reminder.in_minutes", "is not a known field; the fields here are at, before_due_seconds")
        } else {
            (*field, *says)
        };
        let answer =
            h.patch(&path).user("alice").raw_body(body.as_bytes(), Some("application/merge-patch+json")).send().await;
        assert_for_people("PATCH", body, &answer, field, says);
    }
    for field in ["title", "priority", "time_zone"] {
        let body = format!(r#"{{"{field}": null}}"#);
        let answer =
            h.patch(&path).user("alice").raw_body(body.as_bytes(), Some("application/merge-patch+json")).send().await;
        assert_for_people("PATCH", &body, &answer, field, "cannot be null");
    }
    assert!(h.task_transactions().is_empty(), "nothing was written");
}

#[tokio::test]
async fn a_task_without_a_reminder_says_so_rather_than_task_not_found() {
    let h = Harness::start().await;
    let t = task(1, "alice", "No reminder");
    h.put_task(&t);
    let answer = h.get(&format!("/v1/tasks/{}/reminder", t.id)).user("alice").send().await;
    assert_eq!(answer.status, 404);
    assert_eq!(answer.body, json!({"error": "this task has no reminder", "field": "reminder"}));

    // Another user's task, with a reminder, is still simply not found: nothing to probe.
    let mut theirs = task(2, "bob", "Bob's");
    theirs.reminder = Some(Reminder::At(chrono::DateTime::parse_from_rfc3339("2026-12-01T09:00:00Z").unwrap()));
    h.put_task(&theirs);
    let answer = h.get(&format!("/v1/tasks/{}/reminder", theirs.id)).user("alice").send().await;
    assert_eq!(answer.status, 404);
    assert_eq!(answer.body, json!({"error": "task not found"}));
}

#[tokio::test]
async fn a_weak_if_match_explains_that_weak_etags_are_not_accepted() {
    let h = Harness::start().await;
    let mut t = task(1, "alice", "Pay rent");
    t.version = 3;
    h.put_task(&t);
    let path = format!("/v1/tasks/{}", t.id);
    let answers = [
        h.patch(&path).user("alice").header("If-Match", "W/\"3\"").json(&json!({"title": "new"})).send().await,
        h.post(&format!("{path}/complete")).user("alice").header("If-Match", "W/\"3\"").send().await,
        h.delete(&path).user("alice").header("If-Match", "W/\"3\"").send().await,
    ];
    for answer in answers {
        // RFC 9110 §13.1.1: If-Match compares strongly, so a weak tag fails the precondition.
        assert_eq!((answer.status, answer.field()), (412, Some("If-Match")), "{:?}", answer.body);
        let error = answer.body["error"].as_str().unwrap();
        assert!(error.contains("weak entity tags such as W/\"3\" are not accepted"), "{error}");
        assert!(error.contains("like \"3\""), "{error}");
    }
    assert!(h.task_transactions().is_empty(), "nothing was written");
    let strong = h.patch(&path).user("alice").header("If-Match", "\"3\"").json(&json!({"title": "new"})).send().await;
    assert_eq!(strong.status, 200, "{:?}", strong.body);
}

//! Fixtures for tests of code that handles tasks (feature `testing`, and this crate's own unit
//! tests).

// A fixture: its one fallible call parses a constant.
#![allow(clippy::expect_used)]

/// A valid open task of `owner`, version 1, created 2026-11-01, for tests to adjust.
pub fn sample_task(id: uuid::Uuid, owner: &str) -> crate::task::Task {
    let created = chrono::DateTime::parse_from_rfc3339("2026-11-01T08:00:00Z").expect("fixed time").to_utc();
    crate::task::Task {
        id,
        owner: owner.to_owned(),
        title: "Pay rent".to_owned(),
        description: "Transfer to the landlord".to_owned(),
        priority: crate::task::Priority::High,
        tags: ["home".to_owned()].into_iter().collect(),
        status: crate::task::Status::Open,
        due: None,
        time_zone: chrono_tz::Tz::UTC,
        reminder: None,
        recurrence: None,
        series: None,
        created_at: created,
        updated_at: created,
        completed_at: None,
        deleted_at: None,
        version: 1,
        request_digest: None,
    }
}

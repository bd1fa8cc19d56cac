//! The task: the value stored under `task:<id>` in the `tasks` store and the `data` of every
//! `task-events` event ("the task after the change").
//!
//! Every mutation goes through a method here so that `version` and `updated_at` can never be
//! forgotten: consumers order and deduplicate on `version` (a task event's id is derived from
//! it), because events of one task may arrive twice or out of order (the outbox relay after a
//! crash, two replicas racing on one task).

use std::collections::BTreeSet;
use std::fmt;

use chrono::{DateTime, FixedOffset, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::recurrence::{Mode, Rule};

/// How urgent a task is. Declared in ascending order of importance, so `Ord` sorts
/// `low < medium < high < urgent`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(
    feature = "openapi",
    derive(utoipa::ToSchema),
    schema(description = "How urgent a task is, from `low` to `urgent` (the order `sort=priority` uses).")
)]
#[serde(rename_all = "lowercase")]
pub enum Priority {
    Low,
    #[default]
    Medium,
    High,
    Urgent,
}

impl Priority {
    pub const ALL: [Priority; 4] = [Self::Low, Self::Medium, Self::High, Self::Urgent];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Low => "low",
            Self::Medium => "medium",
            Self::High => "high",
            Self::Urgent => "urgent",
        }
    }
}

impl fmt::Display for Priority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Status {
    #[default]
    Open,
    Completed,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Completed => "completed",
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// When to remind the owner: at an absolute instant, or a fixed time before the due time (which
/// then moves with the due time and with every new occurrence of a recurring task).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Reminder {
    /// `{"at": "2026-12-01T08:45:00+01:00"}`
    At(DateTime<FixedOffset>),
    /// `{"before_due_seconds": 900}`
    BeforeDueSeconds(u32),
}

/// The schema of [`Reminder`], built rather than derived: utoipa cannot bound a tuple variant's
/// number, and the bound (at most a year) is what a client most needs to know.
#[cfg(feature = "openapi")]
mod reminder_schema {
    use utoipa::openapi::schema::{AdditionalProperties, KnownFormat, ObjectBuilder, OneOfBuilder, SchemaFormat, Type};
    use utoipa::openapi::{RefOr, Schema};

    use crate::validate::MAX_REMINDER_LEAD_SECONDS;

    fn one_member(name: &str, value: ObjectBuilder) -> ObjectBuilder {
        ObjectBuilder::new()
            .property(name, value)
            .required(name)
            .additional_properties(Some(AdditionalProperties::<Schema>::FreeForm(false)))
    }

    impl utoipa::PartialSchema for super::Reminder {
        fn schema() -> RefOr<Schema> {
            let at = ObjectBuilder::new()
                .schema_type(Type::String)
                .format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime)))
                .description(Some("RFC 3339 with an offset; must not be in the past when it is set."));
            let lead = ObjectBuilder::new()
                .schema_type(Type::Integer)
                .minimum(Some(0))
                .maximum(Some(MAX_REMINDER_LEAD_SECONDS))
                .description(Some("Seconds before the due time; the task needs a due time."));
            OneOfBuilder::new()
                .item(one_member("at", at))
                .item(one_member("before_due_seconds", lead))
                .description(Some("At an absolute instant, or a fixed time before the due time (moving with it)."))
                .into()
        }
    }

    impl utoipa::ToSchema for super::Reminder {}
}

/// What the owner asked for: an RFC 5545 RRULE evaluated in the task's time zone, and whether the
/// next occurrence counts from the previous due time or from the completion.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Recurrence {
    #[cfg_attr(feature = "openapi", schema(value_type = String, examples("FREQ=MONTHLY;BYMONTHDAY=31", "FREQ=WEEKLY;BYDAY=MO,WE;COUNT=10")))]
    pub rule: Rule,
    #[serde(default)]
    pub mode: Mode,
    /// Occurrences to skip (RFC 5545 EXDATE), as the instants they fall on: each must be an
    /// occurrence of the series. A skipped occurrence keeps its index; the series goes on.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[cfg_attr(feature = "openapi", schema(max_items = 366))]
    pub exdates: Vec<DateTime<FixedOffset>>,
}

/// Where an instance sits in its series. Maintained by the system, never sent by clients.
///
/// Occurrence `n` of a series is computed from `anchor` (the due time of occurrence
/// `anchor_index`), never from the previous instance, so monthly-on-the-31st cannot drift.
/// The id of occurrence `n` is derived from `(id, n)`, so duplicate completions create it once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Series {
    pub id: Uuid,
    pub index: u32,
    pub anchor: DateTime<FixedOffset>,
    pub anchor_index: u32,
}

impl Series {
    /// The series a recurring task starts on its own: named after the task, occurrence 0
    /// anchored at its due time.
    pub fn start(task_id: Uuid, due: DateTime<FixedOffset>) -> Self {
        Self { id: task_id, index: 0, anchor: due, anchor_index: 0 }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Task {
    pub id: Uuid,
    /// The user id (JWT `sub`) of the only user who can see and change the task.
    pub owner: String,
    pub title: String,
    // `required` in the schema: always written, though older stored tasks may lack the field.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub description: String,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub priority: Priority,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub tags: BTreeSet<String>,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub status: Status,
    #[serde(default)]
    pub due: Option<DateTime<FixedOffset>>,
    /// IANA zone in which recurrence is evaluated (wall-clock time survives DST changes).
    #[serde(default = "utc")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, required = true, example = "Europe/Berlin"))]
    pub time_zone: Tz,
    #[serde(default)]
    pub reminder: Option<Reminder>,
    #[serde(default)]
    pub recurrence: Option<Recurrence>,
    #[serde(default)]
    pub series: Option<Series>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    #[serde(default)]
    pub completed_at: Option<DateTime<Utc>>,
    /// Set on deleted tasks (seen only in audit snapshots).
    // Deleted tasks stay as tombstones: the version history never restarts (an id re-created at
    // version 1 would reuse the first event's id, which consumers would take for a duplicate),
    // `todo.task.deleted` carries the task as deleted, and the audit trail stays readable.
    #[serde(default)]
    pub deleted_at: Option<DateTime<Utc>>,
    /// Starts at 1 and grows by one with every change; the ETag is this number, quoted.
    #[cfg_attr(feature = "openapi", schema(minimum = 1))]
    pub version: u64,
    /// Set on tasks created with an `Idempotency-Key`: a digest of the normalised request that
    /// created it, compared when the key is used again.
    // Compared against this rather than the task's fields, which PATCH may have changed since:
    // the same request gets the task back, another request under the same key is refused.
    // Never changed after creation; absent for other tasks (and those created before it was kept).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_digest: Option<String>,
}

fn utc() -> Tz {
    Tz::UTC
}

impl Task {
    pub fn is_deleted(&self) -> bool {
        self.deleted_at.is_some()
    }

    pub fn is_open(&self) -> bool {
        self.status == Status::Open && !self.is_deleted()
    }

    /// Records a change: bumps `version` and `updated_at`.
    pub(crate) fn touch(&mut self, now: DateTime<Utc>) {
        self.version += 1;
        self.updated_at = now;
    }

    /// Marks the task completed. Returns `false` (and changes nothing) if it already was, so a
    /// repeated request emits no second `todo.task.completed`.
    pub fn complete(&mut self, now: DateTime<Utc>) -> bool {
        if self.status == Status::Completed {
            return false;
        }
        self.status = Status::Completed;
        self.completed_at = Some(now);
        self.touch(now);
        true
    }

    /// Makes a completed task open again. Returns `false` (and changes nothing) if it was open,
    /// so a repeated request emits no second `todo.task.reopened`. The series position stays:
    /// completing the occurrence again asks for the same next occurrence, which exists already.
    pub fn reopen(&mut self, now: DateTime<Utc>) -> bool {
        if self.status == Status::Open {
            return false;
        }
        self.status = Status::Open;
        self.completed_at = None;
        self.touch(now);
        true
    }

    /// Turns the task into a tombstone. Returns `false` if it already was one.
    pub fn delete(&mut self, now: DateTime<Utc>) -> bool {
        if self.is_deleted() {
            return false;
        }
        self.deleted_at = Some(now);
        self.touch(now);
        true
    }

    /// The `task:<id>` state key.
    pub fn key(&self) -> String {
        task_key(self.id)
    }
}

/// The state key of a task in the `tasks` store.
pub fn task_key(id: Uuid) -> String {
    format!("task:{id}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Task {
        crate::testing::sample_task(Uuid::nil(), "alice")
    }

    #[test]
    fn priorities_sort_by_importance() {
        let mut all = vec![Priority::Urgent, Priority::Low, Priority::High, Priority::Medium];
        all.sort();
        assert_eq!(all, Priority::ALL);
    }

    #[test]
    fn completing_twice_changes_nothing_the_second_time() {
        let mut task = sample();
        let now = Utc::now();
        assert!(task.complete(now));
        assert_eq!((task.status, task.version, task.completed_at), (Status::Completed, 2, Some(now)));
        assert!(!task.complete(now + chrono::Duration::seconds(5)));
        assert_eq!((task.version, task.completed_at), (2, Some(now)));
    }

    #[test]
    fn reopening_undoes_a_completion_once() {
        let mut task = sample();
        let now = Utc::now();
        assert!(!task.reopen(now), "an open task is not reopened");
        assert_eq!(task.version, 1);
        assert!(task.complete(now));
        assert!(task.reopen(now + chrono::Duration::seconds(1)));
        assert_eq!((task.status, task.version, task.completed_at), (Status::Open, 3, None));
        assert!(!task.reopen(now + chrono::Duration::seconds(2)));
        assert_eq!(task.version, 3);
    }

    #[test]
    fn delete_makes_a_tombstone_once() {
        let mut task = sample();
        let now = Utc::now();
        assert!(task.delete(now));
        assert!(task.is_deleted() && !task.is_open());
        assert_eq!(task.version, 2);
        assert!(!task.delete(now));
        assert_eq!(task.version, 2);
    }

    #[test]
    fn reminder_json_shapes() {
        let at: Reminder = serde_json::from_str(r#"{"at":"2026-12-01T08:45:00+01:00"}"#).unwrap();
        assert!(matches!(at, Reminder::At(t) if t.offset().local_minus_utc() == 3600));
        let before: Reminder = serde_json::from_str(r#"{"before_due_seconds":900}"#).unwrap();
        assert_eq!(before, Reminder::BeforeDueSeconds(900));
        assert!(serde_json::from_str::<Reminder>(r#"{"in":5}"#).is_err());
    }

    #[test]
    fn stored_task_round_trips() {
        let task = sample();
        let json = serde_json::to_value(&task).unwrap();
        assert_eq!(json["time_zone"], "UTC");
        assert_eq!(json["priority"], "high");
        let back: Task = serde_json::from_value(json).unwrap();
        assert_eq!(back, task);
    }
}

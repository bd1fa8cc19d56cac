//! Reminder planning: when a task's reminder fires, what fire-reminder does on each task event,
//! and whether a job that fires is still current.
//!
//! The task is the source of truth for *when*; the reminder record (`reminder:<task id>` in the
//! `state` store) remembers *what happened* (scheduled, fired, missed, cancelled) and the task
//! version it reflects. Events of one task can arrive out of order (the outbox relay may publish an
//! old event after a newer one following a crash, and two replicas changing one task race) or
//! twice, so an event older than the record is ignored, and a job re-checks the task when it
//! fires.

use chrono::{DateTime, Duration, FixedOffset, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::delivery::DeliveryView;
use super::task::{Reminder, Task};

/// When `task`'s reminder should fire: never for a completed or deleted task.
pub fn fire_time(task: &Task) -> Option<DateTime<FixedOffset>> {
    if !task.is_open() {
        return None;
    }
    match task.reminder? {
        Reminder::At(at) => Some(at),
        Reminder::BeforeDueSeconds(seconds) => task.due.map(|due| due - Duration::seconds(i64::from(seconds))),
    }
}

/// Whether an event carrying `task` can concern its reminder at all. The first version of a
/// task that wants no reminder cannot: versions start at 1, so there is no older version whose
/// job it would have to cancel, and a newer version handled before it has its own record,
/// which rules. Such an event (the creation of every task without a reminder, the most common
/// event there is) needs neither the record nor a job call.
pub fn concerns_reminder(task: &Task) -> bool {
    task.version > 1 || fire_time(task).is_some()
}

/// The state key of a task's reminder record.
pub fn reminder_key(task: Uuid) -> String {
    format!("reminder:{task}")
}

/// The name of a task's reminder job. Scheduling it again replaces it (`overwrite: true`).
pub fn job_name(task: Uuid) -> String {
    format!("{JOB_PREFIX}{task}")
}

pub const JOB_PREFIX: &str = "reminder-";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReminderStatus {
    /// A job is scheduled for `remind_at`.
    Scheduled,
    /// `todo.reminder.due` was published for `remind_at`.
    Fired,
    /// `remind_at` passed longer ago than the lateness horizon before the job could run.
    Missed,
    /// The task no longer wants a reminder (completed, deleted, reminder removed).
    Cancelled,
}

/// What fire-reminder knows about a task's reminder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReminderRecord {
    pub task_id: Uuid,
    pub status: ReminderStatus,
    pub remind_at: Option<DateTime<Utc>>,
    /// The task version this record reflects; older events are stale.
    pub task_version: u64,
    pub updated_at: DateTime<Utc>,
    #[serde(default)]
    pub fired_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub late_by_ms: Option<u64>,
}

/// The data of a reminder job, handed back verbatim in the callback.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReminderJob {
    pub task_id: Uuid,
    pub remind_at: DateTime<Utc>,
    pub task_version: u64,
}

/// What to do with the job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobChange {
    /// Schedule (or replace) the job to fire at this instant.
    Schedule(DateTime<FixedOffset>),
    /// Delete the job.
    Delete,
    /// Leave the job as it is.
    Keep,
}

/// A change to make: the job change, and the record that claims it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub job: JobChange,
    pub record: ReminderRecord,
}

/// How fire-reminder reacts to one task event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// The record already reflects a newer version of the task (a late, reordered event).
    Stale,
    /// The record reflects exactly this version: the event was processed before, perhaps only
    /// halfway (claimed, then the job call failed). Re-apply the record's job change; it is
    /// idempotent.
    Reapply(ReminderRecord),
    /// Save `plan.record` (guarded by the ETag read), then apply `plan.job`.
    Change(Plan),
}

/// The job change a record stands for.
pub fn job_change(record: &ReminderRecord) -> JobChange {
    match (record.status, record.remind_at) {
        (ReminderStatus::Scheduled, Some(at)) => JobChange::Schedule(at.fixed_offset()),
        (ReminderStatus::Scheduled | ReminderStatus::Cancelled, _) => JobChange::Delete,
        (ReminderStatus::Fired | ReminderStatus::Missed, _) => JobChange::Keep,
    }
}

/// Decides the reaction to `task`, the data of a task event, given the current record.
pub fn plan(task: &Task, record: Option<&ReminderRecord>, now: DateTime<Utc>) -> Decision {
    match record {
        Some(r) if r.task_version > task.version => return Decision::Stale,
        Some(r) if r.task_version == task.version => return Decision::Reapply(r.clone()),
        _ => {}
    }
    let wanted = fire_time(task);
    let current = record.filter(|r| r.status != ReminderStatus::Cancelled).and_then(|r| r.remind_at);
    let base = |status, remind_at| ReminderRecord {
        task_id: task.id,
        status,
        remind_at,
        task_version: task.version,
        updated_at: now,
        fired_at: None,
        late_by_ms: None,
    };
    let plan = match (wanted, record) {
        // Same instant as before: nothing to reschedule; keep what happened to it.
        (Some(at), Some(record)) if current == Some(at.with_timezone(&Utc)) => Plan {
            job: JobChange::Keep,
            record: ReminderRecord { task_version: task.version, updated_at: now, ..record.clone() },
        },
        (Some(at), _) => {
            Plan { job: JobChange::Schedule(at), record: base(ReminderStatus::Scheduled, Some(at.with_timezone(&Utc))) }
        }
        (None, Some(record)) if record.status == ReminderStatus::Scheduled => {
            Plan { job: JobChange::Delete, record: base(ReminderStatus::Cancelled, record.remind_at) }
        }
        (None, Some(record)) => Plan {
            job: JobChange::Keep,
            record: ReminderRecord { task_version: task.version, updated_at: now, ..record.clone() },
        },
        (None, None) => Plan { job: JobChange::Keep, record: base(ReminderStatus::Cancelled, None) },
    };
    Decision::Change(plan)
}

/// What a client is told about a task's reminder (`GET /v1/tasks/{id}/reminder`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReminderView {
    pub task_id: Uuid,
    /// `pending` until fire-reminder has handled the task's latest version, then the record's
    /// status: `scheduled`, `fired`, `missed` or `cancelled`.
    #[cfg_attr(feature = "openapi", schema(value_type = ViewStatus))]
    pub status: String,
    pub remind_at: Option<DateTime<Utc>>,
    pub fired_at: Option<DateTime<Utc>>,
    /// How late the reminder fired, in milliseconds.
    pub late_by_ms: Option<u64>,
    /// Where the fired reminder's delivery stands on each of the user's channels the notifier
    /// has handled (webhook, email): always present, empty until it fired and the notifier
    /// recorded an attempt, so a client can tell "sent" from "your webhook answers 503".
    pub deliveries: Vec<DeliveryView>,
}

/// The values of [`ReminderView::status`], for the schema: `pending` and a record's status.
#[cfg(feature = "openapi")]
#[derive(Debug, utoipa::ToSchema)]
#[schema(rename_all = "lowercase", description = "Where a reminder stands.")]
pub enum ViewStatus {
    Pending,
    Scheduled,
    Fired,
    Missed,
    Cancelled,
}

/// The reminder of `task` as far as it is known: the record when it reflects the task's current
/// version (or when the task no longer wants a reminder), `pending` when the task wants one that
/// fire-reminder has not recorded yet, `None` when there never was one.
pub fn view(task: &Task, record: Option<&ReminderRecord>) -> Option<ReminderView> {
    let from_record = |r: &ReminderRecord| ReminderView {
        task_id: task.id,
        status: serde_json::to_value(r.status).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default(),
        remind_at: r.remind_at,
        fired_at: r.fired_at,
        late_by_ms: r.late_by_ms,
        deliveries: Vec::new(),
    };
    match (record, fire_time(task)) {
        (Some(r), _) if r.task_version >= task.version => Some(from_record(r)),
        (_, Some(at)) => Some(ReminderView {
            task_id: task.id,
            status: "pending".to_owned(),
            remind_at: Some(at.to_utc()),
            fired_at: None,
            late_by_ms: None,
            deliveries: Vec::new(),
        }),
        (Some(r), None) => Some(from_record(r)),
        (None, None) => None,
    }
}

/// The verdict on a job that fired.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FireDecision {
    /// Publish `todo.reminder.due` now.
    Fire,
    /// Too late to be useful: record it as missed, publish nothing.
    Missed,
    /// This reminder already fired (the Scheduler delivers at least once): do nothing.
    AlreadyDone,
    /// The job no longer matches the task (moved, completed, deleted): do nothing.
    Stale(&'static str),
}

/// Decides what a fired job does. `missed_after` is the lateness horizon: a reminder that comes
/// due while the system is down still fires when it is back, unless it is later than this.
pub fn on_fire(
    job: &ReminderJob,
    task: Option<&Task>,
    record: Option<&ReminderRecord>,
    now: DateTime<Utc>,
    missed_after: Duration,
) -> FireDecision {
    let Some(task) = task else {
        return FireDecision::Stale("the task does not exist");
    };
    if task.is_deleted() {
        return FireDecision::Stale("the task was deleted");
    }
    if !task.is_open() {
        return FireDecision::Stale("the task is completed");
    }
    match fire_time(task) {
        None => return FireDecision::Stale("the task has no reminder any more"),
        Some(at) if at.with_timezone(&Utc) != job.remind_at => return FireDecision::Stale("the reminder was moved"),
        Some(_) => {}
    }
    if let Some(record) = record {
        let done = matches!(record.status, ReminderStatus::Fired | ReminderStatus::Missed);
        if done && record.remind_at == Some(job.remind_at) {
            return FireDecision::AlreadyDone;
        }
    }
    if now - job.remind_at > missed_after {
        return FireDecision::Missed;
    }
    FireDecision::Fire
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::task::Status;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn task(version: u64, reminder: Option<Reminder>, due: Option<&str>) -> Task {
        let mut task = crate::testing::sample_task(Uuid::from_u128(1), "alice");
        task.due = due.map(|d| DateTime::parse_from_rfc3339(d).unwrap());
        task.reminder = reminder;
        task.version = version;
        task
    }

    const DUE: &str = "2026-12-01T09:00:00+01:00";

    #[test]
    fn fire_time_follows_the_due_time() {
        let relative = task(1, Some(Reminder::BeforeDueSeconds(900)), Some(DUE));
        assert_eq!(fire_time(&relative).unwrap().to_rfc3339(), "2026-12-01T08:45:00+01:00");
        let absolute =
            task(1, Some(Reminder::At(DateTime::parse_from_rfc3339("2026-11-30T20:00:00Z").unwrap())), Some(DUE));
        assert_eq!(fire_time(&absolute).unwrap().to_rfc3339(), "2026-11-30T20:00:00+00:00");
        let mut done = relative.clone();
        done.complete(t("2026-11-02T00:00:00Z"));
        assert_eq!(fire_time(&done), None);
        assert_eq!(fire_time(&task(1, None, Some(DUE))), None);
    }

    #[test]
    fn only_a_first_version_without_a_reminder_is_of_no_concern() {
        assert!(!concerns_reminder(&task(1, None, Some(DUE))));
        assert!(!concerns_reminder(&task(1, None, None)));
        assert!(concerns_reminder(&task(1, Some(Reminder::BeforeDueSeconds(900)), Some(DUE))));
        // A later version may have to cancel what an earlier one scheduled.
        assert!(concerns_reminder(&task(2, None, Some(DUE))));
        // A reminder relative to a due time that is not set wants nothing.
        assert!(!concerns_reminder(&task(1, Some(Reminder::BeforeDueSeconds(900)), None)));
    }

    #[test]
    fn a_new_reminder_is_scheduled() {
        let plan =
            change(plan(&task(1, Some(Reminder::BeforeDueSeconds(900)), Some(DUE)), None, t("2026-11-02T00:00:00Z")));
        assert!(matches!(plan.job, JobChange::Schedule(at) if at.to_rfc3339() == "2026-12-01T08:45:00+01:00"));
        assert_eq!(plan.record.status, ReminderStatus::Scheduled);
        assert_eq!(plan.record.remind_at, Some(t("2026-12-01T07:45:00Z")));
        assert_eq!(plan.record.task_version, 1);
    }

    fn change(decision: Decision) -> Plan {
        match decision {
            Decision::Change(plan) => plan,
            other => panic!("expected a change, got {other:?}"),
        }
    }

    #[test]
    fn older_events_are_stale_and_repeated_ones_reapply_the_record() {
        let now = t("2026-11-02T00:00:00Z");
        let record = change(plan(&task(3, Some(Reminder::BeforeDueSeconds(900)), Some(DUE)), None, now)).record;
        assert_eq!(plan(&task(2, None, Some(DUE)), Some(&record), now), Decision::Stale);
        assert_eq!(
            plan(&task(3, Some(Reminder::BeforeDueSeconds(900)), Some(DUE)), Some(&record), now),
            Decision::Reapply(record.clone())
        );
        assert!(
            matches!(job_change(&record), JobChange::Schedule(at) if at.with_timezone(&Utc) == t("2026-12-01T07:45:00Z"))
        );
    }

    #[test]
    fn job_change_of_each_status() {
        let mut record =
            change(plan(&task(1, Some(Reminder::BeforeDueSeconds(900)), Some(DUE)), None, t("2026-11-02T00:00:00Z")))
                .record;
        record.status = ReminderStatus::Cancelled;
        assert_eq!(job_change(&record), JobChange::Delete);
        record.status = ReminderStatus::Fired;
        assert_eq!(job_change(&record), JobChange::Keep);
        record.status = ReminderStatus::Missed;
        assert_eq!(job_change(&record), JobChange::Keep);
    }

    #[test]
    fn moving_the_due_time_reschedules_and_unrelated_edits_keep_the_job() {
        let now = t("2026-11-02T00:00:00Z");
        let first = change(plan(&task(1, Some(Reminder::BeforeDueSeconds(900)), Some(DUE)), None, now)).record;
        let retitled = change(plan(&task(2, Some(Reminder::BeforeDueSeconds(900)), Some(DUE)), Some(&first), now));
        assert_eq!(retitled.job, JobChange::Keep);
        assert_eq!((retitled.record.status, retitled.record.task_version), (ReminderStatus::Scheduled, 2));
        let moved = change(plan(
            &task(3, Some(Reminder::BeforeDueSeconds(900)), Some("2026-12-02T09:00:00+01:00")),
            Some(&retitled.record),
            now,
        ));
        assert!(matches!(moved.job, JobChange::Schedule(at) if at.to_rfc3339() == "2026-12-02T08:45:00+01:00"));
    }

    #[test]
    fn completing_or_deleting_cancels_a_scheduled_job() {
        let now = t("2026-11-02T00:00:00Z");
        let scheduled = change(plan(&task(1, Some(Reminder::BeforeDueSeconds(900)), Some(DUE)), None, now)).record;
        let mut completed = task(2, Some(Reminder::BeforeDueSeconds(900)), Some(DUE));
        completed.status = Status::Completed;
        let cancel = change(plan(&completed, Some(&scheduled), now));
        assert_eq!(cancel.job, JobChange::Delete);
        assert_eq!(cancel.record.status, ReminderStatus::Cancelled);
        // Nothing scheduled: nothing to delete, but the version is remembered.
        let never = change(plan(&task(1, None, Some(DUE)), None, now));
        assert_eq!((never.job, never.record.status), (JobChange::Keep, ReminderStatus::Cancelled));
    }

    #[test]
    fn the_view_is_pending_until_the_record_catches_up() {
        let now = t("2026-11-02T00:00:00Z");
        let v1 = task(1, Some(Reminder::BeforeDueSeconds(900)), Some(DUE));
        assert_eq!(view(&v1, None).unwrap().status, "pending");
        let record = change(plan(&v1, None, now)).record;
        assert_eq!(view(&v1, Some(&record)).unwrap().status, "scheduled");
        let moved = task(2, Some(Reminder::BeforeDueSeconds(60)), Some(DUE));
        let shown = view(&moved, Some(&record)).unwrap();
        assert_eq!((shown.status.as_str(), shown.remind_at), ("pending", Some(t("2026-12-01T07:59:00Z"))));
        assert_eq!(view(&task(1, None, Some(DUE)), None), None);
        let mut done = v1.clone();
        done.complete(now);
        assert_eq!(view(&done, Some(&record)).unwrap().status, "scheduled", "until fire-reminder cancels it");
    }

    #[test]
    fn a_fired_job_is_checked_against_the_task() {
        let live = task(1, Some(Reminder::BeforeDueSeconds(900)), Some(DUE));
        let job = ReminderJob { task_id: live.id, remind_at: t("2026-12-01T07:45:00Z"), task_version: 1 };
        let on_time = t("2026-12-01T07:45:00.300Z");
        let horizon = Duration::hours(24);
        assert_eq!(on_fire(&job, Some(&live), None, on_time, horizon), FireDecision::Fire);
        assert_eq!(on_fire(&job, None, None, on_time, horizon), FireDecision::Stale("the task does not exist"));

        let moved = task(2, Some(Reminder::BeforeDueSeconds(600)), Some(DUE));
        assert_eq!(on_fire(&job, Some(&moved), None, on_time, horizon), FireDecision::Stale("the reminder was moved"));

        let mut deleted = live.clone();
        deleted.delete(on_time);
        assert_eq!(on_fire(&job, Some(&deleted), None, on_time, horizon), FireDecision::Stale("the task was deleted"));

        let fired = ReminderRecord {
            task_id: live.id,
            status: ReminderStatus::Fired,
            remind_at: Some(job.remind_at),
            task_version: 1,
            updated_at: on_time,
            fired_at: Some(on_time),
            late_by_ms: Some(300),
        };
        assert_eq!(on_fire(&job, Some(&live), Some(&fired), on_time, horizon), FireDecision::AlreadyDone);

        // Down for two hours: still fires. Down for two days: missed.
        assert_eq!(on_fire(&job, Some(&live), None, t("2026-12-01T09:45:00Z"), horizon), FireDecision::Fire);
        assert_eq!(on_fire(&job, Some(&live), None, t("2026-12-03T07:45:00Z"), horizon), FireDecision::Missed);
    }
}

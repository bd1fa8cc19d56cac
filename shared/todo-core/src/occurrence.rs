//! The next instance of a recurring task, as the `todo.task.create` request that creates it.

use chrono::{DateTime, Utc};

use super::recurrence::{self, RecurrenceError};
use super::task::{Reminder, Series, Task};
use super::validate::NewTask;
use crate::events::{CreateTaskRequest, occurrence_request_id};

/// The request for the occurrence after `task`, completed at `completed_at`; `None` when the
/// task does not recur or its series has ended (COUNT or UNTIL).
///
/// The request id is derived from (series, occurrence index), so every duplicate of the
/// completion event, on any replica, asks for the same task. An absolute reminder keeps its
/// distance to the due time; a relative one moves with it by definition.
pub fn next_instance(task: &Task, completed_at: DateTime<Utc>) -> Result<Option<CreateTaskRequest>, RecurrenceError> {
    let (Some(recurrence), Some(due)) = (&task.recurrence, task.due) else {
        return Ok(None);
    };
    let series = task.series.unwrap_or(Series::start(task.id, due));
    let Some(next) = recurrence::next(
        &recurrence.rule,
        recurrence.mode,
        task.time_zone,
        &series,
        due,
        completed_at,
        &recurrence.exdates,
    )?
    else {
        return Ok(None);
    };
    let reminder = task.reminder.map(|reminder| match reminder {
        Reminder::At(at) => Reminder::At((next.due + (at - due)).with_timezone(at.offset())),
        relative @ Reminder::BeforeDueSeconds(_) => relative,
    });
    Ok(Some(CreateTaskRequest {
        request_id: occurrence_request_id(series.id, next.index),
        owner: task.owner.clone(),
        task: NewTask {
            title: task.title.clone(),
            description: task.description.clone(),
            priority: task.priority,
            tags: task.tags.iter().cloned().collect(),
            due: Some(next.due),
            time_zone: Some(task.time_zone),
            reminder,
            recurrence: Some(recurrence.clone()),
        },
        series: Some(Series { id: series.id, index: next.index, anchor: next.anchor, anchor_index: next.anchor_index }),
    }))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use chrono::DateTime;
    use chrono_tz::Tz;
    use uuid::Uuid;

    use super::*;
    use crate::recurrence::Mode;
    use crate::task::{Priority, Recurrence, Status};

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().to_utc()
    }

    fn recurring(rule: &str, mode: Mode, index: u32) -> Task {
        let due = DateTime::parse_from_rfc3339("2026-01-31T09:00:00+01:00").unwrap();
        Task {
            id: Uuid::from_u128(9),
            owner: "alice".into(),
            title: "Invoice".into(),
            description: String::new(),
            priority: Priority::Medium,
            tags: BTreeSet::from(["work".to_owned()]),
            status: Status::Completed,
            due: Some(due),
            time_zone: Tz::Europe__Berlin,
            reminder: Some(Reminder::At(DateTime::parse_from_rfc3339("2026-01-30T18:00:00+01:00").unwrap())),
            recurrence: Some(Recurrence { rule: rule.parse().unwrap(), mode, exdates: Vec::new() }),
            series: Some(Series { id: Uuid::from_u128(1), index, anchor: due, anchor_index: 0 }),
            created_at: t("2026-01-01T00:00:00Z"),
            updated_at: t("2026-01-31T10:00:00Z"),
            completed_at: Some(t("2026-01-31T10:00:00Z")),
            deleted_at: None,
            version: 2,
            request_digest: None,
        }
    }

    #[test]
    fn the_next_instance_keeps_the_series_and_shifts_an_absolute_reminder() {
        let task = recurring("FREQ=MONTHLY;BYMONTHDAY=-1", Mode::Strict, 0);
        let request = next_instance(&task, t("2026-01-31T10:00:00Z")).unwrap().unwrap();
        assert_eq!(request.request_id, format!("occurrence:{}:1", Uuid::from_u128(1)));
        assert_eq!(request.owner, "alice");
        assert_eq!(request.task.due.unwrap().to_rfc3339(), "2026-02-28T09:00:00+01:00", "last day of the month");
        assert_eq!(
            request.task.reminder,
            Some(Reminder::At(DateTime::parse_from_rfc3339("2026-02-27T18:00:00+01:00").unwrap()))
        );
        let series = request.series.unwrap();
        assert_eq!((series.id, series.index, series.anchor_index), (Uuid::from_u128(1), 1, 0));
        assert_eq!(request.task.tags, vec!["work".to_owned()]);
        assert_eq!(request.task.time_zone, Some(Tz::Europe__Berlin));
    }

    #[test]
    fn a_skipped_occurrence_is_passed_over_and_the_skips_travel_with_the_series() {
        let mut task = recurring("FREQ=MONTHLY;BYMONTHDAY=-1", Mode::Strict, 0);
        let february = DateTime::parse_from_rfc3339("2026-02-28T09:00:00+01:00").unwrap();
        if let Some(recurrence) = task.recurrence.as_mut() {
            recurrence.exdates = vec![february];
        }
        let request = next_instance(&task, t("2026-01-31T10:00:00Z")).unwrap().unwrap();
        assert_eq!(request.task.due.unwrap().to_rfc3339(), "2026-03-31T09:00:00+02:00", "March, in summer time");
        assert_eq!(request.series.unwrap().index, 2, "February keeps index 1");
        assert_eq!(request.task.recurrence.unwrap().exdates, [february]);
    }

    #[test]
    fn duplicate_completions_ask_for_the_same_instance() {
        let task = recurring("FREQ=WEEKLY", Mode::Strict, 0);
        let first = next_instance(&task, t("2026-01-31T10:00:00Z")).unwrap();
        let again = next_instance(&task, t("2026-01-31T10:00:00Z")).unwrap();
        assert_eq!(first, again);
    }

    #[test]
    fn a_finished_or_one_off_series_has_no_next_instance() {
        let last = recurring("FREQ=MONTHLY;COUNT=2", Mode::Strict, 1);
        assert_eq!(next_instance(&last, t("2026-03-01T10:00:00Z")).unwrap(), None);
        let mut one_off = recurring("FREQ=DAILY", Mode::Strict, 0);
        one_off.recurrence = None;
        assert_eq!(next_instance(&one_off, t("2026-01-31T10:00:00Z")).unwrap(), None);
    }

    #[test]
    fn after_completion_counts_from_the_completion_day() {
        let task = recurring("FREQ=DAILY;INTERVAL=3", Mode::AfterCompletion, 0);
        let request = next_instance(&task, t("2026-02-10T15:00:00Z")).unwrap().unwrap();
        assert_eq!(request.task.due.unwrap().to_rfc3339(), "2026-02-13T09:00:00+01:00");
        let series = request.series.unwrap();
        assert_eq!((series.index, series.anchor_index), (1, 1));
        assert_eq!(Some(series.anchor), request.task.due);
    }
}

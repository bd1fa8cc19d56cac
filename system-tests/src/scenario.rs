//! The demo scenario, played against a running system through task-api only: what `make demo`
//! prints and what the end-to-end tests assert.
//!
//! 1. create a monthly recurring task whose reminder is a few seconds ahead;
//! 2. see the reminder fire (fire-reminder's record, read through task-api);
//! 3. complete the task;
//! 4. see the next occurrence appear (created by on-task-completed → create-task), one month on;
//! 5. see the next occurrence's own reminder scheduled;
//! 6. read the first task's audit trail (audit-writer).
//!
//! Every step waits for the asynchronous part with a deadline, and fails naming what did not
//! happen.

use std::time::Duration;

use anyhow::{Context as _, bail};
use chrono::{DateTime, FixedOffset, Months, SecondsFormat, SubsecRound as _, Utc};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::api::{Api, eventually};

/// How long an asynchronous step may take before the scenario fails.
pub const STEP_TIMEOUT: Duration = Duration::from_secs(30);

/// What the scenario saw; the tests assert on it.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub task_id: String,
    pub reminder_late_by_ms: u64,
    pub next_task_id: String,
    pub next_due: DateTime<FixedOffset>,
    pub next_reminder_at: DateTime<Utc>,
    pub audit_changes: Vec<String>,
}

/// Plays the scenario, reporting each step through `say`.
pub async fn run(api: &Api, reminder_in: Duration, mut say: impl FnMut(&str)) -> anyhow::Result<Outcome> {
    let label = format!("Pay rent (demo {})", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let now = Utc::now();
    let remind_at = now + chrono::Duration::from_std(reminder_in).context("reminder delay")?;
    let due =
        (now + chrono::Duration::days(1)).trunc_subsecs(0).with_timezone(&chrono_tz::Europe::Berlin).fixed_offset();
    let body = json!({
        "title": label,
        "description": "Created by the todo-functions demo",
        "priority": "high",
        "tags": ["demo"],
        "due": due.to_rfc3339_opts(SecondsFormat::Secs, false),
        "time_zone": "Europe/Berlin",
        "reminder": {"at": remind_at.to_rfc3339_opts(SecondsFormat::Millis, true)},
        "recurrence": {"rule": "FREQ=MONTHLY", "mode": "strict"},
    });
    let task = api.post("/v1/tasks", Some(&body), StatusCode::CREATED).await.context("creating the task")?;
    let task_id = string(&task, "id")?;
    say(&format!(
        "created {label:?} ({task_id}), monthly, due {due}, reminder at {}",
        remind_at.to_rfc3339_opts(SecondsFormat::Millis, true)
    ));

    let reminder = eventually("the reminder to fire", reminder_in + STEP_TIMEOUT, || async {
        let reminder = api.get(&format!("/v1/tasks/{task_id}/reminder")).await?;
        Ok((reminder["status"] == "fired").then_some(reminder))
    })
    .await?;
    let late_by_ms = reminder["late_by_ms"].as_u64().context("late_by_ms of a fired reminder")?;
    say(&format!(
        "reminder fired at {} ({late_by_ms} ms after it was due)",
        reminder["fired_at"].as_str().unwrap_or("?")
    ));

    let completed = api.post(&format!("/v1/tasks/{task_id}/complete"), None, StatusCode::OK).await?;
    if completed["status"] != "completed" {
        bail!("completing answered {completed}");
    }
    say(&format!("completed {task_id}"));

    let query = [("tag", "demo"), ("status", "open"), ("q", label.as_str())];
    let next = eventually("the next occurrence to appear", STEP_TIMEOUT, || async {
        let page = api.get_query("/v1/tasks", &query).await?;
        let items = page["items"].as_array().cloned().unwrap_or_default();
        Ok(items.into_iter().find(|t| t["id"] != task["id"] && t["series"]["index"] == 1))
    })
    .await?;
    let next_task_id = string(&next, "id")?;
    let next_due = DateTime::parse_from_rfc3339(&string(&next, "due")?).context("due of the next occurrence")?;
    let expected_due = due.checked_add_months(Months::new(1)).context("due + 1 month")?;
    if next_due != expected_due {
        bail!("the next occurrence is due {next_due}, expected {expected_due}");
    }
    say(&format!("next occurrence {next_task_id} appeared, due {next_due}"));

    let next_reminder = eventually("the next occurrence's reminder to be scheduled", STEP_TIMEOUT, || async {
        let reminder = api.get(&format!("/v1/tasks/{next_task_id}/reminder")).await?;
        Ok((reminder["status"] == "scheduled").then_some(reminder))
    })
    .await?;
    let next_reminder_at = DateTime::parse_from_rfc3339(&string(&next_reminder, "remind_at")?)
        .context("remind_at of the next reminder")?
        .to_utc();
    say(&format!("its reminder is scheduled for {}", next_reminder_at.to_rfc3339_opts(SecondsFormat::Millis, true)));

    let trail = eventually("the audit trail to show the creation and the completion", STEP_TIMEOUT, || async {
        let trail = api.get(&format!("/v1/tasks/{task_id}/audit")).await?;
        let changes: Vec<String> = trail["items"]
            .as_array()
            .map(|items| items.iter().filter_map(|e| e["change"].as_str().map(str::to_owned)).collect())
            .unwrap_or_default();
        Ok((changes.contains(&"created".to_owned()) && changes.contains(&"completed".to_owned())).then_some(trail))
    })
    .await?;
    say(&format!("audit trail of {task_id}:"));
    let mut audit_changes = Vec::new();
    for entry in trail["items"].as_array().into_iter().flatten() {
        let change = entry["change"].as_str().unwrap_or("?").to_owned();
        say(&format!("  v{} {change} at {}", entry["task_version"], entry["occurred_at"].as_str().unwrap_or("?")));
        audit_changes.push(change);
    }
    Ok(Outcome { task_id, reminder_late_by_ms: late_by_ms, next_task_id, next_due, next_reminder_at, audit_changes })
}

fn string(value: &Value, field: &str) -> anyhow::Result<String> {
    value[field].as_str().map(str::to_owned).with_context(|| format!("no {field} in {value}"))
}

//! fire-reminder: owns every reminder job, and fires reminders.
//!
//! Dapr delivers a job only to the app-id that scheduled it, so this one function both reacts
//! to `task-events` (schedule, reschedule or delete job `reminder-<task id>` through its own
//! sidecar) and handles the callback `POST /job/reminder-<task id>` (re-read the task; if the
//! reminder is still current, publish `todo.reminder.due` to `reminders` and record it fired).
//!
//! Events of one task may arrive twice, out of order (the outbox relay after a crash, two
//! task-api replicas racing on one task) or concurrently on two replicas. The reminder record
//! `reminder:<task id>` is the claim: an event first saves the record for its task version
//! (ETag-guarded), then changes the job, then re-reads the record and re-applies a newer claim
//! if one appeared meanwhile, so the job always ends up matching the newest version. A job that
//! fires re-checks the task anyway.
//! The first version of a task without a reminder needs no record: nothing older can exist.
//!
//! The callback answers 2xx only once the reminder was published (or is stale), so a failed
//! publish is retried under the job's failure policy; a republish carries the same CloudEvent
//! id. A reminder that comes due while the system is down fires when it is back, with its
//! lateness, unless it is later than `REMINDER_MISSED_AFTER_SECS`: then it is recorded missed.

use std::time::Duration;

use anyhow::anyhow;
use dapr_fn::clock::Clock;
use dapr_fn::dapr::{Dapr, DaprError, FailurePolicy, Job, Publish, SaveItem};
use dapr_fn::runtime::{Event, Function, HandlerError, HandlerResult, JobCall, Subscription};
use serde::Deserialize;
use todo_core::events::{ReminderDue, TaskChange, components, reminder_event_id, topics, types};
use todo_core::reminder::{
    self, Decision, FireDecision, JobChange, ReminderJob, ReminderRecord, ReminderStatus, job_name, reminder_key,
};
use todo_core::task::Task;
use todo_store::TaskStore;
use tracing::{debug, info, warn};

pub const APP_ID: &str = "fire-reminder";
pub const ROUTE: &str = "/events/task-events";

/// How many times a claim is re-applied before giving up (and retrying the event).
const RECONCILE_ROUNDS: usize = 5;

#[derive(Debug, Clone, Deserialize)]
pub struct Config {
    /// `REMINDER_MISSED_AFTER_SECS`: a reminder later than this is recorded missed, not fired.
    #[serde(default = "default_missed_after")]
    pub reminder_missed_after_secs: u64,
    /// `REMINDER_JOB_RETRY_INTERVAL_SECS`: the job failure policy's interval.
    #[serde(default = "default_retry_interval")]
    pub reminder_job_retry_interval_secs: u64,
    /// `REMINDER_JOB_MAX_RETRIES`: the job failure policy's retries after the first attempt.
    #[serde(default = "default_max_retries")]
    pub reminder_job_max_retries: u32,
}

fn default_missed_after() -> u64 {
    24 * 3600
}
fn default_retry_interval() -> u64 {
    5
}
fn default_max_retries() -> u32 {
    12
}

impl Default for Config {
    fn default() -> Self {
        Self {
            reminder_missed_after_secs: default_missed_after(),
            reminder_job_retry_interval_secs: default_retry_interval(),
            reminder_job_max_retries: default_max_retries(),
        }
    }
}

pub fn function(dapr: Dapr) -> anyhow::Result<Function> {
    let config: Config = envy::from_env().map_err(|e| anyhow!("fire-reminder configuration: {e}"))?;
    Ok(build(dapr, config, Clock::system()))
}

pub fn build(dapr: Dapr, config: Config, clock: Clock) -> Function {
    let app = Reminders { tasks: TaskStore::new(dapr.clone()), dapr, config, clock };
    let on_event = app.clone();
    Function::new(APP_ID)
        .subscribe(
            Subscription::new(components::PUBSUB, topics::TASK_EVENTS)
                .route(ROUTE, move |event| on_event.clone().on_task_event(event)),
        )
        .on_job(reminder::JOB_PREFIX, move |call| app.clone().on_job(call))
}

#[derive(Debug, Clone)]
struct Reminders {
    dapr: Dapr,
    tasks: TaskStore,
    config: Config,
    clock: Clock,
}

impl Reminders {
    async fn read_record(&self, task: uuid::Uuid) -> Result<(Option<ReminderRecord>, Option<String>), DaprError> {
        Ok(match self.dapr.get_state::<ReminderRecord>(components::STATE_STORE, &reminder_key(task)).await? {
            Some(v) => (Some(v.value), v.etag),
            None => (None, None),
        })
    }

    /// Saves `record` if the stored one is still the one read (`etag`), or absent when none was.
    async fn save_record(&self, record: &ReminderRecord, etag: Option<String>) -> Result<bool, DaprError> {
        let item = SaveItem::new(reminder_key(record.task_id), record)?;
        let item = if etag.is_some() { item.if_match(etag) } else { item.if_absent() };
        match self.dapr.save_state(components::STATE_STORE, &[item]).await {
            Ok(()) => Ok(true),
            Err(DaprError::EtagMismatch { .. }) => Ok(false),
            // A first-write insert of a key that now exists fails with 500: check for it.
            Err(err @ DaprError::Status { .. }) => {
                let (current, _) = self.read_record(record.task_id).await?;
                if current.is_some() { Ok(false) } else { Err(err) }
            }
            Err(err) => Err(err),
        }
    }

    async fn on_task_event(self, event: Event<Task>) -> HandlerResult {
        if TaskChange::from_event_type(&event.event_type).is_none() {
            return Err(HandlerError::drop(format!("{:?} is not a task event type", event.event_type)));
        }
        let task = event.data;
        if !reminder::concerns_reminder(&task) {
            debug!(task_id = %task.id, "first version without a reminder: nothing to do");
            return Ok(());
        }
        let (record, etag) = self.read_record(task.id).await?;
        let claimed = match reminder::plan(&task, record.as_ref(), self.clock.now()) {
            Decision::Stale => {
                debug!(task_id = %task.id, version = task.version, "older than the reminder record: ignored");
                return Ok(());
            }
            Decision::Reapply(record) => record,
            Decision::Change(plan) => {
                if !self.save_record(&plan.record, etag).await? {
                    return Err(HandlerError::retry(anyhow!(
                        "reminder record of task {} changed concurrently",
                        task.id
                    )));
                }
                if plan.job == JobChange::Keep {
                    return Ok(());
                }
                plan.record
            }
        };
        self.reconcile(claimed).await
    }

    /// Applies the job change of `claimed`, then re-reads the record: if a newer version was
    /// claimed meanwhile, its change may have been overwritten by ours, so apply it again.
    async fn reconcile(&self, mut claimed: ReminderRecord) -> HandlerResult {
        for _ in 0..RECONCILE_ROUNDS {
            self.apply(&claimed).await?;
            let (latest, _) = self.read_record(claimed.task_id).await?;
            match latest {
                Some(latest) if latest.task_version > claimed.task_version => claimed = latest,
                _ => return Ok(()),
            }
        }
        Err(HandlerError::retry(anyhow!("reminder of task {} kept changing", claimed.task_id)))
    }

    async fn apply(&self, record: &ReminderRecord) -> Result<(), DaprError> {
        let name = job_name(record.task_id);
        match reminder::job_change(record) {
            JobChange::Schedule(at) => {
                let data =
                    ReminderJob { task_id: record.task_id, remind_at: at.to_utc(), task_version: record.task_version };
                let data = serde_json::to_value(&data)
                    .map_err(|source| DaprError::Encode { what: "reminder job data".into(), source })?;
                let policy = FailurePolicy::Constant {
                    interval: Duration::from_secs(self.config.reminder_job_retry_interval_secs),
                    max_retries: Some(self.config.reminder_job_max_retries),
                };
                self.dapr.schedule_job(&name, &Job::once_at(at, data).failure_policy(policy)).await?;
                info!(task_id = %record.task_id, remind_at = %at, "reminder scheduled");
            }
            JobChange::Delete => {
                self.dapr.delete_job(&name).await?;
                info!(task_id = %record.task_id, "reminder cancelled");
            }
            JobChange::Keep => {}
        }
        Ok(())
    }

    async fn on_job(self, call: JobCall<ReminderJob>) -> HandlerResult {
        let job = call.data;
        if call.name != job_name(job.task_id) {
            return Err(HandlerError::drop(format!("job {:?} carries data for task {}", call.name, job.task_id)));
        }
        let task = self.tasks.get(job.task_id).await?.map(|v| v.value);
        let (record, _) = self.read_record(job.task_id).await?;
        let now = self.clock.now();
        let horizon =
            chrono::Duration::seconds(i64::try_from(self.config.reminder_missed_after_secs).unwrap_or(i64::MAX));
        match reminder::on_fire(&job, task.as_ref(), record.as_ref(), now, horizon) {
            FireDecision::Stale(reason) => info!(task_id = %job.task_id, reason, "stale reminder job: nothing to do"),
            FireDecision::AlreadyDone => info!(task_id = %job.task_id, "reminder already handled"),
            FireDecision::Missed => {
                warn!(task_id = %job.task_id, remind_at = %job.remind_at, "reminder missed: later than the horizon");
                self.mark(&job, ReminderStatus::Missed, now).await?;
            }
            FireDecision::Fire => {
                let Some(task) = task else {
                    return Err(HandlerError::retry(anyhow!("task vanished")));
                };
                let due = ReminderDue::new(&task, job.remind_at, now);
                let options = Publish::new(types::REMINDER_DUE)
                    .id(reminder_event_id(task.id, job.remind_at))
                    .partition_key(task.id.to_string())
                    .subject(task.id.to_string());
                self.dapr.publish(components::PUBSUB, topics::REMINDERS, &due, &options).await?;
                metrics::histogram!("todo_reminder_lateness_seconds", "function" => APP_ID)
                    .record(due.late_by_ms as f64 / 1000.0);
                info!(task_id = %task.id, late_by_ms = due.late_by_ms, "reminder fired");
                self.mark(&job, ReminderStatus::Fired, now).await?;
            }
        }
        Ok(())
    }

    /// Records what happened to the reminder at `job.remind_at`, unless the record has moved on
    /// to another reminder time meanwhile.
    async fn mark(
        &self,
        job: &ReminderJob,
        status: ReminderStatus,
        now: chrono::DateTime<chrono::Utc>,
    ) -> HandlerResult {
        for _ in 0..RECONCILE_ROUNDS {
            let (record, etag) = self.read_record(job.task_id).await?;
            let base = record.unwrap_or(ReminderRecord {
                task_id: job.task_id,
                status,
                remind_at: Some(job.remind_at),
                task_version: job.task_version,
                updated_at: now,
                fired_at: None,
                late_by_ms: None,
            });
            if base.remind_at != Some(job.remind_at) {
                return Ok(());
            }
            let late_by_ms = (now - job.remind_at).num_milliseconds().max(0).unsigned_abs();
            let updated =
                ReminderRecord { status, updated_at: now, fired_at: Some(now), late_by_ms: Some(late_by_ms), ..base };
            if self.save_record(&updated, etag).await? {
                return Ok(());
            }
        }
        Err(HandlerError::retry(anyhow!("could not record the reminder of task {}", job.task_id)))
    }
}

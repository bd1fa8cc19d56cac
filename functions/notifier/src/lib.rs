//! notifier: tells people their reminder is due, by webhook and by email, once per channel.
//!
//! It consumes `todo.reminder.due` from `reminders` (consumer group and app-id `notifier`,
//! dead-letter topic `notifier-dlq`), reads the owner's channels (`channels:<user>` in the
//! `notify` store, set through task-api's `PUT /v1/me/notifications`) and delivers on each:
//!
//! - a webhook is called directly ([`webhook`]: no redirects, every resolved address checked),
//!   signed per Standard Webhooks with `webhook-id` = the reminder's CloudEvent id;
//! - an email goes through the `email` output binding, one call at a time ([`email`]).
//!
//! Each delivery is claimed, sent and settled in its record (`delivery:<event id>:<channel>`
//! in the `deliveries` store; the rules are `todo_core::delivery`), so a duplicated or
//! redelivered event sends once per channel. An attempt that failed in a way worth repeating is
//! retried by a Dapr job (`notify-…`) at the backoff's time, not by answering RETRY, which would
//! hold the partition and delay everyone's reminders behind one broken webhook. A final failure
//! (4xx, a refused address, the budget spent) is recorded `failed` and the event is published to
//! the dead-letter topic. `docs/notifier.md` has the design and its reasons.

pub mod email;
pub mod webhook;

use std::sync::Arc;
use std::time::Duration;

use anyhow::anyhow;
use dapr_fn::clock::Clock;
use dapr_fn::dapr::{Dapr, DaprError, FailurePolicy, Job, Publish, SaveItem};
use dapr_fn::runtime::{Event, Function, HandlerError, HandlerResult, JobCall, Subscription};
use serde::{Deserialize, Serialize};
use todo_core::delivery::{
    self, Channel, Claim, DeliveryRecord, Next, RetryPolicy, Sent, Trigger, delivery_key, retry_job_name,
};
use todo_core::events::{ReminderDue, components, topics, types};
use todo_core::notification::{Channels, TargetPolicy, channels_key};
use tracing::{info, warn};

pub const APP_ID: &str = "notifier";
pub const ROUTE: &str = "/events/reminders";

/// How often a lost race on a delivery record is re-read before the trigger is retried.
const CLAIM_ROUNDS: usize = 3;

/// Configuration, from the environment (envy).
#[derive(Debug, Clone, Deserialize)]
pub struct Config {
    /// `NOTIFY_ALLOW_LOOPBACK_HTTP`: development only: webhooks may be plain http to this host.
    #[serde(default)]
    pub notify_allow_loopback_http: bool,
    /// `NOTIFIER_TASK_LINK_BASE`: the public base URL of task-api, for the link to the task.
    #[serde(default = "default_link_base")]
    pub notifier_task_link_base: String,
    /// `NOTIFIER_MAX_ATTEMPTS`: attempts per channel, the first included.
    #[serde(default = "default_max_attempts")]
    pub notifier_max_attempts: u32,
    /// `NOTIFIER_FIRST_BACKOFF_MS`: the wait before the second attempt (then doubling).
    #[serde(default = "default_first_backoff")]
    pub notifier_first_backoff_ms: u64,
    /// `NOTIFIER_MAX_BACKOFF_MS`: the longest wait between attempts.
    #[serde(default = "default_max_backoff")]
    pub notifier_max_backoff_ms: u64,
    /// `NOTIFIER_WEBHOOK_TIMEOUT_MS`: one webhook call, connect to last byte.
    #[serde(default = "default_webhook_timeout")]
    pub notifier_webhook_timeout_ms: u64,
    /// `NOTIFIER_CONNECT_TIMEOUT_MS`: connecting to a webhook.
    #[serde(default = "default_connect_timeout")]
    pub notifier_connect_timeout_ms: u64,
}

fn default_link_base() -> String {
    "http://localhost:8080".to_owned()
}
fn default_max_attempts() -> u32 {
    RetryPolicy::default().max_attempts
}
fn default_first_backoff() -> u64 {
    1000
}
fn default_max_backoff() -> u64 {
    300_000
}
fn default_webhook_timeout() -> u64 {
    10_000
}
fn default_connect_timeout() -> u64 {
    3_000
}

impl Default for Config {
    fn default() -> Self {
        Self {
            notify_allow_loopback_http: false,
            notifier_task_link_base: default_link_base(),
            notifier_max_attempts: default_max_attempts(),
            notifier_first_backoff_ms: default_first_backoff(),
            notifier_max_backoff_ms: default_max_backoff(),
            notifier_webhook_timeout_ms: default_webhook_timeout(),
            notifier_connect_timeout_ms: default_connect_timeout(),
        }
    }
}

impl Config {
    /// The retry policy. The claim's lease is twice the longest attempt (a webhook call, or a
    /// mail through the sidecar under its own timeout), so a live attempt is never doubled.
    pub fn retry_policy(&self) -> anyhow::Result<RetryPolicy> {
        if self.notifier_max_attempts == 0 {
            return Err(anyhow!("NOTIFIER_MAX_ATTEMPTS must be at least 1"));
        }
        if self.notifier_first_backoff_ms == 0 || self.notifier_max_backoff_ms < self.notifier_first_backoff_ms {
            return Err(anyhow!("NOTIFIER_FIRST_BACKOFF_MS must be positive and at most NOTIFIER_MAX_BACKOFF_MS"));
        }
        let longest = Duration::from_millis(self.notifier_webhook_timeout_ms.max(30_000));
        Ok(RetryPolicy {
            max_attempts: self.notifier_max_attempts,
            first_backoff: Duration::from_millis(self.notifier_first_backoff_ms),
            max_backoff: Duration::from_millis(self.notifier_max_backoff_ms),
            lease: longest * 2,
        })
    }

    fn target_policy(&self) -> TargetPolicy {
        TargetPolicy { allow_loopback_http: self.notify_allow_loopback_http }
    }

    /// The link to a task.
    pub fn task_link(&self, task: uuid::Uuid) -> String {
        format!("{}/v1/tasks/{task}", self.notifier_task_link_base.trim_end_matches('/'))
    }
}

pub fn function(dapr: Dapr) -> anyhow::Result<Function> {
    let config: Config = envy::from_env().map_err(|e| anyhow!("notifier configuration: {e}"))?;
    build(dapr, config, Clock::system())
}

pub fn build(dapr: Dapr, config: Config, clock: Clock) -> anyhow::Result<Function> {
    let policy = config.retry_policy()?;
    let limits = webhook::Limits {
        connect: Duration::from_millis(config.notifier_connect_timeout_ms),
        total: Duration::from_millis(config.notifier_webhook_timeout_ms),
    };
    let app = Notifier {
        webhooks: webhook::Sender::new(config.target_policy(), limits)?,
        mailer: Arc::new(email::Mailer::new(dapr.clone())),
        dapr,
        config,
        policy,
        clock,
    };
    let on_event = app.clone();
    Ok(Function::new(APP_ID)
        .subscribe(
            Subscription::new(components::PUBSUB, topics::REMINDERS)
                .route(ROUTE, move |event| on_event.clone().on_reminder(event)),
        )
        .on_job(delivery::JOB_PREFIX, move |call| app.clone().on_retry(call)))
}

/// The data of a retry job: everything the attempt needs without the original event.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RetryJob {
    pub event_id: String,
    pub channel: Channel,
    pub attempt: u32,
    pub reminder: ReminderDue,
}

#[derive(Debug, Clone)]
struct Notifier {
    dapr: Dapr,
    webhooks: webhook::Sender,
    mailer: Arc<email::Mailer>,
    config: Config,
    policy: RetryPolicy,
    clock: Clock,
}

impl Notifier {
    async fn on_reminder(self, event: Event<ReminderDue>) -> HandlerResult {
        if event.event_type != types::REMINDER_DUE {
            return Err(HandlerError::drop(format!("{:?} is not a reminder", event.event_type)));
        }
        let reminder = event.data;
        let Some(channels) = self.channels(&reminder.owner).await? else {
            info!(task_id = %reminder.task_id, "no notification channels: nothing to deliver");
            return Ok(());
        };
        // Every channel is tried even if one fails, so that a broken webhook does not hold the
        // mail back; the first error is then retried (delivered channels are not sent again).
        let mut first_error = None;
        for channel in Channel::ALL {
            if !has(&channels, channel) {
                continue;
            }
            if let Err(e) = self.deliver(&event.id, &reminder, &channels, channel, Trigger::Event).await {
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    async fn on_retry(self, call: JobCall<RetryJob>) -> HandlerResult {
        let job = call.data;
        if call.name != retry_job_name(&job.event_id, job.channel, job.attempt) {
            return Err(HandlerError::drop(format!("job {:?} carries data for {}", call.name, job.event_id)));
        }
        let channels = self.channels(&job.reminder.owner).await?.unwrap_or_default();
        self.deliver(&job.event_id, &job.reminder, &channels, job.channel, Trigger::Retry { attempt: job.attempt })
            .await
    }

    async fn channels(&self, owner: &str) -> Result<Option<Channels>, DaprError> {
        Ok(self.dapr.get_state::<Channels>(components::NOTIFY_STORE, &channels_key(owner)).await?.map(|v| v.value))
    }

    /// Claims, sends and settles one delivery (see the module doc).
    async fn deliver(
        &self,
        event_id: &str,
        reminder: &ReminderDue,
        channels: &Channels,
        channel: Channel,
        trigger: Trigger,
    ) -> HandlerResult {
        let key = delivery_key(event_id, channel);
        let mut claimed = None;
        for _ in 0..CLAIM_ROUNDS {
            let current = self.dapr.get_state::<DeliveryRecord>(components::DELIVERIES_STORE, &key).await?;
            let (record, etag) = current.map_or((None, None), |v| (Some(v.value), v.etag));
            let now = self.clock.now();
            match delivery::claim(event_id, reminder.task_id, channel, record.as_ref(), trigger, now, &self.policy) {
                Claim::Done(reason) => {
                    info!(task_id = %reminder.task_id, channel = channel.as_str(), reason, "nothing to send");
                    return Ok(());
                }
                Claim::Busy { .. } if trigger != Trigger::Event => {
                    return Err(HandlerError::retry(anyhow!(
                        "the {} delivery of {event_id} is being attempted elsewhere",
                        channel.as_str()
                    )));
                }
                Claim::Busy { attempt, until } => {
                    info!(task_id = %reminder.task_id, channel = channel.as_str(), %until, "claimed elsewhere: a job takes over if it goes stale");
                    self.schedule_retry(event_id, reminder, channel, attempt, until).await?;
                    return Ok(());
                }
                Claim::Send(record) => {
                    let item = SaveItem::new(key.as_str(), &record)?;
                    let item = if etag.is_some() { item.if_match(etag) } else { item.if_absent() };
                    match self.dapr.save_state(components::DELIVERIES_STORE, &[item]).await {
                        Ok(()) => {
                            claimed = Some(record);
                            break;
                        }
                        // Another handler claimed it first (a first write of an existing key is
                        // a 500 on state.postgresql v1): read again and decide again.
                        Err(DaprError::EtagMismatch { .. } | DaprError::Status { status: 409 | 500, .. }) => {}
                        Err(e) => return Err(e.into()),
                    }
                }
            }
        }
        let Some(claimed) = claimed else {
            return Err(HandlerError::retry(anyhow!(
                "could not claim the {} delivery of {event_id}",
                channel.as_str()
            )));
        };
        let sent = self.send(event_id, reminder, channels, channel).await;
        let now = self.clock.now();
        let (settled, next) = delivery::settle(&claimed, sent, now, &self.policy, delivery::seed(event_id));
        self.record_outcome(reminder, &settled, now);
        match next {
            Next::Done => {}
            Next::RetryAt { attempt, at } => {
                // The job first: a record saying `retrying` with no job behind it would wait
                // forever, a job finding the claim still `sending` only waits for the lease.
                self.schedule_retry(event_id, reminder, channel, attempt, at).await?;
            }
            Next::DeadLetter => {
                let options = Publish::new(types::REMINDER_DUE)
                    .id(event_id)
                    .partition_key(reminder.task_id.to_string())
                    .subject(format!("{}/{}", reminder.task_id, channel.as_str()));
                self.dapr.publish(components::PUBSUB, &topics::dead_letter(APP_ID), reminder, &options).await?;
            }
        }
        let item = SaveItem::new(key.as_str(), &settled)?;
        self.dapr.save_state(components::DELIVERIES_STORE, &[item]).await?;
        Ok(())
    }

    /// Schedules retry job `attempt` of a delivery at `at` (overwriting one of the same name).
    async fn schedule_retry(
        &self,
        event_id: &str,
        reminder: &ReminderDue,
        channel: Channel,
        attempt: u32,
        at: chrono::DateTime<chrono::Utc>,
    ) -> Result<(), DaprError> {
        let data = RetryJob { event_id: event_id.to_owned(), channel, attempt, reminder: reminder.clone() };
        let data = serde_json::to_value(&data)
            .map_err(|source| DaprError::Encode { what: "retry job data".into(), source })?;
        // A callback that fails (sidecar or store down, the delivery busy) is called again every
        // 5 s for two minutes: longer than a claim's lease.
        let job = Job::once_at(at.fixed_offset(), data)
            .failure_policy(FailurePolicy::Constant { interval: Duration::from_secs(5), max_retries: Some(24) });
        self.dapr.schedule_job(&retry_job_name(event_id, channel, attempt), &job).await
    }

    async fn send(&self, event_id: &str, reminder: &ReminderDue, channels: &Channels, channel: Channel) -> Sent {
        let link = self.config.task_link(reminder.task_id);
        match channel {
            Channel::Webhook => {
                let Some(hook) = &channels.webhook else {
                    return Sent::Failed("the webhook was removed before this attempt".to_owned());
                };
                let body = match serde_json::to_vec(&webhook::Payload::new(reminder, link)) {
                    Ok(body) => body,
                    Err(e) => return Sent::Failed(format!("could not encode the webhook body: {e}")),
                };
                self.webhooks.send(hook, event_id, &body, self.clock.now()).await
            }
            Channel::Email => {
                let Some(address) = &channels.email else {
                    return Sent::Failed("the email address was removed before this attempt".to_owned());
                };
                self.mailer.send(&email::compose(reminder, &address.address, &link)).await
            }
        }
    }

    fn record_outcome(&self, reminder: &ReminderDue, record: &DeliveryRecord, now: chrono::DateTime<chrono::Utc>) {
        let channel = record.channel.as_str();
        let outcome = match record.status {
            delivery::DeliveryStatus::Delivered => "delivered",
            delivery::DeliveryStatus::Failed => "failed",
            _ => "retry",
        };
        metrics::counter!("notifier_deliveries_total", "channel" => channel, "outcome" => outcome).increment(1);
        if record.status == delivery::DeliveryStatus::Delivered {
            let since_due = (now - reminder.remind_at).num_milliseconds().max(0) as f64 / 1000.0;
            metrics::histogram!("notifier_due_to_delivered_seconds", "channel" => channel).record(since_due);
            info!(task_id = %reminder.task_id, channel, attempts = record.attempts, since_due, "reminder delivered");
        } else {
            warn!(
                task_id = %reminder.task_id,
                channel,
                attempts = record.attempts,
                outcome,
                error = record.last_error.as_deref().unwrap_or(""),
                "reminder not delivered"
            );
        }
    }
}

fn has(channels: &Channels, channel: Channel) -> bool {
    match channel {
        Channel::Webhook => channels.webhook.is_some(),
        Channel::Email => channels.email.is_some(),
    }
}

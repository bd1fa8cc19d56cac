//! The names and payloads the functions exchange: components, topics, CloudEvent types, state
//! keys and deterministic ids. Changing a string here changes the wire contract; the Kubernetes
//! manifests are checked against these constants.

use chrono::{DateTime, FixedOffset, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::task::{Series, Task};
use crate::validate::NewTask;

/// Dapr component names (`metadata.name` in `dapr-components/`).
pub mod components {
    /// `pubsub.kafka`: every topic below.
    pub const PUBSUB: &str = "pubsub";
    /// `pubsub.kafka` on the same cluster as [`PUBSUB`], scoped to task-api, with a consumer
    /// group per sidecar: every task-api replica gets every `task-events` and `reminders` event
    /// for its live streams (task-api `src/live`).
    pub const LIVE_PUBSUB: &str = "pubsub-live";
    /// `state.postgresql` v1: `task:<id>`, and the outbox records of task changes
    /// (the transactional outbox (`dapr_fn::outbox`)) written in the same transactions.
    pub const TASKS_STORE: &str = "tasks";
    /// `state.postgresql` v1: reminder status (fire-reminder writes, task-api reads). Nothing
    /// here emits events.
    pub const STATE_STORE: &str = "state";
    /// `state.postgresql` v1: audit entries, in a table of their own so that no role but
    /// audit-writer's can write them, and it only insert-if-absent (audit-writer writes, task-api
    /// reads; `manifests/base/postgres/roles.sql`).
    pub const AUDIT_STORE: &str = "audit";
    /// `state.postgresql` v1: people's notification channels (`channels:<user>`: webhook URL
    /// and secret, email address), written by task-api, read by the notifier, in a table of
    /// their own scoped to those two apps: no other function may read addresses and secrets.
    pub const NOTIFY_STORE: &str = "notify";
    /// `state.postgresql` v1: the notifier's delivery records (`delivery:<event id>:<channel>`),
    /// read by task-api (`GET /v1/tasks/{id}/reminder`) and by KEDA's postgresql trigger (retries
    /// coming due wake the notifier from zero). Apart from the channels so that the KEDA role
    /// reading it sees no address or secret.
    pub const DELIVERIES_STORE: &str = "deliveries";
    /// `bindings.smtp`: the notifier's outgoing mail (one call at a time, `docs/notifier.md`).
    pub const EMAIL_BINDING: &str = "email";
}

/// Kafka topics.
pub mod topics {
    /// `todo.task.create` requests, consumed by create-task.
    pub const TASK_CREATE: &str = "task-create";
    /// `todo.task.created|updated|completed|deleted`, published through the outbox of the
    /// `tasks` store by the function that made the change (or by task-api's relay).
    pub const TASK_EVENTS: &str = "task-events";
    /// `todo.reminder.due`, published by fire-reminder, delivered to people by the notifier.
    pub const REMINDERS: &str = "reminders";

    /// The dead-letter topic of one consumer app-id. One per consumer (not per topic) so that a
    /// message can be replayed to the one function that could not process it.
    pub fn dead_letter(app_id: &str) -> String {
        format!("{app_id}-dlq")
    }
}

/// Who may publish and consume each topic: the trust boundary of the event flow.
///
/// Every message on a topic acts for a user (a task's owner), so a topic has exactly the
/// publishers that need it, and Dapr enforces this table through the pub/sub component's
/// `publishingScopes` and `subscriptionScopes` (daprd answers 403 to any other publish, dead
/// letters included, and ignores any other subscription). The strings in
/// `dapr-components/{local,k8s}/pubsub.yaml` are [`authority::publishing_scopes`] and
/// [`authority::subscription_scopes`]; tests compare them. A program outside the system creates
/// tasks through task-api's REST API, as the user its token names, never on `task-create`.
pub mod authority {
    use super::topics;

    /// One topic, its producers and its consumers (app ids).
    #[derive(Debug, Clone, Copy)]
    pub struct Topic {
        pub name: &'static str,
        pub publishers: &'static [&'static str],
        pub consumers: &'static [&'static str],
    }

    /// The app ids of the system, in the order the scope strings list them.
    pub const APPS: [&str; 6] =
        ["task-api", "create-task", "on-task-completed", "fire-reminder", "audit-writer", "notifier"];

    /// The topics and who touches them. task-api and create-task write tasks and publish their
    /// events; only on-task-completed asks for a task on `task-create`, computed from the stored
    /// series task; only fire-reminder publishes reminders, and only the notifier reads them.
    pub const TOPICS: [Topic; 3] = [
        Topic { name: topics::TASK_CREATE, publishers: &["on-task-completed"], consumers: &["create-task"] },
        Topic {
            name: topics::TASK_EVENTS,
            publishers: &["task-api", "create-task"],
            consumers: &["on-task-completed", "fire-reminder", "audit-writer"],
        },
        Topic { name: topics::REMINDERS, publishers: &["fire-reminder"], consumers: &["notifier"] },
    ];

    /// The topics `app` may publish: its own, and its dead-letter topic if it consumes any
    /// (daprd publishes dead letters under the app's scopes).
    pub fn publishes(app: &str) -> Vec<String> {
        let mut topics: Vec<String> =
            TOPICS.iter().filter(|t| t.publishers.contains(&app)).map(|t| t.name.to_owned()).collect();
        if !subscribes(app).is_empty() {
            topics.push(topics::dead_letter(app));
        }
        topics
    }

    /// The topics `app` may subscribe to.
    pub fn subscribes(app: &str) -> Vec<String> {
        TOPICS.iter().filter(|t| t.consumers.contains(&app)).map(|t| t.name.to_owned()).collect()
    }

    /// Whether `app` may publish to `topic`.
    pub fn may_publish(app: &str, topic: &str) -> bool {
        publishes(app).iter().any(|t| t == topic)
    }

    /// The first app that may publish to `topic` (a test publishing there does so as that app).
    pub fn publisher_of(topic: &str) -> Option<&'static str> {
        APPS.into_iter().find(|app| may_publish(app, topic))
    }

    /// The component's `publishingScopes`: `app=topic,topic;...`, every app listed (an app left
    /// out could publish anywhere; `app=` grants nothing).
    pub fn publishing_scopes() -> String {
        scopes(publishes)
    }

    /// The component's `subscriptionScopes`, every app listed likewise.
    pub fn subscription_scopes() -> String {
        scopes(subscribes)
    }

    fn scopes(of: fn(&str) -> Vec<String>) -> String {
        APPS.iter().map(|app| format!("{app}={}", of(app).join(","))).collect::<Vec<_>>().join(";")
    }
}

/// CloudEvent `type` values.
pub mod types {
    pub const TASK_CREATE: &str = "todo.task.create";
    pub const TASK_CREATED: &str = "todo.task.created";
    pub const TASK_UPDATED: &str = "todo.task.updated";
    pub const TASK_COMPLETED: &str = "todo.task.completed";
    pub const TASK_DELETED: &str = "todo.task.deleted";
    /// A completed task made open again (`POST /v1/tasks/{id}/reopen`).
    pub const TASK_REOPENED: &str = "todo.task.reopened";
    pub const REMINDER_DUE: &str = "todo.reminder.due";
}

/// What happened to a task; each kind is one CloudEvent type on `task-events`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum TaskChange {
    Created,
    Updated,
    Completed,
    Deleted,
    Reopened,
}

impl TaskChange {
    pub fn event_type(self) -> &'static str {
        match self {
            Self::Created => types::TASK_CREATED,
            Self::Updated => types::TASK_UPDATED,
            Self::Completed => types::TASK_COMPLETED,
            Self::Deleted => types::TASK_DELETED,
            Self::Reopened => types::TASK_REOPENED,
        }
    }

    pub fn from_event_type(event_type: &str) -> Option<Self> {
        match event_type {
            types::TASK_CREATED => Some(Self::Created),
            types::TASK_UPDATED => Some(Self::Updated),
            types::TASK_COMPLETED => Some(Self::Completed),
            types::TASK_DELETED => Some(Self::Deleted),
            types::TASK_REOPENED => Some(Self::Reopened),
            _ => None,
        }
    }
}

/// The namespace of every name-based (v5) UUID this system derives.
pub const ID_NAMESPACE: Uuid = Uuid::from_u128(0x6f1c_2b0e_93d4_4b6a_9a51_7d0e_4c2f_8e13);

/// The id of the task a `todo.task.create` request creates. Derived from the owner and the
/// request id, so that a repeated request maps to the same task (create-task's idempotency) and
/// two users' request ids can never collide.
pub fn task_id_for_request(owner: &str, request_id: &str) -> Uuid {
    Uuid::new_v5(&ID_NAMESPACE, format!("{owner}\n{request_id}").as_bytes())
}

/// The request id on-task-completed uses for occurrence `index` of a series: the same for every
/// replica and every duplicate of the completion event.
pub fn occurrence_request_id(series: Uuid, index: u32) -> String {
    format!("occurrence:{series}:{index}")
}

/// The CloudEvent id of the `task-events` event of `version` of `task`.
///
/// Every change of a task bumps its version, and a version is written once (creation is
/// insert-if-absent, every later write is guarded by the ETag it read), so (task, version)
/// names exactly one change: the writer's publish and every relay of it carry the same id, and
/// consumers deduplicate on it (audit-writer keys its entries by it).
pub fn task_event_id(task: Uuid, version: u64) -> String {
    format!("task:{task}:v{version}")
}

/// The CloudEvent id of the reminder for `task` due at `remind_at`: a re-published reminder (the
/// job retried after a failed state write) carries the same id, so notifiers can deduplicate.
pub fn reminder_event_id(task: Uuid, remind_at: DateTime<Utc>) -> String {
    format!("reminder:{task}:{}", remind_at.timestamp())
}

/// `data` of `todo.task.create`: ask create-task for a task, idempotently on `request_id`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateTaskRequest {
    /// Idempotency key chosen by the producer; the task id is derived from it and the owner.
    pub request_id: String,
    pub owner: String,
    pub task: NewTask,
    /// Set by on-task-completed for the next occurrence of a series.
    #[serde(default)]
    pub series: Option<Series>,
}

/// `data` of `todo.reminder.due`: what a notifier needs without reading any state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReminderDue {
    pub task_id: Uuid,
    pub owner: String,
    pub title: String,
    pub due: Option<DateTime<FixedOffset>>,
    /// When the reminder was meant to fire.
    pub remind_at: DateTime<Utc>,
    /// When it actually fired.
    pub fired_at: DateTime<Utc>,
    /// `fired_at - remind_at` in milliseconds (never negative): how late the reminder is, for
    /// example because the system was down when it came due.
    pub late_by_ms: u64,
    pub task_version: u64,
}

impl ReminderDue {
    pub fn new(task: &Task, remind_at: DateTime<Utc>, fired_at: DateTime<Utc>) -> Self {
        let late_by_ms = (fired_at - remind_at).num_milliseconds().max(0).unsigned_abs();
        Self {
            task_id: task.id,
            owner: task.owner.clone(),
            title: task.title.clone(),
            due: task.due,
            remind_at,
            fired_at,
            late_by_ms,
            task_version: task.version,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_map_to_stable_task_ids_per_owner() {
        let a = task_id_for_request("alice", "r-1");
        assert_eq!(a, task_id_for_request("alice", "r-1"));
        assert_ne!(a, task_id_for_request("bob", "r-1"));
        assert_ne!(a, task_id_for_request("alice", "r-2"));
        assert_eq!(a.get_version_num(), 5);
    }

    #[test]
    fn occurrence_request_ids_are_deterministic() {
        let series = Uuid::from_u128(7);
        assert_eq!(occurrence_request_id(series, 3), "occurrence:00000000-0000-0000-0000-000000000007:3");
    }

    #[test]
    fn task_event_ids_name_one_version_of_one_task() {
        let task = Uuid::from_u128(7);
        assert_eq!(task_event_id(task, 3), "task:00000000-0000-0000-0000-000000000007:v3");
        assert_eq!(task_event_id(task, 3), task_event_id(task, 3), "stable across republishing");
        assert_ne!(task_event_id(task, 3), task_event_id(task, 4));
        assert_ne!(task_event_id(task, 3), task_event_id(Uuid::from_u128(8), 3));
    }

    #[test]
    fn event_types_round_trip() {
        for change in
            [TaskChange::Created, TaskChange::Updated, TaskChange::Completed, TaskChange::Deleted, TaskChange::Reopened]
        {
            assert_eq!(TaskChange::from_event_type(change.event_type()), Some(change));
        }
        assert_eq!(TaskChange::from_event_type("todo.task.create"), None);
    }

    #[test]
    fn every_topic_has_exactly_the_publishers_that_need_it() {
        assert_eq!(
            authority::publishing_scopes(),
            "task-api=task-events;create-task=task-events,create-task-dlq;\
             on-task-completed=task-create,on-task-completed-dlq;fire-reminder=reminders,fire-reminder-dlq;\
             audit-writer=audit-writer-dlq;notifier=notifier-dlq"
        );
        assert_eq!(
            authority::subscription_scopes(),
            "task-api=;create-task=task-create;on-task-completed=task-events;fire-reminder=task-events;\
             audit-writer=task-events;notifier=reminders"
        );
        assert!(!authority::may_publish("task-api", topics::TASK_CREATE), "users create through the REST API");
        assert!(!authority::may_publish("audit-writer", topics::TASK_EVENTS));
        assert_eq!(authority::publisher_of(topics::TASK_CREATE), Some("on-task-completed"));
        assert_eq!(authority::publisher_of(topics::TASK_EVENTS), Some("task-api"));
        assert_eq!(authority::publisher_of("elsewhere"), None);
    }

    #[test]
    fn dead_letter_topic_names_the_consumer() {
        assert_eq!(topics::dead_letter("audit-writer"), "audit-writer-dlq");
    }
}

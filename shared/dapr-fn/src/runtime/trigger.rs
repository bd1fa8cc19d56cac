//! The two ways Dapr wakes a function: a topic subscription (with routing rules) and a job
//! callback. Handlers are plain async functions over typed data; the type erasure lives here.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::cloudevent::{Event, decode_json};
use super::outcome::HandlerResult;

pub(crate) type BoxFuture = Pin<Box<dyn Future<Output = HandlerResult> + Send>>;
/// `Err(reason)`: the payload could not be decoded; the runtime answers DROP.
pub(crate) type EventHandler = Arc<dyn Fn(Event<Value>) -> Result<BoxFuture, String> + Send + Sync>;
pub(crate) type JobHandler = Arc<dyn Fn(JobCall<Value>) -> Result<BoxFuture, String> + Send + Sync>;

fn event_handler<T, F, Fut>(handler: F) -> EventHandler
where
    T: DeserializeOwned + Send + 'static,
    F: Fn(Event<T>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = HandlerResult> + Send + 'static,
{
    Arc::new(move |event: Event<Value>| {
        let event = event.decode::<T>()?;
        Ok(Box::pin(handler(event)) as BoxFuture)
    })
}

/// One route of a subscription: a CEL `match` (none for the default route), its path and the
/// handler behind it.
#[derive(Clone)]
pub(crate) struct Route {
    pub(crate) matcher: Option<String>,
    pub(crate) path: String,
    pub(crate) handler: Option<EventHandler>,
}

/// The dead-letter topic of a subscription that names none: `{app_id}-dlq`, one per consumer
/// app (not per topic), so that a message can be replayed to the one function that could not
/// process it. daprd publishes it with the app's own pub/sub client, so the app must be
/// allowed to publish there (`publishingScopes`).
pub fn default_dead_letter_topic(app_id: &str) -> String {
    format!("{app_id}-dlq")
}

/// A programmatic subscription, served on `GET /dapr/subscribe` in Dapr's v2 format.
///
/// ```
/// # use dapr_fn::runtime::{Subscription, HandlerResult, Event};
/// # async fn on_completed(_: Event<serde_json::Value>) -> HandlerResult { Ok(()) }
/// let subscription = Subscription::new("pubsub", "task-events")
///     .when(r#"event.type == "todo.task.completed""#, "/events/task-completed", on_completed);
/// ```
#[derive(Clone)]
pub struct Subscription {
    pubsub: String,
    topic: String,
    dead_letter_topic: Option<String>,
    /// No dead-letter topic at all ([`Subscription::without_dead_letter`]).
    no_dead_letter: bool,
    routes: Vec<Route>,
}

impl std::fmt::Debug for Subscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscription")
            .field("pubsub", &self.pubsub)
            .field("topic", &self.topic)
            .field("dead_letter_topic", &self.dead_letter_topic)
            .field("routes", &self.routes.iter().map(|r| (&r.matcher, &r.path)).collect::<Vec<_>>())
            .finish()
    }
}

impl Subscription {
    /// A subscription to `topic` through the pub/sub component named `pubsub` (its
    /// `metadata.name`), with no routes yet: add them with [`Self::when`] and [`Self::route`].
    pub fn new(pubsub: &str, topic: &str) -> Self {
        Self {
            pubsub: pubsub.to_owned(),
            topic: topic.to_owned(),
            dead_letter_topic: None,
            no_dead_letter: false,
            routes: Vec::new(),
        }
    }

    /// Where Dapr sends what the handler DROPs and what exhausts its retries. Defaults to the
    /// function's own dead-letter topic ([`default_dead_letter_topic`]).
    pub fn dead_letter_topic(mut self, topic: &str) -> Self {
        self.dead_letter_topic = Some(topic.to_owned());
        self
    }

    /// No dead-letter topic: for a subscription whose handlers never DROP and have nothing
    /// worth keeping if they did (a fan-out to open connections), so that its app needs no
    /// dead-letter topic, grant or consumer of it.
    pub fn without_dead_letter(mut self) -> Self {
        self.dead_letter_topic = None;
        self.no_dead_letter = true;
        self
    }

    /// Routes events matching the CEL expression `matcher` to `handler` at `path`. Rules are
    /// evaluated in the order they are added.
    pub fn when<T, F, Fut>(mut self, matcher: &str, path: &str, handler: F) -> Self
    where
        T: DeserializeOwned + Send + 'static,
        F: Fn(Event<T>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = HandlerResult> + Send + 'static,
    {
        self.routes.push(Route {
            matcher: Some(matcher.to_owned()),
            path: path.to_owned(),
            handler: Some(event_handler(handler)),
        });
        self
    }

    /// Routes every event that matches no rule to `handler` at `path`. Without a default
    /// route, unmatched events are acknowledged and counted as `ignored`.
    pub fn route<T, F, Fut>(mut self, path: &str, handler: F) -> Self
    where
        T: DeserializeOwned + Send + 'static,
        F: Fn(Event<T>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = HandlerResult> + Send + 'static,
    {
        self.routes.retain(|r| r.matcher.is_some());
        self.routes.push(Route { matcher: None, path: path.to_owned(), handler: Some(event_handler(handler)) });
        self
    }

    /// The pub/sub component's name, as given to [`Subscription::new`].
    pub fn pubsub(&self) -> &str {
        &self.pubsub
    }

    /// The subscribed topic, as given to [`Subscription::new`].
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// The dead-letter topic as served to daprd. `None` after [`Self::without_dead_letter`], and
    /// also before [`super::Function::subscribe`] has filled in the default.
    pub fn dead_letter(&self) -> Option<&str> {
        self.dead_letter_topic.as_deref()
    }

    /// `(match, path)` of every rule, in order.
    pub fn rules(&self) -> Vec<(&str, &str)> {
        self.routes.iter().filter_map(|r| r.matcher.as_deref().map(|m| (m, r.path.as_str()))).collect()
    }

    /// The default route's path.
    pub fn default_path(&self) -> Option<&str> {
        self.routes.iter().find(|r| r.matcher.is_none()).map(|r| r.path.as_str())
    }

    /// Completes the subscription for `app_id`: its dead-letter topic, and an acknowledging
    /// default route when there is none, so no event is left to Dapr's no-route behaviour.
    pub(crate) fn finish(mut self, app_id: &str) -> Self {
        if self.dead_letter_topic.is_none() && !self.no_dead_letter {
            self.dead_letter_topic = Some(default_dead_letter_topic(app_id));
        }
        if self.default_path().is_none() {
            let path = format!("/events/{}/unmatched", self.topic);
            self.routes.push(Route { matcher: None, path, handler: None });
        }
        self
    }

    pub(crate) fn routes(&self) -> &[Route] {
        &self.routes
    }

    /// One entry of the `GET /dapr/subscribe` answer (v2: `routes.rules` + `routes.default`).
    pub(crate) fn to_wire(&self) -> Value {
        let rules: Vec<Value> = self
            .routes
            .iter()
            .filter_map(|r| r.matcher.as_ref().map(|m| json!({"match": m, "path": r.path})))
            .collect();
        let mut entry = json!({
            "pubsubname": self.pubsub,
            "topic": self.topic,
            "routes": {"rules": rules, "default": self.default_path().unwrap_or_default()},
        });
        if let (Some(dlq), Value::Object(map)) = (&self.dead_letter_topic, &mut entry) {
            map.insert("deadLetterTopic".to_owned(), json!(dlq));
        }
        entry
    }
}

/// A job callback: `POST /job/{name}` with the job's `data` as the raw body.
#[derive(Debug, Clone, PartialEq)]
pub struct JobCall<T> {
    /// The job's full name, as scheduled (`reminder-<task id>`): the handler matched on its
    /// prefix, so the rest is the handler's to check against `data`.
    pub name: String,
    /// The job's `data` decoded into `T` (`Null` for an empty body); a body that does not
    /// decode is answered 404, which daprd treats as done.
    pub data: T,
    /// The callback's `traceparent` header, if any: daprd 1.18.2 sends none on a job trigger
    /// (the Scheduler's call carries no span), so the runtime usually starts a new trace.
    pub traceparent: Option<String>,
}

/// Job callbacks whose name starts with `prefix` (`reminder-` for `reminder-<task id>`).
#[derive(Clone)]
pub(crate) struct JobRoute {
    pub(crate) prefix: String,
    pub(crate) handler: JobHandler,
}

pub(crate) fn job_route<T, F, Fut>(prefix: &str, handler: F) -> JobRoute
where
    T: DeserializeOwned + Send + 'static,
    F: Fn(JobCall<T>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = HandlerResult> + Send + 'static,
{
    let handler: JobHandler = Arc::new(move |call: JobCall<Value>| {
        let data = decode_json::<T>(call.data).map_err(|e| format!("job data {e}"))?;
        Ok(Box::pin(handler(JobCall { name: call.name, data, traceparent: call.traceparent })) as BoxFuture)
    });
    JobRoute { prefix: prefix.to_owned(), handler }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn ok(_: Event<Value>) -> HandlerResult {
        Ok(())
    }

    #[test]
    fn wire_format_is_dapr_v2() {
        let sub = Subscription::new("pubsub", "task-events")
            .when(r#"event.type == "todo.task.completed""#, "/events/completed", ok)
            .finish("on-task-completed");
        assert_eq!(
            sub.to_wire(),
            json!({
                "pubsubname": "pubsub",
                "topic": "task-events",
                "routes": {
                    "rules": [{"match": "event.type == \"todo.task.completed\"", "path": "/events/completed"}],
                    "default": "/events/task-events/unmatched"
                },
                "deadLetterTopic": "on-task-completed-dlq"
            })
        );
    }

    #[test]
    fn a_subscription_may_have_no_dead_letter_topic() {
        let sub = Subscription::new("pubsub", "t").dead_letter_topic("x").without_dead_letter().finish("app");
        assert_eq!(sub.dead_letter(), None);
        assert!(sub.to_wire().get("deadLetterTopic").is_none(), "{}", sub.to_wire());
    }

    #[test]
    fn explicit_dead_letter_and_default_route_are_kept() {
        let sub = Subscription::new("pubsub", "t").dead_letter_topic("elsewhere").route("/events/t", ok).finish("app");
        assert_eq!(sub.dead_letter(), Some("elsewhere"));
        assert_eq!(sub.default_path(), Some("/events/t"));
        assert_eq!(sub.routes().len(), 1);
    }
}

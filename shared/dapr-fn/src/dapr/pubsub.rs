//! `POST /v1.0/publish/{pubsub}/{topic}`.

use reqwest::{Method, StatusCode};
use serde::Serialize;

use super::{Dapr, DaprError, encode, status_error};

/// Envelope settings for one publish. Dapr wraps the body in a CloudEvent and takes these from
/// `metadata.*` query parameters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Publish {
    /// Kafka message key: every message with the same key lands on one partition, in order.
    partition_key: Option<String>,
    /// CloudEvent `id`. Set it to a business idempotency key so a re-publish carries the same id.
    event_id: Option<String>,
    /// CloudEvent `type` (Dapr's default is `com.dapr.event.sent`).
    event_type: Option<String>,
    /// CloudEvent `subject`.
    subject: Option<String>,
}

impl Publish {
    /// Settings for an event of CloudEvent `type` `event_type`, which subscribers route and
    /// filter on. [`Publish::default()`] leaves it to Dapr: `com.dapr.event.sent`.
    pub fn new(event_type: &str) -> Self {
        Self { event_type: Some(event_type.to_owned()), ..Self::default() }
    }

    /// Sets the CloudEvent `id` (`metadata.cloudevent.id`). Without it Dapr makes up a random
    /// UUID, and consumers cannot tell a republished event from a new one.
    pub fn id(mut self, id: impl Into<String>) -> Self {
        self.event_id = Some(id.into());
        self
    }

    /// Sets the Kafka message key (`metadata.partitionKey`): the events of one key stay on one
    /// partition, in publish order. Without it `pubsub.kafka` picks a random partition for each
    /// message.
    pub fn partition_key(mut self, key: impl Into<String>) -> Self {
        self.partition_key = Some(key.into());
        self
    }

    /// Sets the CloudEvent `subject` (`metadata.cloudevent.subject`), typically the id of the
    /// entity the event is about. Without it the envelope has no `subject`.
    pub fn subject(mut self, subject: impl Into<String>) -> Self {
        self.subject = Some(subject.into());
        self
    }

    fn metadata(&self) -> Vec<(&'static str, &str)> {
        let mut query = Vec::new();
        if let Some(key) = &self.partition_key {
            query.push(("metadata.partitionKey", key.as_str()));
        }
        if let Some(id) = &self.event_id {
            query.push(("metadata.cloudevent.id", id.as_str()));
        }
        if let Some(event_type) = &self.event_type {
            query.push(("metadata.cloudevent.type", event_type.as_str()));
        }
        if let Some(subject) = &self.subject {
            query.push(("metadata.cloudevent.subject", subject.as_str()));
        }
        query
    }
}

impl Dapr {
    /// Publishes `data` as the JSON `data` of a CloudEvent. `Content-Type: application/json` is
    /// what makes Dapr keep it a JSON object; without it the body would arrive as a string.
    ///
    /// Answers: 204 accepted by the broker; 403 forbidden by topic scoping; 404 no such pub/sub;
    /// 400 bad request; 500 broker failure (transient).
    pub async fn publish<T: Serialize + ?Sized>(
        &self,
        pubsub: &str,
        topic: &str,
        data: &T,
        options: &Publish,
    ) -> Result<(), DaprError> {
        let what = format!("publish to {pubsub}/{topic}");
        let mut url = self.url(&["v1.0", "publish", pubsub, topic]);
        {
            let metadata = options.metadata();
            if !metadata.is_empty() {
                url.query_pairs_mut().extend_pairs(metadata);
            }
        }
        let body = encode(&what, data)?;
        let (status, _, response) = self.call(Method::POST, url, Some(body), &what).await?;
        match status {
            StatusCode::NO_CONTENT | StatusCode::OK => Ok(()),
            _ => Err(status_error(&what, status, &response)),
        }
    }
}

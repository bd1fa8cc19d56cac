//! Live updates: `GET /v1/events`, a Server-Sent Events stream of the caller's task changes.
//!
//! # How every replica sees every change
//!
//! Each task-api replica consumes `task-events` and `reminders` through a pub/sub component of
//! its own, `pubsub-live` (`dapr-components/*/pubsub-live.yaml`): the same Kafka cluster as
//! `pubsub`, but a consumer group per sidecar (`{appID}-live-{uuid}` locally,
//! `{appID}-live-{podName}` on Kubernetes; daprd fills the templates in when it loads the
//! component, dapr v1.18.2 `pkg/runtime/meta/meta.go`), starting at the newest offset. Kafka
//! gives every group every message, so every replica gets every change, while the other
//! functions keep one competing group per app-id on `pubsub`. The cost: each replica reads the
//! whole topic (a few KB per change), and each sidecar start leaves a consumer group behind
//! that Kafka forgets `offsets.retention.minutes` (7 days by default) after it empties.
//! docs/architecture.md "Live updates" has the alternatives and why not them.
//!
//! # Layout
//!
//! - [`hub`]: the recent changes of this replica (for `Last-Event-ID`) and the open streams,
//!   bounded; pure over tokio's channels, with its unit tests.
//! - [`feed`]: the two subscriptions, CloudEvent → [`hub::Change`].
//! - [`route`]: the SSE endpoint: auth, caps, resume, heartbeats, token expiry.
//! - [`page`]: `GET /live`, a page that shows a person their changes as they come.

pub mod feed;
pub mod hub;
pub mod page;
pub mod route;

pub use hub::{Change, Hub, Limits};

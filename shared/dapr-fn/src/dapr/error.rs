//! What can go wrong talking to the sidecar, classified the way handlers must react to it.

use std::time::Duration;

use serde::Deserialize;

/// Every failure of a sidecar call. Match a variant where the reaction differs (a conflict means
/// re-read and decide again); otherwise [`is_transient`](Self::is_transient) chooses between
/// retrying later and giving up.
#[derive(Debug, thiserror::Error)]
pub enum DaprError {
    /// The sidecar did not answer (connection refused, reset, timed out).
    #[error("Dapr sidecar unreachable ({what}): {source}")]
    Unavailable {
        /// The call, as logs name it (`publish to pubsub/task-events`, `save state tasks`).
        what: String,
        /// reqwest's error. Its own timeout (`DAPR_REQUEST_TIMEOUT_MS`) lands here, not in
        /// [`TimedOut`](Self::TimedOut), as does a connection lost while reading the answer.
        #[source]
        source: reqwest::Error,
    },

    /// The caller stopped waiting for an answer after `after` (the sidecar may still complete
    /// the call).
    #[error("no answer from the Dapr sidecar to {what} within {after:?}")]
    TimedOut {
        /// The call given up on, with the setting that bounded it
        /// (`publish to pubsub/topic (OUTBOX_PUBLISH_TIMEOUT_MS)`).
        what: String,
        /// The configured bound the caller waited for, not a measured time.
        after: Duration,
    },

    /// `GET /v1.0/healthz/outbound` did not succeed in time: components are not loaded yet.
    #[error("Dapr sidecar not ready after {0:?} (GET /v1.0/healthz/outbound)")]
    NotReady(Duration),

    /// A single-key save or delete sent an ETag that is no longer current (HTTP 409).
    #[error("ETag mismatch on state key {key:?}")]
    EtagMismatch {
        /// The state key as the app sent it. For a save of several items, all their keys
        /// joined with `, `: this client does not tell which one conflicted.
        key: String,
    },

    /// A transaction failed. Dapr reports *every* transaction failure as 500, an ETag conflict
    /// included, so the caller must re-read to learn which it was.
    #[error("state transaction on {store:?} failed: {message}")]
    TransactionFailed {
        /// The state store component the transaction ran on.
        store: String,
        /// Dapr's `message` (for a failed commit, `error while executing state transaction: `
        /// and the store's error), or the first 500 characters of a non-JSON body. For logs only.
        message: String,
    },

    /// `overwrite: false` and the job exists (Dapr 1.16+ answers 409).
    #[error("job {name:?} already exists")]
    JobExists {
        /// The job name, as it was sent in the URL.
        name: String,
    },

    /// Any other non-success answer, with Dapr's `errorCode` and message.
    #[error("{what} answered HTTP {status}{}: {message}", code.as_deref().map(|c| format!(" {c}")).unwrap_or_default())]
    Status {
        /// The call, as logs name it (`schedule job reminder-…`, `delete state tasks/<key>`).
        what: String,
        /// The HTTP status daprd answered.
        status: u16,
        /// Dapr's `errorCode` (`ERR_STATE_SAVE`, `DAPR_SCHEDULER_SCHEDULE_JOB`, ...); `None` when
        /// the body is not Dapr's error JSON, as with the 401 `invalid api token` text.
        code: Option<String>,
        /// Dapr's `message`, or the first 500 characters of a body that is not its error JSON.
        message: String,
    },

    /// The sidecar answered success with a body we cannot read.
    #[error("unexpected response to {what}: {detail}")]
    Decode {
        /// The call whose answer did not decode.
        what: String,
        /// serde's error, naming the field or position that did not fit the expected shape.
        detail: String,
    },

    /// A value could not be encoded as JSON (a bug, never the sidecar's fault).
    #[error("could not encode {what} as JSON: {source}")]
    Encode {
        /// What was being encoded: a request body (named by its call) or a state value (by key).
        what: String,
        /// serde_json's error, such as a map with keys that are not strings.
        #[source]
        source: serde_json::Error,
    },

    /// Bad configuration, such as an unparsable `DAPR_HTTP_ENDPOINT`.
    #[error("invalid Dapr client configuration: {0}")]
    Config(String),
}

impl DaprError {
    /// Whether trying again later can succeed: the sidecar or its store was unavailable.
    /// Conflicts are not transient in this sense: the caller must re-read first.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Unavailable { .. } | Self::NotReady(_) | Self::TimedOut { .. } | Self::TransactionFailed { .. } => {
                true
            }
            Self::Status { status, .. } => *status >= 500 || *status == 429 || *status == 408,
            _ => false,
        }
    }

    /// Whether this is an optimistic-concurrency conflict on a single-key operation.
    pub fn is_conflict(&self) -> bool {
        matches!(self, Self::EtagMismatch { .. } | Self::JobExists { .. })
    }
}

/// The JSON error body Dapr answers with: `{"errorCode":"ERR_STATE_SAVE","message":"..."}`.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct ErrorBody {
    #[serde(rename = "errorCode")]
    pub error_code: Option<String>,
    pub message: Option<String>,
}

impl ErrorBody {
    pub(crate) fn parse(body: &[u8]) -> (Option<String>, String) {
        match serde_json::from_slice::<ErrorBody>(body) {
            Ok(parsed) if parsed.error_code.is_some() || parsed.message.is_some() => {
                (parsed.error_code, parsed.message.unwrap_or_default())
            }
            _ => (None, String::from_utf8_lossy(body).chars().take(500).collect()),
        }
    }
}

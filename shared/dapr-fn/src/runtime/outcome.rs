//! What a handler tells the runtime, and how the runtime tells Dapr.
//!
//! | handler returns            | topic delivery answer        | job callback answer          |
//! |----------------------------|------------------------------|------------------------------|
//! | `Ok(())`                   | 200 `{"status":"SUCCESS"}`   | 200                          |
//! | `Err(HandlerError::Retry)` | 200 `{"status":"RETRY"}`     | 500 (job failure policy)     |
//! | `Err(HandlerError::Drop)`  | 200 `{"status":"DROP"}`      | 404 (Dapr: done, not retried)|
//!
//! RETRY is for transient trouble only (sidecar or store unavailable, state not there yet):
//! Dapr retries it under the Resiliency policy, then dead-letters it. DROP is for a message that
//! can never be processed: it goes to the dead-letter topic at once, with the reason logged.

use std::fmt;

use crate::dapr::DaprError;

/// Why a handler did not succeed.
#[derive(Debug)]
pub enum HandlerError {
    /// Transient: deliver again later.
    Retry(anyhow::Error),
    /// Permanent: this message can never be processed.
    Drop(String),
}

impl HandlerError {
    /// Transient failure, worth delivering again: RETRY on a topic (redelivered under the
    /// component's inbound resiliency policy, then dead-lettered), 500 on a job (its
    /// `failurePolicy` retries it).
    pub fn retry(error: impl Into<anyhow::Error>) -> Self {
        Self::Retry(error.into())
    }

    /// Permanent failure: DROP on a topic (to the dead-letter topic at once, if it has one), 404
    /// on a job (daprd counts the trigger as done and does not retry it). `reason` is logged.
    pub fn drop(reason: impl fmt::Display) -> Self {
        Self::Drop(reason.to_string())
    }
}

impl fmt::Display for HandlerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Retry(e) => write!(f, "retry: {e:#}"),
            Self::Drop(reason) => write!(f, "drop: {reason}"),
        }
    }
}

impl std::error::Error for HandlerError {}

/// Sidecar failures are worth retrying: the sidecar, the broker or the store may be back soon,
/// and a bounded retry policy ends in the dead-letter topic anyway. Dropping on, say, a 400
/// caused by a component misconfiguration would lose every message until it is fixed.
impl From<DaprError> for HandlerError {
    fn from(error: DaprError) -> Self {
        Self::Retry(error.into())
    }
}

impl From<anyhow::Error> for HandlerError {
    fn from(error: anyhow::Error) -> Self {
        Self::Retry(error)
    }
}

/// What every handler returns: `Ok(())` is SUCCESS; `?` on a [`DaprError`] or an
/// `anyhow::Error` makes it a RETRY (the `From` impls); DROP must be asked for by name.
pub type HandlerResult = Result<(), HandlerError>;

/// The result of one delivery, as counted in metrics and logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The handler returned `Ok(())`: answered SUCCESS, and daprd acknowledges the message
    /// (200 for a job: done).
    Success,
    /// Transient failure or a panic: answered RETRY (500 for a job).
    Retry,
    /// Malformed input or a permanent failure: answered DROP (404 for a job).
    Drop,
    /// Matched no rule of its subscription: acknowledged without running a handler.
    Ignored,
}

impl Outcome {
    /// The lower-case name, the `outcome` label of the metrics and the log field.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::Retry => "retry",
            Self::Drop => "drop",
            Self::Ignored => "ignored",
        }
    }

    /// The pub/sub answer body Dapr reads.
    pub fn dapr_status(self) -> &'static str {
        match self {
            Self::Success | Self::Ignored => "SUCCESS",
            Self::Retry => "RETRY",
            Self::Drop => "DROP",
        }
    }
}

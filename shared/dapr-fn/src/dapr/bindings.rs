//! Output bindings: `POST /v1.0/bindings/<name>` with `{"operation", "data", "metadata"}`.
//!
//! daprd answers 200 (with the binding's response body, empty for most) or 204 when the
//! binding ran, 400 for a malformed request, and 500 `ERR_INVOKE_OUTPUT_BINDING` when the
//! binding failed (an SMTP server refusing, a connection error): the binding's own error is the
//! message (dapr/dapr pkg/api/http/http.go `onOutputBindingMessage`).

use std::collections::BTreeMap;

use reqwest::{Method, StatusCode};
use serde::Serialize;

use super::{Dapr, DaprError, encode, status_error};

/// One invocation of an output binding.
#[derive(Debug, Clone, Serialize)]
pub struct BindingRequest<'a> {
    /// What the binding does (`create` for `bindings.smtp`: send one mail).
    pub operation: &'a str,
    /// The payload: a mail's body for `bindings.smtp`.
    pub data: &'a str,
    /// Per-request metadata the binding reads (`emailTo`, `subject`, ...).
    pub metadata: BTreeMap<&'a str, &'a str>,
}

impl Dapr {
    /// Invokes output binding `name`; `Ok` once the binding has done its work.
    pub async fn invoke_binding(&self, name: &str, request: &BindingRequest<'_>) -> Result<(), DaprError> {
        let what = format!("invoke binding {name} ({})", request.operation);
        let url = self.url(&["v1.0", "bindings", name]);
        let body = encode(&what, request)?;
        let (status, _, response) = self.call(Method::POST, url, Some(body), &what).await?;
        match status {
            StatusCode::OK | StatusCode::NO_CONTENT => Ok(()),
            _ => Err(status_error(&what, status, &response)),
        }
    }
}

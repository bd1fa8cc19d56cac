//! Jobs API: `POST|GET|DELETE /v1.0-alpha1/jobs/{name}` (`/v1.0/jobs` from Dapr 1.18).
//!
//! A job belongs to the app-id whose sidecar scheduled it: only that app can read or delete it,
//! and at its due time the Scheduler calls `POST /job/{name}` on a replica of that app with the
//! job's `data` as the raw body. The sidecar decodes the request with protojson and
//! `DiscardUnknown`, so a misspelled field is silently ignored: the wire names here are tested.

use std::time::Duration;

use chrono::{DateTime, FixedOffset, SecondsFormat};
use reqwest::{Method, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Dapr, DaprError, encode, status_error};

/// What the Scheduler does when the app does not acknowledge a trigger (non-2xx other than 404,
/// timeout, no connection). Dapr's default is constant, 1 s, 3 retries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailurePolicy {
    /// Trigger again after `interval`, until the app acknowledges or the retries run out; then
    /// that occurrence is given up (a repeating job still fires at its next time).
    Constant {
        /// Wait before each retry, counted from the start of the failed attempt, not from the
        /// app's answer. Sent in protojson seconds, so sub-second values survive (`"0.5s"`).
        interval: Duration,
        /// Retries after the first attempt (`Some(3)`: four attempts in all); `None` retries
        /// for as long as the app keeps failing (go-etcd-cron `policyTryAgain`).
        max_retries: Option<u32>,
    },
    /// Never retry: a failed trigger is given up at once, and a repeating job waits for its
    /// next time. For work that is worthless late, or that the app reschedules itself.
    Drop,
}

impl Serialize for FailurePolicy {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct Constant {
            /// protobuf Duration in protojson: seconds only ("5s", "0.5s"), never "500ms".
            interval: String,
            #[serde(skip_serializing_if = "Option::is_none")]
            max_retries: Option<u32>,
        }
        #[derive(Serialize)]
        #[serde(rename_all = "lowercase")]
        enum Wire {
            Constant(Constant),
            Drop {},
        }
        match self {
            Self::Constant { interval, max_retries } => {
                Wire::Constant(Constant { interval: format!("{}s", interval.as_secs_f64()), max_retries: *max_retries })
            }
            Self::Drop => Wire::Drop {},
        }
        .serialize(serializer)
    }
}

/// A job to schedule. `name` goes in the URL, never in the body (Dapr rejects it there).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Job {
    /// Repeating schedule: six-field cron with seconds first (`0 30 * * * *`), or `@every 1h30m`,
    /// `@daily`, ...; `None` for a one-shot job at `due_time`. A bad one is a 500 from daprd.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schedule: Option<String>,
    /// RFC 3339 *with an offset*: the Scheduler does not convert times to UTC itself.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub due_time: Option<String>,
    /// With a `schedule`, how many times the job fires in all; `None`: until `ttl`, or for ever.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub repeats: Option<u32>,
    /// When the job expires and fires no more: RFC 3339, or a Go (`72h`) or ISO 8601 duration
    /// counted from `due_time` if set, else from scheduling. `None`: no expiry.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ttl: Option<String>,
    /// The raw JSON body of `POST /job/{name}` at each trigger. Always sent, `null` included:
    /// daprd 1.18.2 accepts a job without `data` but never delivers it.
    pub data: Value,
    /// Without it Dapr 1.16+ answers 409 when the name exists.
    pub overwrite: bool,
    /// What happens to a trigger the app fails; `None` takes the Scheduler's default (constant,
    /// 1 s, 3 retries). Set it with [`Job::failure_policy`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure_policy: Option<FailurePolicy>,
}

impl Job {
    /// A one-shot job at `due`, replacing any job of the same name.
    pub fn once_at(due: DateTime<FixedOffset>, data: Value) -> Self {
        Self {
            schedule: None,
            due_time: Some(due.to_rfc3339_opts(SecondsFormat::AutoSi, true)),
            repeats: None,
            ttl: None,
            data,
            overwrite: true,
            failure_policy: None,
        }
    }

    /// Replaces the Scheduler's default retry (constant, 1 s, 3 retries) for failed triggers.
    pub fn failure_policy(mut self, policy: FailurePolicy) -> Self {
        self.failure_policy = Some(policy);
        self
    }
}

/// A scheduled job as `GET` returns it, with `data` unwrapped from the protobuf `Any` Dapr
/// wraps it in (`{"@type": "...google.protobuf.Value", "value": ...}`).
#[derive(Debug, Clone, PartialEq)]
pub struct JobInfo {
    /// The name asked for: daprd answers with the name in the request URL.
    pub name: String,
    /// `dueTime` as it was scheduled, offset included (the Scheduler keeps the string).
    pub due_time: Option<String>,
    /// `schedule` as it was scheduled; `None` for a one-shot job.
    pub schedule: Option<String>,
    /// The `data` it was scheduled with, already out of its protobuf `Any`.
    pub data: Value,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireJob {
    #[serde(default)]
    name: String,
    #[serde(default)]
    due_time: Option<String>,
    #[serde(default)]
    schedule: Option<String>,
    #[serde(default)]
    data: Value,
}

fn unwrap_any(data: Value) -> Value {
    match data {
        Value::Object(mut map) if map.contains_key("@type") => map.remove("value").unwrap_or(Value::Null),
        other => other,
    }
}

/// Dapr answers 500 (not 404) for a job that does not exist.
fn is_not_found(status: StatusCode, body: &[u8]) -> bool {
    status == StatusCode::NOT_FOUND
        || (status == StatusCode::INTERNAL_SERVER_ERROR
            && String::from_utf8_lossy(body).to_ascii_lowercase().contains("not found"))
}

impl Dapr {
    fn job_url(&self, name: &str) -> reqwest::Url {
        let api = self.inner.jobs_api.clone();
        self.url(&[api.as_str(), "jobs", name])
    }

    /// Schedules `job` as `name`: 204 scheduled; 409 exists (without `overwrite`); 400 bad job.
    pub async fn schedule_job(&self, name: &str, job: &Job) -> Result<(), DaprError> {
        let what = format!("schedule job {name}");
        let (status, _, body) = self.call(Method::POST, self.job_url(name), Some(encode(&what, job)?), &what).await?;
        match status {
            StatusCode::NO_CONTENT | StatusCode::OK => Ok(()),
            StatusCode::CONFLICT => Err(DaprError::JobExists { name: name.to_owned() }),
            _ => Err(status_error(&what, status, &body)),
        }
    }

    /// The job, or `None` if this app has no job of that name.
    pub async fn get_job(&self, name: &str) -> Result<Option<JobInfo>, DaprError> {
        let what = format!("get job {name}");
        let (status, _, body) = self.call(Method::GET, self.job_url(name), None, &what).await?;
        if is_not_found(status, &body) {
            return Ok(None);
        }
        if status != StatusCode::OK {
            return Err(status_error(&what, status, &body));
        }
        let wire: WireJob = serde_json::from_slice(&body)
            .map_err(|e| DaprError::Decode { what: what.clone(), detail: e.to_string() })?;
        Ok(Some(JobInfo {
            name: wire.name,
            due_time: wire.due_time,
            schedule: wire.schedule,
            data: unwrap_any(wire.data),
        }))
    }

    /// Deletes the job. Deleting a job that does not exist succeeds: the caller wanted it gone.
    pub async fn delete_job(&self, name: &str) -> Result<(), DaprError> {
        let what = format!("delete job {name}");
        let (status, _, body) = self.call(Method::DELETE, self.job_url(name), None, &what).await?;
        if status.is_success() || is_not_found(status, &body) {
            return Ok(());
        }
        Err(status_error(&what, status, &body))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn one_shot_job_wire_shape() {
        let due = DateTime::parse_from_rfc3339("2026-09-01T09:00:00+02:00").unwrap();
        let job = Job::once_at(due, json!({"task_id": "t"}))
            .failure_policy(FailurePolicy::Constant { interval: Duration::from_secs(5), max_retries: Some(12) });
        assert_eq!(
            serde_json::to_value(&job).unwrap(),
            json!({
                "dueTime": "2026-09-01T09:00:00+02:00",
                "data": {"task_id": "t"},
                "overwrite": true,
                "failurePolicy": {"constant": {"interval": "5s", "maxRetries": 12}}
            })
        );
    }

    #[test]
    fn failure_policy_durations_are_protojson_seconds() {
        let half = FailurePolicy::Constant { interval: Duration::from_millis(500), max_retries: None };
        assert_eq!(serde_json::to_value(half).unwrap(), json!({"constant": {"interval": "0.5s"}}));
        assert_eq!(serde_json::to_value(FailurePolicy::Drop).unwrap(), json!({"drop": {}}));
    }

    #[test]
    fn get_unwraps_the_protobuf_any() {
        let wrapped = json!({"@type": "type.googleapis.com/google.protobuf.Value", "value": {"a": 1}});
        assert_eq!(unwrap_any(wrapped), json!({"a": 1}));
        assert_eq!(unwrap_any(json!({"a": 1})), json!({"a": 1}));
    }

    #[test]
    fn missing_job_is_a_500_with_not_found() {
        assert!(is_not_found(
            StatusCode::INTERNAL_SERVER_ERROR,
            br#"{"errorCode":"ERR_GET_JOB","message":"job not found: x"}"#
        ));
        assert!(!is_not_found(StatusCode::INTERNAL_SERVER_ERROR, br#"{"message":"scheduler unavailable"}"#));
        assert!(is_not_found(StatusCode::NOT_FOUND, b""));
    }
}

//! Jobs: the Dapr Scheduler, per app-id, persisted in the `jobs` table.
//!
//! API (dapr/dapr `pkg/api/http/jobs.go`, `pkg/api/universal/jobs.go`, 1.16+ semantics):
//! - the body is decoded like protojson with `DiscardUnknown`: camelCase and snake_case names,
//!   unknown fields ignored; a field of the wrong type is `ERR_MALFORMED_REQUEST`; `name` in the
//!   body is a 400 `DAPR_SCHEDULER_JOB_NAME`; neither `schedule` nor `dueTime` is a 400
//!   `DAPR_SCHEDULER_SCHEDULE_EMPTY`; `overwrite: false` (the default) on an existing name is a
//!   409; every `DAPR_SCHEDULER_*` error carries an `ErrorInfo` with the app-id and namespace;
//! - `dueTime` and `ttl` are RFC 3339 or a Go duration from now; `schedule` is
//!   [`crate::schedule::Schedule`]; `repeats` bounds the number of triggers;
//! - `failurePolicy` is `{"constant":{"interval":"5s","maxRetries":N}}` (protobuf Duration, so
//!   seconds only; no `maxRetries` = retry forever) or `{"drop":{}}`; default constant 1 s, 3
//!   retries (diagridio/go-etcd-cron `internal/scheduler/builder.go`);
//! - GET wraps `data` as `{"@type":"type.googleapis.com/google.protobuf.Value","value":...}` and a
//!   missing job is a **500**; DELETE answers 204.
//!
//! Triggering (dapr/dapr `pkg/runtime/scheduler/internal/cluster/streamer.go`,
//! `pkg/channel/http/http_channel.go` `constructJobRequest`): `POST /job/<name>` on the owning
//! app with the raw `data` JSON as the body, `Content-Type: application/json`, the app token and
//! no trace context; 2xx or 404 is done, anything else (or no connection) is retried under the
//! failure policy, `interval` after the failed attempt began; a job is not triggered again
//! before its previous trigger finished. A job that came due while devhost was down, or before
//! its app was ready, fires as soon as the app is ready (1.15+ staging queue); a recurring job
//! catches up
//! its missed ticks one after another, computing each tick from the previous one
//! (`cron.Next(last)`).

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension as _, params};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use tracing::{debug, info, warn};

use crate::db::{TaskFailed, now_ms};
use crate::duration;
use crate::host::Host;
use crate::schedule::Schedule;
use crate::sidecar::ApiError;

/// What is stored per job; `spec` in the table is this as JSON.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StoredJob {
    pub schedule: Option<String>,
    pub due_time: Option<String>,
    pub repeats: Option<u32>,
    pub ttl: Option<String>,
    /// `None`: the request had no `data` (GET then fails, as on daprd); `Some(Null)`: `null`.
    #[serde(default, deserialize_with = "present", skip_serializing_if = "Option::is_none")]
    pub data: Option<Value>,
    pub failure_policy: FailurePolicy,
    pub created_ms: i64,
    pub first_due_ms: i64,
    pub expires_ms: Option<i64>,
    /// Distinguishes two jobs scheduled under the same name in the same millisecond.
    pub generation: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub enum FailurePolicy {
    Constant { interval_ms: u64, max_retries: Option<u32> },
    Drop,
}

impl Default for FailurePolicy {
    fn default() -> Self {
        Self::Constant { interval_ms: 1000, max_retries: Some(3) }
    }
}

impl FailurePolicy {
    fn to_wire(&self) -> Value {
        match self {
            Self::Drop => json!({"drop": {}}),
            Self::Constant { interval_ms, max_retries } => {
                let mut c = Map::new();
                c.insert("interval".into(), json!(duration::format_proto(Duration::from_millis(*interval_ms))));
                if let Some(n) = max_retries {
                    c.insert("maxRetries".into(), json!(n));
                }
                json!({"constant": c})
            }
        }
    }
}

/// A field that is there, `null` included.
fn present<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(deserializer).map(Some)
}

fn field<'a>(obj: &'a Map<String, Value>, camel: &str, snake: &str) -> Option<&'a Value> {
    obj.get(camel).or_else(|| obj.get(snake)).filter(|v| !v.is_null())
}

/// A job the Scheduler refuses (bad name, times or schedule): `SchedulerScheduleJob` with the
/// gRPC code Unknown, which daprd answers as a 500 (the Scheduler's validation errors carry no
/// code of their own).
fn bad(message: impl Into<String>) -> ApiError {
    ApiError::internal("DAPR_SCHEDULER_SCHEDULE_JOB", format!("failed to schedule job due to: {}", message.into()))
}

/// A body protojson cannot decode (a field of the wrong type, a Duration not in seconds):
/// `ErrMalformedRequest`, before the request reaches the Scheduler.
fn malformed(message: impl Into<String>) -> ApiError {
    ApiError::new(
        StatusCode::BAD_REQUEST,
        "ERR_MALFORMED_REQUEST",
        format!("failed deserializing HTTP body: {}", message.into()),
    )
}

fn string_field(obj: &Map<String, Value>, camel: &str, snake: &str) -> Result<Option<String>, ApiError> {
    match field(obj, camel, snake) {
        None => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(malformed(format!("`{camel}` must be a string, found {other}"))),
    }
}

/// `dueTime`/`ttl`: RFC 3339, or a Go duration from `now`.
fn parse_time(text: &str, now: DateTime<Utc>, what: &str) -> Result<DateTime<Utc>, ApiError> {
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(t.with_timezone(&Utc));
    }
    let d = duration::parse_go(text)
        .map_err(|_| bad(format!("{what} {text:?} is neither RFC 3339 nor a Go duration (like 10s)")))?;
    chrono::Duration::from_std(d).map(|d| now + d).map_err(|_| bad(format!("{what} {text:?} is too far away")))
}

/// Checks the job name the way the Scheduler does (diagridio/go-etcd-cron v0.12
/// `internal/api/validator`): not empty, at most 512 bytes, no `/`, `\`, `#`, `?` or control
/// characters, not `.` or `..`. A refused name is a 500 like every Scheduler validation error.
pub fn validate_name(name: &str) -> Result<(), ApiError> {
    let why = if name.is_empty() {
        Some("job name cannot be empty")
    } else if name.len() > 512 {
        Some("must be at most 512 characters")
    } else if name.contains(['/', '\\', '#', '?']) {
        Some("must not contain '/', '\\', '#' or '?'")
    } else if name.chars().any(char::is_control) {
        Some("must not contain control characters")
    } else if name == "." || name == ".." {
        Some("must not be a path traversal sequence")
    } else {
        None
    };
    match why {
        None => Ok(()),
        Some(why) => Err(bad(format!("job name is invalid {name:?}: {why}"))),
    }
}

/// Parses a schedule request. Returns the job and `overwrite`.
pub fn parse_request(body: &[u8], now: DateTime<Utc>) -> Result<(StoredJob, bool), ApiError> {
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        ApiError::new(StatusCode::BAD_REQUEST, "ERR_MALFORMED_REQUEST", format!("job body is not JSON: {e}"))
    })?;
    let Value::Object(obj) = value else {
        return Err(ApiError::new(StatusCode::BAD_REQUEST, "ERR_MALFORMED_REQUEST", "job body must be a JSON object"));
    };
    if obj.get("name").is_some_and(|n| !n.is_null()) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "DAPR_SCHEDULER_JOB_NAME",
            "Set the job name in the url only",
        ));
    }
    let schedule = string_field(&obj, "schedule", "schedule")?;
    let due_time = string_field(&obj, "dueTime", "due_time")?;
    let ttl = string_field(&obj, "ttl", "ttl")?;
    let repeats = match field(&obj, "repeats", "repeats") {
        None => None,
        Some(Value::Number(n)) => Some(
            n.as_u64().and_then(|n| u32::try_from(n).ok()).ok_or_else(|| malformed("`repeats` must be a uint32"))?,
        ),
        Some(Value::String(s)) => Some(s.parse::<u32>().map_err(|_| malformed("`repeats` must be a uint32"))?),
        Some(_) => return Err(malformed("`repeats` must be a uint32")),
    };
    let overwrite = match field(&obj, "overwrite", "overwrite") {
        None => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(malformed("`overwrite` must be a boolean")),
    };
    let failure_policy = match field(&obj, "failurePolicy", "failure_policy") {
        None => FailurePolicy::default(),
        Some(Value::Object(p)) => {
            if let Some(c) = p.get("constant").filter(|v| !v.is_null()) {
                let Value::Object(c) = c else { return Err(malformed("failurePolicy.constant must be an object")) };
                let interval_ms = match string_field(c, "interval", "interval")? {
                    None => 0,
                    Some(text) => duration::parse_proto(&text)
                        .map_err(|e| malformed(format!("failurePolicy.constant.interval: {e}")))?
                        .as_millis() as u64,
                };
                let max_retries = match field(c, "maxRetries", "max_retries") {
                    None => None,
                    Some(Value::Number(n)) => Some(
                        n.as_u64()
                            .and_then(|n| u32::try_from(n).ok())
                            .ok_or_else(|| malformed("maxRetries must be a uint32"))?,
                    ),
                    Some(Value::String(s)) => Some(s.parse().map_err(|_| malformed("maxRetries must be a uint32"))?),
                    Some(_) => return Err(malformed("maxRetries must be a uint32")),
                };
                FailurePolicy::Constant { interval_ms, max_retries }
            } else if p.get("drop").is_some() {
                FailurePolicy::Drop
            } else {
                FailurePolicy::default()
            }
        }
        Some(_) => return Err(malformed("`failurePolicy` must be an object")),
    };
    // `null` is kept (daprd stores a null Value); only a missing `data` is none.
    let data = obj.get("data").cloned();
    if schedule.is_none() && due_time.is_none() {
        // `apierrors.Empty("Schedule", ..., SchedulerScheduleEmpty)`.
        return Err(ApiError::new(StatusCode::BAD_REQUEST, "DAPR_SCHEDULER_SCHEDULE_EMPTY", "Schedule is empty"));
    }
    let parsed_schedule = schedule.as_deref().map(Schedule::parse).transpose().map_err(bad)?;
    let first_due = match (&due_time, &parsed_schedule) {
        (Some(due), _) => parse_time(due, now, "dueTime")?,
        (None, Some(s)) => s.next_after(now).ok_or_else(|| bad("the schedule never fires"))?,
        (None, None) => return Err(bad("a job needs a schedule or a dueTime")),
    };
    let expires = ttl.as_deref().map(|t| parse_time(t, now, "ttl")).transpose()?;
    Ok((
        StoredJob {
            schedule,
            due_time,
            repeats,
            ttl,
            data,
            failure_policy,
            created_ms: now.timestamp_millis(),
            first_due_ms: first_due.timestamp_millis(),
            expires_ms: expires.map(|e| e.timestamp_millis()),
            generation: uuid::Uuid::new_v4().to_string(),
        },
        overwrite,
    ))
}

/// The GET answer.
pub fn to_wire(name: &str, job: &StoredJob) -> Value {
    let mut out = Map::new();
    out.insert("name".into(), json!(name));
    if let Some(s) = &job.schedule {
        out.insert("schedule".into(), json!(s));
    }
    if let Some(r) = job.repeats {
        out.insert("repeats".into(), json!(r));
    }
    if let Some(d) = &job.due_time {
        out.insert("dueTime".into(), json!(d));
    }
    if let Some(t) = &job.ttl {
        out.insert("ttl".into(), json!(t));
    }
    if let Some(data) = &job.data {
        out.insert("data".into(), json!({"@type": "type.googleapis.com/google.protobuf.Value", "value": data}));
    }
    out.insert("failurePolicy".into(), job.failure_policy.to_wire());
    Value::Object(out)
}

/// Stores a job. `Ok(false)`: it exists and `overwrite` is false.
pub async fn schedule(
    host: &Host,
    app_id: &str,
    name: &str,
    job: StoredJob,
    overwrite: bool,
) -> Result<bool, ApiError> {
    let (app, name) = (app_id.to_owned(), name.to_owned());
    let spec =
        serde_json::to_string(&job).map_err(|e| ApiError::internal("DAPR_SCHEDULER_SCHEDULE_JOB", e.to_string()))?;
    let changed = host.jobs_changed.clone();
    let created = host
        .db
        .call_then(
            move |inner| -> Result<bool, JobDbError> {
                let tx = inner.conn.savepoint()?;
                let exists: bool = tx
                    .prepare_cached("SELECT 1 FROM jobs WHERE app_id = ?1 AND name = ?2")?
                    .query_row(params![app, name], |_| Ok(true))
                    .optional()?
                    .is_some();
                if exists && !overwrite {
                    return Ok(false);
                }
                tx.prepare_cached(
                    "INSERT INTO jobs (app_id, name, spec, next_due, triggered, created_at) \
                     VALUES (?1, ?2, ?3, ?4, 0, ?5) \
                     ON CONFLICT (app_id, name) DO UPDATE SET spec = excluded.spec, next_due = excluded.next_due, \
                     triggered = 0, created_at = excluded.created_at",
                )?
                .execute(params![app, name, spec, job.first_due_ms, job.created_ms])?;
                tx.commit()?;
                Ok(true)
            },
            move |_| changed.notify_one(),
        )
        .await
        .map_err(|e| {
            ApiError::internal("DAPR_SCHEDULER_SCHEDULE_JOB", format!("failed to schedule job due to: {e}"))
        })?;
    Ok(created)
}

pub async fn get(host: &Host, app_id: &str, name: &str) -> Result<Option<StoredJob>, ApiError> {
    let (app, name) = (app_id.to_owned(), name.to_owned());
    host.db
        .read(move |conn| -> Result<Option<StoredJob>, JobDbError> {
            let spec: Option<String> = conn
                .prepare_cached("SELECT spec FROM jobs WHERE app_id = ?1 AND name = ?2")?
                .query_row(params![app, name], |r| r.get(0))
                .optional()?;
            Ok(spec.and_then(|s| serde_json::from_str(&s).ok()))
        })
        .await
        .map_err(|e| ApiError::internal("DAPR_SCHEDULER_GET_JOB", format!("failed to get job due to: {e}")))
}

pub async fn delete(host: &Host, app_id: &str, name: &str) -> Result<(), ApiError> {
    let (app, name, changed) = (app_id.to_owned(), name.to_owned(), host.jobs_changed.clone());
    host.db
        .call_then(
            move |inner| -> Result<usize, JobDbError> {
                Ok(inner
                    .conn
                    .prepare_cached("DELETE FROM jobs WHERE app_id = ?1 AND name = ?2")?
                    .execute(params![app, name])?)
            },
            move |_| changed.notify_one(),
        )
        .await
        .map_err(|e| ApiError::internal("DAPR_SCHEDULER_DELETE_JOB", format!("failed to delete job due to: {e}")))?;
    Ok(())
}

#[derive(Debug, thiserror::Error)]
pub enum JobDbError {
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error(transparent)]
    Task(#[from] TaskFailed),
}

/// A due job, as the scheduler loop reads it.
#[derive(Debug, Clone)]
struct Due {
    app_id: String,
    name: String,
    spec: String,
    next_due: i64,
    triggered: i64,
}

/// Runs the scheduler until shutdown.
pub async fn run_scheduler(host: Arc<Host>) {
    let in_flight: Arc<Mutex<HashSet<(String, String)>>> = Arc::default();
    loop {
        let jobs = host
            .db
            .read(|conn| -> Result<Vec<Due>, JobDbError> {
                let mut stmt = conn.prepare_cached(
                    "SELECT app_id, name, spec, next_due, triggered FROM jobs WHERE next_due IS NOT NULL",
                )?;
                let rows = stmt.query_map([], |r| {
                    Ok(Due {
                        app_id: r.get(0)?,
                        name: r.get(1)?,
                        spec: r.get(2)?,
                        next_due: r.get(3)?,
                        triggered: r.get(4)?,
                    })
                })?;
                Ok(rows.collect::<Result<Vec<_>, _>>()?)
            })
            .await;
        let now = now_ms();
        let (jobs, mut next_wake) = match jobs {
            Ok(jobs) => (jobs, now + 60_000),
            Err(e) => {
                // Soon, not in a minute: a job due meanwhile would otherwise fire that late.
                warn!(error = %e, "reading jobs failed; retrying in a second");
                (Vec::new(), now + 1_000)
            }
        };
        for job in jobs {
            let ready = host.apps.get(&job.app_id).is_some_and(|a| a.is_ready());
            if !ready {
                // Held until a sidecar of that app-id is up (Scheduler staging queue, 1.15+).
                continue;
            }
            let id = (job.app_id.clone(), job.name.clone());
            if in_flight.lock().unwrap_or_else(std::sync::PoisonError::into_inner).contains(&id) {
                continue;
            }
            if job.next_due > now {
                next_wake = next_wake.min(job.next_due);
                continue;
            }
            in_flight.lock().unwrap_or_else(std::sync::PoisonError::into_inner).insert(id.clone());
            let (host, in_flight) = (host.clone(), in_flight.clone());
            tokio::spawn(async move {
                trigger(&host, &job).await;
                in_flight.lock().unwrap_or_else(std::sync::PoisonError::into_inner).remove(&id);
                host.jobs_changed.notify_one();
            });
        }
        let wait = Duration::from_millis(u64::try_from((next_wake - now_ms()).max(1)).unwrap_or(1));
        tokio::select! {
            () = host.jobs_changed.notified() => {}
            () = tokio::time::sleep(wait) => {}
            () = host.shutdown.cancelled() => return,
        }
    }
}

/// Why a trigger of a job without `data` fails on daprd 1.18 (and `GET` of it too).
pub const NO_DATA: &str = "proto: google.protobuf.Value: none of the oneof fields is set";

/// One trigger of one job, with its failure policy, then the bookkeeping of the next tick.
async fn trigger(host: &Host, due: &Due) {
    // The scheduler loop read `due` before it saw that no trigger was in flight: a trigger that
    // finished in between (and advanced or removed the job) would fire the same tick again.
    if !still_due(host, due).await {
        return;
    }
    let Ok(job) = serde_json::from_str::<StoredJob>(&due.spec) else {
        warn!(app_id = %due.app_id, job = %due.name, "unreadable job in the database; deleting it");
        let _ = delete(host, &due.app_id, &due.name).await;
        return;
    };
    let Some(app) = host.apps.get(&due.app_id) else { return };
    let url = format!("{}/job/{}", app.base_url(), due.name);
    let body = job.data.as_ref().map(|d| serde_json::to_vec(d).unwrap_or_default()).unwrap_or_default();
    let late_ms = now_ms() - due.next_due;
    let mut retries = 0u32;
    loop {
        // The Scheduler's retry interval runs from the attempt, not from the app's answer.
        let attempt = tokio::time::Instant::now();
        // No trace context: the trigger comes from the Scheduler's stream, with no span (as
        // daprd without a tracing configuration sends it).
        let mut request = host
            .http
            .post(&url)
            .header(http::header::CONTENT_TYPE, "application/json")
            .timeout(Duration::from_secs(60))
            .body(body.clone());
        if let Some(token) = &host.options.app_token {
            request = request.header("dapr-api-token", token);
        }
        let failure = if job.data.is_none() {
            // daprd 1.18 cannot build the request for a job scheduled without `data` (its empty
            // protobuf Any does not convert to JSON): every attempt fails before reaching the app.
            Some(format!("error returned from app channel while sending triggered job to app: {NO_DATA}"))
        } else {
            let outcome = tokio::select! {
                r = request.send() => r,
                () = host.shutdown.cancelled() => return,
            };
            match outcome {
                Ok(r) if r.status().is_success() || r.status() == reqwest::StatusCode::NOT_FOUND => {
                    if r.status() == reqwest::StatusCode::NOT_FOUND {
                        warn!(app_id = %due.app_id, job = %due.name, "app answered 404 to the job trigger: done, not retried (Dapr 1.15+)");
                    } else {
                        info!(app_id = %due.app_id, job = %due.name, late_ms, "job triggered");
                    }
                    None
                }
                Ok(r) => Some(format!("app answered HTTP {}", r.status().as_u16())),
                Err(e) => Some(format!("app unreachable: {e}")),
            }
        };
        let Some(reason) = failure else { break };
        let retry_after = match &job.failure_policy {
            FailurePolicy::Drop => None,
            FailurePolicy::Constant { interval_ms, max_retries } => {
                max_retries.is_none_or(|max| retries < max).then(|| Duration::from_millis(*interval_ms))
            }
        };
        let Some(pause) = retry_after else {
            warn!(app_id = %due.app_id, job = %due.name, %reason, retries, "job trigger failed; failure policy exhausted, tick consumed");
            break;
        };
        warn!(app_id = %due.app_id, job = %due.name, %reason, retry = retries + 1, "job trigger failed; retrying under its failure policy");
        retries += 1;
        tokio::select! {
            () = tokio::time::sleep_until(attempt + pause) => {}
            () = host.shutdown.cancelled() => return,
        }
        // Stop retrying a job that was deleted or replaced meanwhile.
        if !still_current(host, due).await {
            return;
        }
    }
    advance(host, due, &job).await;
}

/// The job is still at the tick `due` was read at (not advanced, replaced or deleted since).
async fn still_due(host: &Host, due: &Due) -> bool {
    let (app, name, spec, next_due, triggered) =
        (due.app_id.clone(), due.name.clone(), due.spec.clone(), due.next_due, due.triggered);
    host.db
        .read(move |conn| -> Result<bool, JobDbError> {
            Ok(conn
                .query_row(
                    "SELECT 1 FROM jobs WHERE app_id = ?1 AND name = ?2 AND spec = ?3 AND next_due = ?4 \
                     AND triggered = ?5",
                    params![app, name, spec, next_due, triggered],
                    |_| Ok(true),
                )
                .optional()?
                .is_some())
        })
        .await
        .unwrap_or(true)
}

async fn still_current(host: &Host, due: &Due) -> bool {
    let (app, name, spec) = (due.app_id.clone(), due.name.clone(), due.spec.clone());
    host.db
        .read(move |conn| -> Result<bool, JobDbError> {
            Ok(conn
                .query_row(
                    "SELECT 1 FROM jobs WHERE app_id = ?1 AND name = ?2 AND spec = ?3",
                    params![app, name, spec],
                    |_| Ok(true),
                )
                .optional()?
                .is_some())
        })
        .await
        .unwrap_or(true)
}

/// After a trigger: the next tick (computed from the tick that just fired), or removal when the
/// job is one-shot, has used its `repeats`, or its `ttl` has passed.
async fn advance(host: &Host, due: &Due, job: &StoredJob) {
    let triggered = due.triggered + 1;
    let schedule = job.schedule.as_deref().and_then(|s| Schedule::parse(s).ok());
    let last = DateTime::<Utc>::from_timestamp_millis(due.next_due).unwrap_or_else(Utc::now);
    let next = schedule.and_then(|s| s.next_after(last)).map(|t| t.timestamp_millis()).filter(|next| {
        job.repeats.is_none_or(|r| triggered < i64::from(r)) && job.expires_ms.is_none_or(|e| *next <= e)
    });
    let (app, name, spec) = (due.app_id.clone(), due.name.clone(), due.spec.clone());
    let result = host
        .db
        .call(move |inner| -> Result<(), JobDbError> {
            match next {
                Some(next) => inner
                    .conn
                    .prepare_cached(
                        "UPDATE jobs SET next_due = ?4, triggered = ?5 WHERE app_id = ?1 AND name = ?2 AND spec = ?3",
                    )?
                    .execute(params![app, name, spec, next, triggered])?,
                None => inner
                    .conn
                    .prepare_cached("DELETE FROM jobs WHERE app_id = ?1 AND name = ?2 AND spec = ?3")?
                    .execute(params![app, name, spec])?,
            };
            Ok(())
        })
        .await;
    match result {
        Ok(()) => debug!(app_id = %due.app_id, job = %due.name, ?next, "job advanced"),
        Err(e) => {
            warn!(app_id = %due.app_id, job = %due.name, error = %e, "could not record the job trigger; it will fire again")
        }
    }
}

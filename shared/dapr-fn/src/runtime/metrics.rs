//! Prometheus metrics: one process-wide recorder, rendered on `GET /metrics`.
//!
//! Names (all carry a `function` label with the app-id):
//! - `todo_events_total{route, outcome}`: deliveries by outcome (success, retry, drop, ignored);
//! - `todo_event_handler_seconds{route}`: handler latency;
//! - `todo_jobs_total{outcome}` and `todo_job_handler_seconds`: job callbacks;
//! - `todo_http_requests_total{method, route, status}` and `todo_http_request_seconds{route}`:
//!   public HTTP routes (task-api).
//!
//! Functions add their own (for example fire-reminder's `todo_reminder_lateness_seconds`).

use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

const LATENCY_BUCKETS: &[f64] = &[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];
const LATENESS_BUCKETS: &[f64] = &[0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 15.0, 60.0, 300.0, 3600.0, 86400.0];

/// Installs the recorder on first use. `None` if another recorder was installed first (then
/// `/metrics` answers 503 rather than lying with an empty page).
pub fn handle() -> Option<&'static PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_lateness_seconds".into()), LATENESS_BUCKETS)
                .and_then(|b| b.set_buckets_for_metric(Matcher::Suffix("_seconds".into()), LATENCY_BUCKETS))
                .ok()?;
            let recorder = builder.build_recorder();
            let handle = recorder.handle();
            metrics::set_global_recorder(recorder).ok()?;
            Some(handle)
        })
        .as_ref()
}

/// The text exposition of every metric recorded so far.
pub fn render() -> Option<String> {
    let handle = handle()?;
    handle.run_upkeep();
    Some(handle.render())
}

//! `POST /v1.0/shutdown`: 204, then this app's sidecar stops, as daprd answers and then shuts
//! itself down gracefully (dapr/dapr v1.18.2 `pkg/api/http/shutdown.go`,
//! `pkg/api/universal/shutdown.go:37-50`; with `dapr-force-shutdown: true` daprd exits at once
//! with status 1, which devhost treats as the graceful request). Stopped: its API server (after this answer; the port then refuses
//! connections), its delivery loops and outbox relays (aborted: up to one batch of processed but uncommitted
//! offsets is delivered again on the next start, as after a crash of daprd), its job callbacks
//! (held, as the Scheduler holds a job while no sidecar of its app-id is connected). The other
//! apps' sidecars keep running, and so does the app process, as under `dapr run -f`: the dapr
//! CLI's multi-app run only logs that a daprd exited (dapr/cli `cmd/run.go`
//! `startDaprdProcess`; unlike the single-app `dapr run`, which then stops its app and exits)
//! and keeps everything else running until it gets a signal; devhost stops the app with
//! everything else when it stops.

use axum::extract::State;
use axum::http::StatusCode;
use tracing::info;

use super::Ctx;

pub(super) async fn shutdown(State(ctx): State<Ctx>) -> StatusCode {
    if let Some(app) = ctx.host.apps.get(&*ctx.app_id) {
        info!(app_id = %ctx.app_id, "shutdown requested via API: stopping this app's sidecar");
        app.ready.send_replace(false);
        for task in app.tasks.lock().unwrap_or_else(std::sync::PoisonError::into_inner).drain(..) {
            task.abort();
        }
        // The server finishes this answer before it stops (graceful shutdown).
        app.stopped.cancel();
    }
    StatusCode::NO_CONTENT
}

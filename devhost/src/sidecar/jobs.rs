//! The Jobs API (`/v1.0-alpha1/jobs/{name}`, `/v1.0/jobs/{name}`) over [`crate::jobs`].

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::{ApiError, Ctx};
use crate::jobs;

pub(super) async fn schedule_job(
    State(ctx): State<Ctx>,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<StatusCode, ApiError> {
    let scheduled = async {
        let (job, overwrite) = jobs::parse_request(&body, chrono::Utc::now())?;
        jobs::validate_name(&name)?;
        if jobs::schedule(&ctx.host, &ctx.app_id, &name, job, overwrite).await? {
            Ok(StatusCode::NO_CONTENT)
        } else {
            Err(ApiError::new(
                StatusCode::CONFLICT,
                "DAPR_SCHEDULER_SCHEDULE_JOB",
                format!("failed to schedule job due to: job {name} already exists (set overwrite to replace it)"),
            ))
        }
    };
    scheduled.await.map_err(|e| e.for_jobs(&ctx.app_id))
}

/// A missing job is a 500, as in Dapr (`SchedulerGetJob`).
pub(super) async fn get_job(State(ctx): State<Ctx>, Path(name): Path<String>) -> Result<Response, ApiError> {
    match jobs::get(&ctx.host, &ctx.app_id, &name).await.map_err(|e| e.for_jobs(&ctx.app_id))? {
        // daprd stores a job without `data` with an empty Any, which protojson cannot encode.
        Some(job) if job.data.is_none() => {
            Err(ApiError::internal("ERR_INTERNAL", format!("failed to encode response as JSON: {}", jobs::NO_DATA)))
        }
        Some(job) => Ok(axum::Json(jobs::to_wire(&name, &job)).into_response()),
        None => Err(ApiError::internal(
            "DAPR_SCHEDULER_GET_JOB",
            format!("failed to get job due to: job not found: {name}"),
        )
        .for_jobs(&ctx.app_id)),
    }
}

pub(super) async fn delete_job(State(ctx): State<Ctx>, Path(name): Path<String>) -> Result<StatusCode, ApiError> {
    jobs::delete(&ctx.host, &ctx.app_id, &name).await.map_err(|e| e.for_jobs(&ctx.app_id))?;
    Ok(StatusCode::NO_CONTENT)
}

//! The Secrets API: `GET /v1.0/secrets/{store}/{key}` and `GET /v1.0/secrets/{store}/bulk` over
//! the app's loaded secret stores ([`crate::secrets`]), as dapr/dapr v1.18.2
//! `pkg/api/http/secrets.go` and `pkg/api/universal/secrets.go` answer them: the secret's
//! key/value map, or every secret's; errors with daprd's codes and statuses
//! (`pkg/messages/predefined.go:80-85`): no secret store loaded at all 500
//! `ERR_SECRET_STORES_NOT_CONFIGURED`, an unknown (or out-of-scope) store 401
//! `ERR_SECRET_STORE_NOT_FOUND`, a store's failure (a file store's missing secret) 500
//! `ERR_SECRET_GET`. `metadata.*` query parameters are accepted; the local stores ignore them.
//! Secret scoping through a `Configuration` (`secrets.scopes`) is not emulated (no
//! `Configuration` resources are).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::{ApiError, Ctx};
use crate::secrets::SecretStore;

fn store<'a>(ctx: &'a Ctx, name: &str) -> Result<&'a SecretStore, ApiError> {
    let components = ctx.host.components_for(&ctx.app_id);
    if !components.iter().any(|c| c.secret_store().is_some()) {
        return Err(ApiError::internal("ERR_SECRET_STORES_NOT_CONFIGURED", "secret store is not configured"));
    }
    components.iter().find(|c| c.name == name).and_then(|c| c.secret_store()).ok_or_else(|| {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "ERR_SECRET_STORE_NOT_FOUND",
            format!("failed finding secret store with key {name}"),
        )
    })
}

pub(super) async fn get_secret(
    State(ctx): State<Ctx>,
    Path((name, key)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let secret = store(&ctx, &name)?.get(&key).map_err(|e| {
        ApiError::internal(
            "ERR_SECRET_GET",
            format!("failed getting secret with key {key} from secret store {name}: {e}"),
        )
    })?;
    Ok(axum::Json(secret).into_response())
}

pub(super) async fn bulk_secrets(State(ctx): State<Ctx>, Path(name): Path<String>) -> Result<Response, ApiError> {
    Ok(axum::Json(store(&ctx, &name)?.bulk()).into_response())
}

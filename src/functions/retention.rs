//! `RetentionSweep` (timer): applies the retention rules
//! (`RETENTION_ARCHIVE_AFTER_DAYS`, `RETENTION_DELETE_AFTER_DAYS`) to every
//! user's sessions, when `RETENTION_SWEEP_ENABLED` is set. Off by default.

use std::time::Instant;

use axum::{Json, body::Bytes, extract::State};

use super::{FunctionsState, protocol::InvocationResponse, protocol::invocation};
use crate::{api::ApiError, domain::Timestamp, retention, store::SessionStore};

/// `POST /RetentionSweep`: the timer. Work left when the invocation's time
/// is up is done by the next one (the rules look for what is still due).
pub async fn sweep(
    State(state): State<FunctionsState>,
    body: Bytes,
) -> Result<Json<InvocationResponse>, ApiError> {
    invocation(&body)?;
    let settings = &state.settings;
    let mut response = InvocationResponse::default();
    if !settings.retention_sweep_enabled {
        response.logs.push(
            "retention sweep is disabled (RETENTION_SWEEP_ENABLED=false); nothing done".into(),
        );
        return Ok(Json(response));
    }
    if settings.retention.is_off() {
        response.logs.push(
            "retention is off (neither RETENTION_ARCHIVE_AFTER_DAYS nor RETENTION_DELETE_AFTER_DAYS is set); nothing done"
                .into(),
        );
        return Ok(Json(response));
    }
    let store: &dyn SessionStore = state.store.as_ref();
    let report = retention::run(
        store,
        settings.retention,
        Timestamp::now(),
        false,
        Instant::now() + settings.retention_budget,
    )
    .await?;
    tracing::info!(
        archived = report.archived,
        deleted = report.deleted,
        messages_deleted = report.messages_deleted,
        skipped = report.skipped,
        complete = report.complete,
        "retention sweep"
    );
    response.logs = report.to_string().lines().map(str::to_owned).collect();
    Ok(Json(response))
}

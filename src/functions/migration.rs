//! The migration's functions: `MigrateChatSessions` (queue trigger, one
//! budgeted slice of a run per invocation, the rest as a continuation
//! message) and `MigrationSweep` (timer, enqueues a run when enabled).

use axum::{
    Json,
    body::Bytes,
    extract::State,
    http::StatusCode,
    response::{IntoResponse, Response},
};
use serde_json::Value;

use super::{
    FunctionsState,
    protocol::{
        CONTINUATION_BINDING, InvocationResponse, MalformedMessage, QUEUE_TRIGGER_BINDING,
        invocation, refuse,
    },
    queue::MigrationRequest,
};
use crate::{
    api::ApiError,
    migration::{self, Checkpoint, Options, Quiet, Resume, RunError},
    store::StoreState,
};

/// `POST /MigrateChatSessions`: a message from the `chat-migration` queue.
pub async fn migrate(State(state): State<FunctionsState>, body: Bytes) -> Response {
    let invocation = match invocation(&body) {
        Ok(invocation) => invocation,
        Err(e) => return e.into_response(),
    };
    let id = invocation.metadata_text("Id").unwrap_or_else(|| "?".into());
    let dequeue = invocation.dequeue_count().unwrap_or(0);
    let request: MigrationRequest = match invocation
        .queue_message::<MigrationRequest>(QUEUE_TRIGGER_BINDING)
        .and_then(|r| r.validated().map_err(MalformedMessage))
    {
        Ok(request) => request,
        Err(why) => {
            // Refused on every delivery: after maxDequeueCount the host moves
            // it to chat-migration-poison, where an operator can see it.
            tracing::error!(
                message_id = %id,
                dequeue_count = dequeue,
                "rejecting malformed migration message (it goes to chat-migration-poison after the last retry): {why}"
            );
            return refuse(
                StatusCode::BAD_REQUEST,
                format!("malformed migration message {id}: {why}"),
            );
        }
    };
    let Some(source) = state.migration_source.get().cloned() else {
        // While Cosmos DB is still being connected the legacy container is
        // not known yet; the queue retries the message later.
        let why = match state.store.state() {
            StoreState::Ready => "no legacy source: neither COSMOS_ENDPOINT nor MIGRATION_JSONL \
                                  is set, or the legacy container (COSMOS_LEGACY_CONTAINER) does \
                                  not exist"
                .to_owned(),
            not_ready => match not_ready.cause() {
                Some(cause) => format!("the store is not reachable yet: {cause}"),
                None => "the store is not reachable yet".to_owned(),
            },
        };
        tracing::error!(message_id = %id, "refusing the migration message (the queue retries it): {why}");
        return refuse(StatusCode::SERVICE_UNAVAILABLE, why);
    };
    let run_id = request
        .run_id
        .clone()
        .unwrap_or_else(|| format!("run-{id}"));
    let options = Options {
        batch_size: request.batch_size,
        dry_run: request.dry_run,
        delete_old: request.delete_old,
        run_id: run_id.clone(),
        budget: Some(state.settings.migration_budget),
        continues_step: request.step,
    };
    let resume = if request.dry_run {
        Resume::From(Box::new(request.resume.clone().unwrap_or_default()))
    } else {
        Resume::Store
    };
    let mut source = source.open(request.batch_size);
    match migration::run(
        source.as_mut(),
        state.store.as_ref(),
        &options,
        resume,
        &mut Quiet,
    )
    .await
    {
        Ok(checkpoint) => {
            let report = &checkpoint.report;
            let mut response = InvocationResponse {
                logs: report.to_string().lines().map(str::to_owned).collect(),
                ..InvocationResponse::default()
            };
            if report.finished {
                tracing::info!(run_id = %run_id, "migration finished\n{report}");
            } else {
                let next = MigrationRequest {
                    run_id: Some(run_id.clone()),
                    step: Some(checkpoint.step),
                    resume: request.dry_run.then(|| trimmed(checkpoint.clone())),
                    ..request
                };
                match serde_json::to_string(&next) {
                    Ok(text) => {
                        response
                            .outputs
                            .insert(CONTINUATION_BINDING.into(), Value::String(text));
                    }
                    Err(e) => return refuse(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
                }
                tracing::info!(run_id = %run_id, step = checkpoint.step, "migration continues in a new message\n{report}");
            }
            Json(response).into_response()
        }
        Err(stale @ RunError::Stale { .. }) => {
            let why = stale.to_string();
            tracing::info!(run_id = %run_id, message_id = %id, "{why}");
            Json(InvocationResponse {
                logs: vec![why],
                ..InvocationResponse::default()
            })
            .into_response()
        }
        Err(RunError::Superseded(run)) => {
            let why = format!("another invocation is working on run {run}; this one stops");
            tracing::warn!(message_id = %id, "{why}");
            Json(InvocationResponse {
                logs: vec![why],
                ..InvocationResponse::default()
            })
            .into_response()
        }
        Err(RunError::Failed(e)) => {
            tracing::error!(run_id = %run_id, "migration invocation failed (the queue retries it): {e:#}");
            refuse(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("migration failed: {e}"),
            )
        }
    }
}

/// A checkpoint small enough for a queue message (64 KiB): id lists cut.
fn trimmed(mut checkpoint: Checkpoint) -> Checkpoint {
    let report = &mut checkpoint.report;
    report.orphans.truncate(20);
    report.invalid.truncate(20);
    report.conflicts.truncate(20);
    report.errors.truncate(20);
    checkpoint
}

/// `POST /MigrationSweep`: the timer. When enabled it enqueues a migration
/// run that picks up old-style messages written since the last run.
pub async fn sweep(
    State(state): State<FunctionsState>,
    body: Bytes,
) -> Result<Json<InvocationResponse>, ApiError> {
    let invocation = invocation(&body)?;
    let past_due = invocation
        .data
        .get("timer")
        .and_then(|t| t.get("IsPastDue"))
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let mut response = InvocationResponse::default();
    if !state.settings.migration_sweep_enabled {
        response.logs.push(
            "migration sweep is disabled (MIGRATION_SWEEP_ENABLED=false); nothing enqueued".into(),
        );
        return Ok(Json(response));
    }
    let run = MigrationRequest::sweep(chrono::Utc::now());
    let text = serde_json::to_string(&run).map_err(|e| ApiError::Internal(e.into()))?;
    response
        .outputs
        .insert(CONTINUATION_BINDING.into(), Value::String(text));
    response.logs.push(format!(
        "migration sweep enqueued run {}{}",
        run.run_id.as_deref().unwrap_or("-"),
        if past_due {
            " (timer was past due)"
        } else {
            ""
        }
    ));
    tracing::info!(
        run_id = run.run_id.as_deref().unwrap_or("-"),
        "migration sweep enqueued"
    );
    Ok(Json(response))
}

//! `POST /api/chat/import`: a file of sessions (this service's export, or
//! ChatGPT's `conversations.json`) brought into the caller's history. The
//! import itself is `crate::import`; this is its HTTP side: who the caller
//! is, the body and its own size limit, and the answers.

use axum::{
    Json,
    body::Body,
    extract::State,
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
};
use http_body_util::{BodyExt as _, LengthLimitError, Limited};

use super::{ApiError, AppState, extract::ApiQuery, sessions::UserParam};
use crate::{
    import::{self, ImportError, ImportReport},
    store::ImportStore,
};

/// Media types an import may be declared as (or none, or `text/plain`).
const ACCEPTED: &[&str] = &[
    "application/x-ndjson",
    "application/ndjson",
    "application/jsonl",
    "application/x-jsonlines",
    "application/json",
    "text/plain",
];

/// `POST /api/chat/import`
#[utoipa::path(
    post,
    path = "/api/chat/import",
    tag = "sessions",
    summary = "Import sessions from a file",
    description = "The body is either this service's export (`GET /api/chat/export`: NDJSON, a session line followed by its message lines) or ChatGPT's `conversations.json` (a JSON array), told apart by its first character. Everything goes to the caller, whatever user ids the file holds. The whole file is checked before anything is written: a bad line or conversation is a 400 (not JSON) or 422 (invalid), a session id that another user has a 409, and each names where it is (`line 7`, `conversation 3`); nothing is written then. Importing the same file again adds nothing: a session that exists gets only the messages it lacks, and its own fields stay. From ChatGPT each conversation becomes a session named by its title, with the messages of the branch last shown (text messages of the user, the assistant and the system), ids derived from the conversation and node ids. The body may be up to IMPORT_MAX_BYTES (default 64 MiB).",
    params(UserParam),
    request_body(
        description = "This service's export (NDJSON) or ChatGPT's conversations.json.",
        content(
            (String = "application/x-ndjson"),
            (Vec<Object> = "application/json"),
        ),
    ),
    responses((status = 200, description = "Imported; what was added.", body = ImportReport))
)]
pub async fn import_history(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiQuery(params): ApiQuery<UserParam>,
    body: Body,
) -> Result<Response, ApiError> {
    let owner = state.owner(&headers, params.user_id.as_deref(), None)?;
    check_content_type(&headers)?;
    let limit = state.settings.import_max_bytes;
    let too_large = || {
        ApiError::PayloadTooLarge(format!(
            "the file is larger than the import limit of {limit} bytes (IMPORT_MAX_BYTES)"
        ))
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    let bytes = Limited::new(body, limit)
        .collect()
        .await
        .map_err(|e| {
            if e.is::<LengthLimitError>() {
                too_large()
            } else {
                ApiError::BadRequest(format!("could not read the request body: {e}"))
            }
        })?
        .to_bytes();
    // Its own task: a client that gives up (or a front end that times out)
    // does not stop an import halfway; it finishes, and a repeat finds it
    // done.
    let store = state.store.clone();
    let work = tokio::spawn(async move {
        let store: &dyn ImportStore = store.as_ref();
        import::run(store, &owner, &bytes, &mut |_| {}).await
    });
    let report = work
        .await
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("the import task failed: {e}")))?
        .map_err(|e| match e {
            ImportError::Malformed(detail) => ApiError::BadRequest(detail),
            ImportError::Invalid(detail) => ApiError::Validation(detail),
            ImportError::Conflict(detail) => ApiError::Conflict(detail),
            ImportError::Store(e) => e.into(),
        })?;
    Ok((StatusCode::OK, Json(report)).into_response())
}

fn check_content_type(headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(value) = headers.get(header::CONTENT_TYPE) else {
        return Ok(());
    };
    let essence = value
        .to_str()
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if essence.is_empty() || essence.ends_with("+json") || ACCEPTED.contains(&essence.as_str()) {
        return Ok(());
    }
    Err(ApiError::UnsupportedMediaType(format!(
        "an import is this service's export (Content-Type: application/x-ndjson) or ChatGPT's \
         conversations.json (Content-Type: application/json), not {essence}"
    )))
}

//! `POST /api/chat/import`: a file of sessions (this service's export, or
//! ChatGPT's `conversations.json`) brought into the caller's history. The
//! import itself is `crate::import`; this is its HTTP side: who the caller
//! is, the body and its own size limit, and the answers.

use axum::{
    Extension, Json,
    body::Body,
    extract::State,
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
};
use http_body_util::BodyExt as _;
use tokio::io::AsyncWriteExt as _;

use super::{
    ApiError, AppState,
    admit::{self, Lent},
    extract::ApiQuery,
    params::UserParam,
};
use crate::{
    import::{self, ImportError, ImportReport},
    store::ImportStore,
};

/// The spool's write buffer: a few large writes rather than one per frame.
const SPOOL_BUFFER: usize = 1024 * 1024;

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
    description = "The body is either this service's export (`GET /api/chat/export`: NDJSON, a session line followed by its message lines) or ChatGPT's `conversations.json` (a JSON array), told apart by its first character. Everything goes to the caller, whatever user ids the file holds. The whole file is checked before anything is written: a bad line or conversation is a 400 (not JSON) or 422 (invalid: a parent_id that is not a message of the session in the file, too), and each names where it is (`line 7`, `conversation 3`); nothing is written then. A conversation's tree comes back whole: every branch, each message with its parent_id, and the current branch (`current_message_id` of the session line). A session id that another user has (their export, given to the caller) is imported as the caller's own copy, under an id derived from the caller and the original id; only when that id is another user's too is the file refused (409). Importing the same file again adds nothing: a session that exists gets only the messages it lacks, and its own fields and current branch stay (unless the file's branch continues it). From ChatGPT each conversation becomes a session named by its title, with every branch of its tree, the one last shown (`current_node`) current: text of the user, the assistant and the system; a call to a tool (code for `python`, a search, an image) as an assistant message with `tool_calls`, answered by a `tool` message; a tool's node answering no call as a system message; images and files as `attachments` in the metadata; ids derived from the conversation and node ids (docs/api.md has the table). The body may be up to IMPORT_MAX_BYTES (default 256 MiB); it is read as a stream, never held whole. An import counts as a write against the user's rate (429), and an instance runs MAX_IMPORTS_IN_FLIGHT at once (503 with Retry-After beyond).",
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
    lent: Option<Extension<Lent>>,
    body: Body,
) -> Result<Response, ApiError> {
    let owner = state.owner(&headers, params.user_id.as_deref(), None)?;
    check_content_type(&headers)?;
    let limit = state.settings.import_max_bytes;
    if let Err(refused) = state.admission.write(&owner) {
        // Read first, so that a client still sending reads the answer.
        admit::drain(body, limit).await;
        return Err(refused);
    }
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large(limit));
    }
    let file = spool(body, limit).await?;
    // Its own task: a client that gives up (or a front end that times out)
    // does not stop an import halfway; it finishes, and a repeat finds it
    // done. It keeps the import's place among those in flight till then.
    let store = state.store.clone();
    let work = tokio::spawn(async move {
        let _lent = lent;
        let store: &dyn ImportStore = store.as_ref();
        import::run(store, &owner, file, &mut |_| {}).await
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

fn too_large(limit: usize) -> ApiError {
    ApiError::PayloadTooLarge(format!(
        "the file is larger than the import limit of {limit} bytes (IMPORT_MAX_BYTES)"
    ))
}

/// Writes the body to an unnamed temporary file (in the system's temporary
/// directory, `TMPDIR`), through a 1 MiB buffer: the import reads it twice
/// and never holds it whole. The file has no name from the start, so it is
/// gone once closed, whatever happens (a refusal, a failure, a crash).
async fn spool(mut body: Body, limit: usize) -> Result<std::fs::File, ApiError> {
    let spool = tokio::task::spawn_blocking(tempfile::tempfile)
        .await
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("creating the import's file: {e}")))?
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("creating the import's file: {e}")))?;
    let failed = |e: std::io::Error| ApiError::Internal(anyhow::anyhow!("spooling an import: {e}"));
    let copy = spool.try_clone().map_err(failed)?;
    let mut out =
        tokio::io::BufWriter::with_capacity(SPOOL_BUFFER, tokio::fs::File::from_std(copy));
    let (mut total, mut blank) = (0usize, true);
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| {
            admit::BodyTimedOut::refusal(&e).unwrap_or_else(|| {
                ApiError::BadRequest(format!("could not read the request body: {e}"))
            })
        })?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        total += data.len();
        if total > limit {
            return Err(too_large(limit));
        }
        blank = blank && data.trim_ascii().is_empty();
        out.write_all(&data).await.map_err(failed)?;
    }
    out.flush().await.map_err(failed)?;
    // The body is required (the OpenAPI document says so): an empty request
    // is a client's mistake, not an empty file to import.
    if blank {
        return Err(ApiError::BadRequest(
            "the body is empty: send this service's export (NDJSON) or ChatGPT's conversations.json"
                .into(),
        ));
    }
    Ok(spool)
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

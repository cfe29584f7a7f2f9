//! A conversation as a tree, over HTTP: the whole tree of a session
//! (`GET …/{session_id}/tree`), editing and deleting one message
//! (`PATCH` / `DELETE …/{session_id}/messages/{message_id}`), and the two
//! branch operations the session endpoints take on: reading another branch
//! (`GET …/{session_id}?message_id=`) and making one current (`PUT
//! …/{session_id}` with `current_message_id`). Appending under a chosen
//! parent is `POST …/messages` with `parent_id` ([`super::messages`]).

use axum::{
    extract::State,
    http::{HeaderMap, StatusCode},
    response::Response,
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{
    ApiError, AppState,
    conditional::{
        json_with_etag, no_content_with_etag, none_match_hits, not_modified, write_precondition,
    },
    extract::{ApiJson, ApiPath, ApiQuery},
    params::{UserParam, decode_position, encode_position, message_id, page_size, session_id},
};
use crate::{
    domain::{
        ChatMessage, DeleteScope, JsonObject, MessageEdit, MessageId, SessionId, SessionPatch,
        UserId,
    },
    store::{Owner, TreeQuery},
};

/// Default page size of a tree listing.
pub const DEFAULT_TREE_PAGE: u32 = 200;
/// Largest page of a tree listing (the stores' bound).
pub const MAX_TREE_PAGE: u32 = 1000;

/// Query of `GET /api/chat/sessions/{session_id}/tree`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TreeParams {
    /// The user (local mode), or a check against the principal (Easy Auth).
    #[param(value_type = Option<UserId>)]
    pub user_id: Option<String>,
    /// Page size, 1–1000 (default 200).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
    /// From the previous page.
    pub continuation_token: Option<String>,
}

/// Body of `GET /api/chat/sessions/{session_id}/tree`.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionTree {
    /// Messages of every branch, in creation order (a message always comes
    /// after its parent), each with its `parent_id`.
    pub messages: Vec<ChatMessage>,
    /// The last message of the current branch (what `GET` on the session
    /// shows); null when the session has no messages.
    #[schema(required = true, value_type = Option<MessageId>)]
    pub current_message_id: Option<MessageId>,
    /// Pass as `continuation_token` for the next page; null on the last.
    #[schema(required = true)]
    pub continuation_token: Option<String>,
}

/// Query of `DELETE /api/chat/sessions/{session_id}/messages/{message_id}`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeleteMessageParams {
    /// The user (local mode), or a check against the principal (Easy Auth).
    #[param(value_type = Option<UserId>)]
    pub user_id: Option<String>,
    /// `true`: the message and every message under it (all its branches);
    /// `false` (default): the message alone, its children then follow its
    /// parent.
    pub subtree: Option<bool>,
}

/// Body of `PATCH /api/chat/sessions/{session_id}/messages/{message_id}`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EditMessageBody {
    /// The new text, under the rules of an append (not blank, except for an
    /// assistant message that calls tools); `null` leaves it.
    pub content: Option<String>,
    /// New metadata, replacing the old; `null` leaves it.
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<JsonObject>,
    /// The user (local mode) or a check against the principal.
    #[schema(value_type = Option<UserId>)]
    pub user_id: Option<String>,
}

/// The `continuation_token` of the page after `after` messages. Opaque to
/// clients; versioned (`t1:`) so that its form can change.
fn encode_token(after: u64) -> String {
    encode_position("t1", after)
}

fn decode_token(token: &str) -> Result<u64, ApiError> {
    decode_position("continuation_token", "token", "t1", token)
}

/// `GET /api/chat/sessions/{session_id}/tree`
#[utoipa::path(
    get,
    path = "/api/chat/sessions/{session_id}/tree",
    tag = "sessions",
    summary = "Every message of every branch of a session",
    description = "The whole conversation tree, in creation order, each message with its `parent_id` (null for a first message), paged by an opaque continuation_token, with the id of the current branch's last message. Messages appended while a client pages come on later pages; a message deleted meanwhile is simply not there. `ETag` is the session's version (If-None-Match → 304).",
    params(
        ("session_id" = SessionId, Path, description = "The session."),
        TreeParams,
        ("If-None-Match" = Option<String>, Header, nullable = false, description = "The ETag of an earlier answer to the same request: 304 while the session is unchanged."),
    ),
    responses(
        (status = 200, description = "A page of the tree.", body = SessionTree, headers(
            ("ETag" = String, description = "Version of the session."),
        )),
        (status = 304, description = "Unchanged since the ETag in If-None-Match.", headers(
            ("ETag" = String, description = "Version of the session."),
        )),
    )
)]
pub async fn get_tree(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiPath(raw_id): ApiPath<String>,
    ApiQuery(params): ApiQuery<TreeParams>,
) -> Result<Response, ApiError> {
    let owner = state.owner(&headers, params.user_id.as_deref(), None)?;
    let id = session_id(raw_id)?;
    let limit = page_size("limit", params.limit, DEFAULT_TREE_PAGE, MAX_TREE_PAGE)?;
    let after = params
        .continuation_token
        .as_deref()
        .filter(|t| !t.is_empty())
        .map(decode_token)
        .transpose()?
        .unwrap_or(0);
    let page = state
        .store
        .list_tree(&owner, &id, TreeQuery { limit, after })
        .await?;
    // A page is a function of the session's version and the query, so the
    // version stands for it as well as for the session.
    if none_match_hits(&headers, &page.etag) {
        return Ok(not_modified(&page.etag));
    }
    let body = SessionTree {
        messages: page.messages,
        current_message_id: page.current_message_id,
        continuation_token: page.next_after.map(encode_token),
    };
    Ok(json_with_etag(StatusCode::OK, &body, Some(&page.etag)))
}

/// `PATCH /api/chat/sessions/{session_id}/messages/{message_id}`
#[utoipa::path(
    patch,
    path = "/api/chat/sessions/{session_id}/messages/{message_id}",
    tag = "sessions",
    summary = "Edit a message in place",
    description = "Changes the content and/or metadata of one message (of any branch) and sets its `edited_at`; its place in the tree, id, type and times stay. At least one of `content` and `metadata`; the content follows the rules of an append (422). To keep the original and answer anew instead (edit and resend), post a new message with the edited message's `parent_id`. Counts as a write against the user's write rate.",
    params(
        ("session_id" = SessionId, Path, description = "The session."),
        ("message_id" = MessageId, Path, description = "The message."),
        UserParam,
        ("If-Match" = Option<String>, Header, nullable = false, description = "Edit only if the session still has this ETag (412 otherwise)."),
    ),
    request_body = EditMessageBody,
    responses((status = 200, description = "The edited message.", body = ChatMessage, headers(
        ("ETag" = String, description = "New version of the session."),
    )))
)]
pub async fn edit_message(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiPath((raw_id, raw_message)): ApiPath<(String, String)>,
    ApiQuery(params): ApiQuery<UserParam>,
    ApiJson(body): ApiJson<EditMessageBody>,
) -> Result<Response, ApiError> {
    let owner = state.owner(&headers, params.user_id.as_deref(), body.user_id.as_deref())?;
    state.admission.write(&owner)?;
    let id = session_id(raw_id)?;
    let message = message_id("message_id", raw_message)?;
    let edit = MessageEdit {
        content: body.content,
        metadata: body.metadata,
    };
    if edit.content.is_none() && edit.metadata.is_none() {
        return Err(ApiError::Validation(
            "content, metadata: give at least one of them".into(),
        ));
    }
    let if_match = write_precondition(&state, &owner, &id, &headers).await?;
    let edited = state
        .store
        .edit_message(&owner, &id, &message, &edit, if_match.as_ref())
        .await?;
    Ok(json_with_etag(
        StatusCode::OK,
        &edited.value,
        Some(&edited.etag),
    ))
}

/// `DELETE /api/chat/sessions/{session_id}/messages/{message_id}`
#[utoipa::path(
    delete,
    path = "/api/chat/sessions/{session_id}/messages/{message_id}",
    tag = "sessions",
    summary = "Delete a message, or a message and everything under it",
    description = "Deletes one message of any branch. `subtree=false` (default): the message alone; its children follow its parent instead. `subtree=true`: the message and every message under it. When the current branch loses its last message, the branch ends at that message's parent. `message_count`, `total_message_count` and `last_message_at` follow.",
    params(
        ("session_id" = SessionId, Path, description = "The session."),
        ("message_id" = MessageId, Path, description = "The message."),
        DeleteMessageParams,
        ("If-Match" = Option<String>, Header, nullable = false, description = "Delete only if the session still has this ETag (412 otherwise)."),
    ),
    responses((status = 204, description = "Deleted.", headers(
        ("ETag" = String, description = "New version of the session."),
    )))
)]
pub async fn delete_message(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiPath((raw_id, raw_message)): ApiPath<(String, String)>,
    ApiQuery(params): ApiQuery<DeleteMessageParams>,
) -> Result<Response, ApiError> {
    let owner = state.owner(&headers, params.user_id.as_deref(), None)?;
    let id = session_id(raw_id)?;
    let message = message_id("message_id", raw_message)?;
    let scope = if params.subtree.unwrap_or(false) {
        DeleteScope::Subtree
    } else {
        DeleteScope::Message
    };
    let if_match = write_precondition(&state, &owner, &id, &headers).await?;
    let deleted = state
        .store
        .delete_message(&owner, &id, &message, scope, if_match.as_ref())
        .await?;
    Ok(no_content_with_etag(&deleted))
}

/// `GET /api/chat/sessions/{session_id}?message_id=`: the session showing
/// the branch through `raw_message` (the stored current branch does not
/// change), only its newest `messages_limit` messages when given.
///
/// Never from or into the session's render cache, which holds the current
/// branch under the session's `ETag`: that `ETag` is also this answer's
/// (the branch read is a function of the version and the message), so a
/// cached rendering would be taken for this one.
pub(super) async fn read_branch(
    state: &AppState,
    headers: &HeaderMap,
    owner: &Owner,
    id: &SessionId,
    raw_message: String,
    messages_limit: Option<u32>,
) -> Result<Response, ApiError> {
    let message = message_id("message_id", raw_message)?;
    let mut read = state.store.read_branch(owner, id, &message).await?;
    if none_match_hits(headers, &read.etag) {
        return Ok(not_modified(&read.etag));
    }
    if let Some(limit) = messages_limit {
        let messages = &mut read.value.messages;
        let keep = messages.len().min(limit as usize);
        messages.drain(..messages.len() - keep);
    }
    Ok(json_with_etag(
        StatusCode::OK,
        &read.value,
        Some(&read.etag),
    ))
}

/// `PUT /api/chat/sessions/{session_id}` with `current_message_id`: makes
/// the branch through that message the current one.
///
/// Refused (422) together with any other change: the store switches a
/// branch and patches a session in two writes, and a request that fails
/// must change nothing, which two writes cannot promise.
pub(super) async fn switch_branch(
    state: &AppState,
    headers: &HeaderMap,
    owner: &Owner,
    id: &SessionId,
    raw_message: String,
    patch: &SessionPatch,
) -> Result<Response, ApiError> {
    if patch.session_name.is_some() || patch.is_active.is_some() || patch.context.is_some() {
        return Err(ApiError::Validation(
            "current_message_id: cannot be combined with session_name, is_active or context; \
             send those in a PUT of their own"
                .into(),
        ));
    }
    let message = message_id("current_message_id", raw_message)?;
    let if_match = write_precondition(state, owner, id, headers).await?;
    let switched = state
        .store
        .switch_branch(owner, id, &message, if_match.as_ref())
        .await?;
    Ok(json_with_etag(
        StatusCode::OK,
        &switched.value,
        Some(&switched.etag),
    ))
}

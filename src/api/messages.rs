//! The message endpoints of a session: `/api/chat/sessions/{session_id}/messages`
//! (append one, page through them newest first).

use axum::{
    extract::State,
    http::{HeaderMap, StatusCode},
    response::Response,
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{
    ApiError, AppState,
    conditional::json_with_etag,
    extract::{ApiJson, ApiPath, ApiQuery},
    params::{UserParam, decode_position, encode_position, message_id, page_size, session_id},
};
use crate::{
    domain::{
        ChatMessage, JsonObject, MessageId, MessageType, NewMessage, Parent, SessionId, ToolCall,
        ToolParts, UserId,
    },
    store::MessageQuery,
};

/// Default page size of the messages pager.
pub const DEFAULT_MESSAGE_PAGE: u32 = 50;
/// Largest page of the messages pager.
pub const MAX_MESSAGE_PAGE: u32 = 200;

/// Query of `GET /api/chat/sessions/{session_id}/messages`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct MessagesParams {
    /// The user (local mode), or a check against the principal (Easy Auth).
    #[param(value_type = Option<UserId>)]
    pub user_id: Option<String>,
    /// Page size, 1–200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<u32>,
    /// `next_before` of the previous page: continue with older messages.
    pub before: Option<String>,
}

/// Body of `GET /api/chat/sessions/{session_id}/messages`.
#[derive(Debug, Serialize, ToSchema)]
pub struct MessageList {
    /// Messages, newest first.
    pub messages: Vec<ChatMessage>,
    /// Pass as `before` for the next (older) page; null at the oldest message.
    #[schema(required = true)]
    pub next_before: Option<String>,
}

fn encode_before(position: u64) -> String {
    encode_position("m1", position)
}

fn decode_before(cursor: &str) -> Result<u64, ApiError> {
    decode_position("before", "cursor", "m1", cursor)
}

/// `GET /api/chat/sessions/{session_id}/messages`
#[utoipa::path(
    get,
    path = "/api/chat/sessions/{session_id}/messages",
    tag = "sessions",
    summary = "Page through a session's messages, newest first",
    description = "Pages of at most `limit` messages, newest first; pass `next_before` back as `before` for older ones. On Cosmos DB a page inside the session document costs one point read; older pages add one point read per sealed page they touch.",
    params(
        ("session_id" = SessionId, Path, description = "The session."),
        MessagesParams,
    ),
    responses((status = 200, description = "A page of messages.", body = MessageList))
)]
pub async fn list_messages(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiPath(raw_id): ApiPath<String>,
    ApiQuery(params): ApiQuery<MessagesParams>,
) -> Result<Response, ApiError> {
    let owner = state.owner(&headers, params.user_id.as_deref(), None)?;
    let id = session_id(raw_id)?;
    let limit = page_size(
        "limit",
        params.limit,
        DEFAULT_MESSAGE_PAGE,
        MAX_MESSAGE_PAGE,
    )?;
    let before = params
        .before
        .as_deref()
        .filter(|b| !b.is_empty())
        .map(decode_before)
        .transpose()?;
    let page = state
        .store
        .list_messages(&owner, &id, MessageQuery { limit, before })
        .await?;
    let body = MessageList {
        messages: page.messages,
        next_before: page.next_before.map(encode_before),
    };
    Ok(json_with_etag(StatusCode::OK, &body, None))
}

/// Body of `POST /api/chat/sessions/{session_id}/messages`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SendMessageBody {
    /// The text; not blank, except for an assistant message that only calls
    /// tools (then it may be empty or left out).
    #[serde(default)]
    pub content: String,
    /// `user`, `assistant`, `system` or `tool`.
    #[schema(value_type = MessageType)]
    pub message_type: String,
    /// The tools an assistant message calls (Chat Completions shape).
    pub tool_calls: Option<Vec<ToolCall>>,
    /// The call a tool message answers; required for (and only for) tool
    /// messages.
    #[schema(max_length = 256)]
    pub tool_call_id: Option<String>,
    /// The function a tool message answers for (tool messages only).
    #[schema(pattern = "^[A-Za-z0-9_-]{1,64}$")]
    pub name: Option<String>,
    /// Free-form data.
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<JsonObject>,
    /// A client id that makes retries safe; generated when absent.
    #[schema(value_type = Option<MessageId>)]
    pub id: Option<String>,
    /// Where the message goes in the session's tree. Left out: after the
    /// current branch's last message, as always. A message id: after that
    /// message (an answer regenerated, a message edited and sent again), a
    /// new branch that becomes the current one. `null`: a new first message
    /// (the first message edited and sent again). An id the session lacks →
    /// 422.
    #[serde(default, deserialize_with = "super::params::present")]
    #[schema(value_type = Option<MessageId>)]
    pub parent_id: Option<Option<String>>,
    /// The user (local mode) or a check against the principal.
    #[schema(value_type = Option<UserId>)]
    pub user_id: Option<String>,
}

/// `POST /api/chat/sessions/{session_id}/messages`
#[utoipa::path(
    post,
    path = "/api/chat/sessions/{session_id}/messages",
    tag = "sessions",
    summary = "Append a message to a session",
    description = "Atomic; updates message_count, last_message_at and updated_at. `parent_id` places it in the session's tree (left out: after the current branch's last message; a message id: a new branch after that message; null: a new first message); the answer carries the parent it got. Posting the same id again returns the stored message (200) and stores nothing; the same id with other content is a 409. Tool calling in the Chat Completions shape: an assistant message may carry `tool_calls` (its content may then be empty), a `tool` message answers one call by `tool_call_id`.",
    params(
        ("session_id" = SessionId, Path, description = "The session."),
        UserParam,
    ),
    request_body = SendMessageBody,
    responses(
        (status = 201, description = "Stored.", body = ChatMessage, headers(
            ("ETag" = String, description = "New version of the session."),
        )),
        (status = 200, description = "Already stored under this id (a retry); nothing changed.", body = ChatMessage, headers(
            ("ETag" = String, description = "Version of the session."),
        )),
    )
)]
pub async fn send_message(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiPath(raw_id): ApiPath<String>,
    ApiQuery(params): ApiQuery<UserParam>,
    ApiJson(body): ApiJson<SendMessageBody>,
) -> Result<Response, ApiError> {
    let owner = state.owner(&headers, params.user_id.as_deref(), body.user_id.as_deref())?;
    state.admission.write(&owner)?;
    let id = session_id(raw_id)?;
    let mut message = NewMessage::with_tools(
        body.id.map(MessageId::parse).transpose()?,
        body.content,
        MessageType::parse(&body.message_type)?,
        owner.user_id().cloned(),
        body.metadata.unwrap_or_default(),
        ToolParts {
            tool_calls: body.tool_calls,
            tool_call_id: body.tool_call_id,
            name: body.name,
        },
    )?;
    message.parent = match body.parent_id {
        None => Parent::Latest,
        Some(None) => Parent::Root,
        Some(Some(raw)) => Parent::Message(message_id("parent_id", raw)?),
    };
    let appended = state.store.append_message(&owner, &id, message).await?;
    let status = if appended.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok(json_with_etag(
        status,
        &appended.message,
        Some(&appended.etag),
    ))
}

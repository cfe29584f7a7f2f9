//! The endpoints of the old per-message API, kept for old frontends and
//! served from the session structure.

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
    extract::{ApiJson, ApiQuery},
};
use crate::{
    domain::{
        ChatMessage, JsonObject, MessageId, MessageType, NewMessage, NewSession, SessionId,
        Timestamp, UserId,
    },
    store::{Appended, StoreError},
};

/// A message in the old shape: one object per message, naming its session.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct LegacyMessage {
    /// The message id.
    pub id: MessageId,
    /// The session it belongs to.
    pub session_id: SessionId,
    /// The user.
    #[schema(required = true)]
    pub user_id: Option<UserId>,
    /// The text.
    pub content: String,
    /// Who wrote it.
    pub message_type: MessageType,
    /// Free-form data.
    #[schema(value_type = Object)]
    pub metadata: JsonObject,
    /// When it was stored.
    pub created_at: Timestamp,
}

impl LegacyMessage {
    /// `message` of session `session_id` in the old shape.
    pub fn from_message(session_id: &SessionId, message: ChatMessage) -> Self {
        Self {
            id: message.id,
            session_id: session_id.clone(),
            user_id: message.user_id,
            content: message.content,
            message_type: message.message_type,
            metadata: message.metadata,
            created_at: message.created_at,
        }
    }
}

/// Query of `GET /api/chat/history`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct HistoryParams {
    /// The session (required; 422 without it).
    #[param(required = true, value_type = SessionId)]
    pub session_id: Option<String>,
    /// The user.
    #[param(value_type = Option<UserId>)]
    pub user_id: Option<String>,
}

/// The message types of the legacy endpoint.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum LegacyMessageType {
    /// The person chatting.
    User,
    /// The assistant answering.
    Assistant,
    /// Instructions or notices from the application.
    System,
}

/// Body of `POST /api/chat/message`. Unknown members are ignored: old
/// frontends sent more than this.
#[derive(Debug, Deserialize, ToSchema)]
pub struct LegacyPostBody {
    /// The text; not blank.
    #[schema(min_length = 1, pattern = r"\S")]
    pub content: String,
    /// `user` (default), `assistant` or `system`: the old store had no tool
    /// messages (post those to the session's messages endpoint).
    #[schema(value_type = Option<LegacyMessageType>)]
    pub message_type: Option<String>,
    /// The session; a new one is created when absent or unknown.
    #[schema(value_type = Option<SessionId>)]
    pub session_id: Option<String>,
    /// The user.
    #[schema(value_type = Option<UserId>)]
    pub user_id: Option<String>,
    /// Free-form data.
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<JsonObject>,
    /// A client id that makes retries safe.
    #[schema(value_type = Option<MessageId>)]
    pub id: Option<String>,
}

/// `GET /api/chat/history?session_id=&user_id=`
#[utoipa::path(
    get,
    path = "/api/chat/history",
    tag = "legacy",
    summary = "Legacy: a session's messages in the old per-message shape",
    description = "Oldest first; an empty array for an unknown session.",
    params(HistoryParams),
    responses((status = 200, description = "The messages.", body = Vec<LegacyMessage>))
)]
pub async fn history(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiQuery(params): ApiQuery<HistoryParams>,
) -> Result<Response, ApiError> {
    let owner = state.owner(&headers, params.user_id.as_deref(), None)?;
    let raw = params
        .session_id
        .ok_or_else(|| ApiError::Validation("session_id: is required".into()))?;
    let id = SessionId::parse(raw)?;
    let messages = match state.store.get_session(&owner, &id).await {
        Ok(stored) => stored
            .value
            .messages
            .into_iter()
            .map(|m| LegacyMessage::from_message(&id, m))
            .collect(),
        // The old API answered an unknown session with an empty history.
        Err(StoreError::NotFound) => Vec::new(),
        Err(e) => return Err(e.into()),
    };
    Ok(json_with_etag(StatusCode::OK, &messages, None))
}

/// `POST /api/chat/message`
#[utoipa::path(
    post,
    path = "/api/chat/message",
    tag = "legacy",
    summary = "Legacy: post a message, creating its session when needed",
    params(super::params::UserParam),
    request_body = LegacyPostBody,
    responses(
        (status = 201, description = "Stored.", body = LegacyMessage),
        (status = 200, description = "Already stored under this id (a retry).", body = LegacyMessage),
    )
)]
pub async fn post_message(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiQuery(params): ApiQuery<super::params::UserParam>,
    ApiJson(body): ApiJson<LegacyPostBody>,
) -> Result<Response, ApiError> {
    let owner = state.owner(&headers, params.user_id.as_deref(), body.user_id.as_deref())?;
    state.admission.write(&owner)?;
    let message_type = MessageType::parse(body.message_type.as_deref().unwrap_or("user"))?;
    if message_type == MessageType::Tool {
        return Err(ApiError::Validation(
            "message_type: the legacy endpoint takes user, assistant or system; post tool \
             messages to /api/chat/sessions/{session_id}/messages"
                .into(),
        ));
    }
    let message = NewMessage::new(
        body.id.map(MessageId::parse).transpose()?,
        body.content,
        message_type,
        owner.user_id().cloned(),
        body.metadata.unwrap_or_default(),
    )?;
    let now = Timestamp::now();
    let session_id = match body.session_id {
        Some(raw) => SessionId::parse(raw)?,
        None => SessionId::generate(now),
    };
    let appended = match state
        .store
        .append_message(&owner, &session_id, message.clone())
        .await
    {
        Err(StoreError::NotFound) => {
            let new = NewSession::new(
                Some(session_id.clone()),
                owner.user_id().cloned(),
                None,
                JsonObject::new(),
                now,
            )?;
            match state.store.create_session(new).await {
                // A concurrent post created it first: append to that one.
                Ok(_) | Err(StoreError::Conflict(_)) => {}
                Err(e) => return Err(e.into()),
            }
            state
                .store
                .append_message(&owner, &session_id, message)
                .await?
        }
        other => other?,
    };
    let Appended {
        message, created, ..
    } = appended;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let body = LegacyMessage::from_message(&session_id, message);
    Ok(json_with_etag(status, &body, None))
}

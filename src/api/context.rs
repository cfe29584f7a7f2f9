//! `GET /api/chat/sessions/{session_id}/context`: the newest messages of a
//! session that fit a token budget, in the shape a model API takes.

use axum::{body::Bytes, extract::State, http::HeaderMap, response::Response};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{
    ApiError, AppState,
    conditional::json_bytes,
    extract::{ApiPath, ApiQuery},
    params::session_id,
};
use crate::{
    context::{CACHE, Chosen, Encoding, Selection},
    domain::{ChatMessage, SessionId, ToolCall, UserId},
    store::{ContextSink, ETag},
    telemetry::instruments,
};

/// The largest budget accepted: beyond any model's context window.
pub const MAX_BUDGET: u32 = 10_000_000;

/// Query of `GET /api/chat/sessions/{session_id}/context`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ContextParams {
    /// The user (local mode), or a check against the principal (Easy Auth).
    #[param(value_type = Option<UserId>)]
    pub user_id: Option<String>,
    /// The budget in tokens, 0 – 10,000,000: the answer's `tokens` never
    /// exceed it.
    #[param(value_type = u32, required = true, minimum = 0, maximum = 10_000_000)]
    pub max_tokens: Option<String>,
    /// The tokenizer: `o200k_base` (GPT-4o, GPT-4.1, o-series, GPT-5;
    /// default) or `cl100k_base` (GPT-4, GPT-3.5).
    #[param(value_type = Option<ContextEncoding>)]
    pub encoding: Option<String>,
    /// `openai` (default): Chat Completions messages, ready to send;
    /// `native`: this service's messages.
    #[param(value_type = Option<ContextFormat>)]
    pub format: Option<String>,
}

/// The tokenizers a budget can be counted in.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ContextEncoding {
    /// GPT-4o, GPT-4.1, o-series, GPT-5.
    O200kBase,
    /// GPT-4, GPT-3.5-turbo.
    Cl100kBase,
}

/// The shapes the messages can come in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ContextFormat {
    /// `{"role", "content", "tool_calls"?, "tool_call_id"?}`.
    Openai,
    /// This service's messages, as `GET` on the session returns them.
    Native,
}

/// A message as the Chat Completions API takes it.
#[derive(Debug, Serialize, ToSchema)]
pub struct OpenAiMessage<'a> {
    /// `system`, `user`, `assistant` or `tool`.
    #[schema(value_type = String)]
    pub role: &'static str,
    /// The text; null for an assistant message that only calls tools.
    #[schema(value_type = Option<String>, required = true)]
    pub content: Option<&'a str>,
    /// The calls of an assistant message.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<ToolCall>>)]
    pub tool_calls: Option<&'a [ToolCall]>,
    /// The call a tool message answers.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub tool_call_id: Option<&'a str>,
}

impl<'a> OpenAiMessage<'a> {
    fn of(message: &'a ChatMessage) -> Self {
        let calls = message.tool_calls.as_deref();
        let content =
            (!(message.content.is_empty() && calls.is_some())).then_some(message.content.as_str());
        Self {
            role: message.message_type.as_str(),
            content,
            tool_calls: calls,
            tool_call_id: message.tool_call_id.as_deref(),
        }
    }
}

/// Body of `GET /api/chat/sessions/{session_id}/context`, in either format
/// ([`OpenAiContext`] describes it for the OpenAPI document).
#[derive(Debug, Serialize)]
pub struct ContextBody<M> {
    /// The leading system messages, then the newest messages that fit,
    /// oldest first.
    pub messages: Vec<M>,
    /// Their tokens by OpenAI's recipe for chat messages, with the 3 that
    /// prime the reply (0 when there are no messages).
    pub tokens: u32,
    /// Whether older messages were left out.
    pub truncated: bool,
    /// The budget asked for.
    pub max_tokens: u32,
    /// The tokenizer counted with.
    pub encoding: &'static str,
}

/// A message of a context answer, in either format (for the OpenAPI
/// document).
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
#[allow(dead_code)]
pub enum ContextMessage {
    /// `format=openai`.
    OpenAi(OpenAiMessage<'static>),
    /// `format=native`.
    Native(ChatMessage),
}

/// The OpenAPI shape of a context answer.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct OpenAiContext {
    /// The leading system messages, then the newest messages that fit,
    /// oldest first: ready to send as `messages` (`format=openai`), or this
    /// service's messages (`format=native`).
    messages: Vec<ContextMessage>,
    /// Their tokens by OpenAI's recipe for chat messages, with the 3 that
    /// prime the reply (0 when there are no messages).
    tokens: u32,
    /// Whether older messages were left out.
    truncated: bool,
    /// The budget asked for.
    max_tokens: u32,
    /// The tokenizer counted with.
    encoding: ContextEncoding,
}

fn budget(raw: Option<&str>) -> Result<u32, ApiError> {
    let raw = raw.ok_or_else(|| {
        ApiError::Validation("max_tokens: is required (the budget in tokens)".into())
    })?;
    raw.parse::<u32>()
        .ok()
        .filter(|n| *n <= MAX_BUDGET)
        .ok_or_else(|| {
            ApiError::Validation(format!(
                "max_tokens: must be a whole number from 0 to {MAX_BUDGET}"
            ))
        })
}

fn format(raw: Option<&str>) -> Result<ContextFormat, ApiError> {
    match raw.unwrap_or("openai") {
        "openai" => Ok(ContextFormat::Openai),
        "native" => Ok(ContextFormat::Native),
        _ => Err(ApiError::Validation(
            "format: must be openai or native".into(),
        )),
    }
}

/// `GET /api/chat/sessions/{session_id}/context`
#[utoipa::path(
    get,
    path = "/api/chat/sessions/{session_id}/context",
    tag = "sessions",
    summary = "The newest messages that fit a token budget, ready for a model",
    description = "The session's leading system messages (always, when they fit; else 422), then the newest messages that fit in what is left of `max_tokens`, oldest first, as one unbroken run: the first message going back that does not fit ends it, and an assistant message calling tools is kept or left out together with the tool messages answering it. Counted with the named tokenizer plus OpenAI's per-message overhead (exact for text; tool calls are counted over their JSON, an estimate). On Cosmos DB a budget met within the session document and its newest sealed page costs at most 2 point reads.",
    params(
        ("session_id" = SessionId, Path, description = "The session."),
        ContextParams,
    ),
    responses(
        (status = 200, description = "The messages that fit (`format=openai`; with `format=native` `messages` holds ChatMessage objects).", body = OpenAiContext),
    )
)]
pub async fn context(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiPath(raw_id): ApiPath<String>,
    ApiQuery(params): ApiQuery<ContextParams>,
) -> Result<Response, ApiError> {
    let owner = state.owner(&headers, params.user_id.as_deref(), None)?;
    let id = session_id(raw_id)?;
    let max_tokens = budget(params.max_tokens.as_deref())?;
    let encoding = Encoding::parse(params.encoding.as_deref().unwrap_or("o200k_base"))?;
    let format = format(params.format.as_deref())?;
    if !encoding.is_loaded() {
        // Not on a runtime worker: it would stall every request it serves.
        tokio::task::spawn_blocking(move || encoding.load())
            .await
            .map_err(|e| ApiError::Internal(e.into()))?;
    }
    let key = format!(
        "{}\n{id}\n{max_tokens}\n{}\n{format:?}",
        owner.user_id().map_or("", |u| u.as_str()),
        encoding.as_str()
    );
    let cached = state.contexts.get(&key);
    let mut sink = Revalidated {
        selection: Selection::new(encoding, max_tokens, &CACHE),
        cached: cached.as_ref().map(|(etag, _)| etag),
        hit: false,
        version: None,
    };
    if let Err(e) = state.store.read_context(&owner, &id, &mut sink).await {
        state.contexts.remove(&key);
        return Err(e.into());
    }
    instruments::cache_lookup(instruments::Cache::Context, sink.hit);
    if sink.hit
        && let Some((_, body)) = cached
    {
        return Ok(json_bytes(body));
    }
    let version = sink.version;
    let Chosen {
        messages,
        tokens,
        truncated,
    } = sink.selection.finish().map_err(|small| {
        ApiError::Validation(format!(
            "max_tokens: the session's leading system messages alone need {} tokens",
            small.needed
        ))
    })?;
    let encoding = encoding.as_str();
    let body = match format {
        ContextFormat::Openai => {
            let messages: Vec<_> = messages.iter().map(OpenAiMessage::of).collect();
            serde_json::to_vec(&ContextBody {
                messages,
                tokens,
                truncated,
                max_tokens,
                encoding,
            })
        }
        ContextFormat::Native => serde_json::to_vec(&ContextBody {
            messages,
            tokens,
            truncated,
            max_tokens,
            encoding,
        }),
    };
    let body = Bytes::from(body.map_err(|e| ApiError::Internal(e.into()))?);
    if let Some(version) = version {
        state.contexts.put(&key, version, body.clone());
    }
    Ok(json_bytes(body))
}

/// The selection, told the session's version first: when a rendered answer
/// for that version is at hand, the store reads no further.
struct Revalidated<'a> {
    selection: Selection<'static>,
    cached: Option<&'a ETag>,
    hit: bool,
    version: Option<ETag>,
}

impl ContextSink for Revalidated<'_> {
    fn version(&mut self, etag: &ETag) -> bool {
        self.hit = self.cached == Some(etag);
        self.version = Some(etag.clone());
        !self.hit
    }

    fn leading(&mut self, system: Vec<ChatMessage>) -> bool {
        self.selection.leading(system)
    }

    fn older(&mut self, newest_first: Vec<ChatMessage>) -> bool {
        self.selection.older(newest_first)
    }
}

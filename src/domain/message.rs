//! Messages: who wrote them, as stored and served, and as posted (checked).

use serde::{Deserialize, Serialize};

use super::{
    JsonObject, MessageId, Parent, Timestamp, ToolCall, ToolParts, UserId, ValidationError,
};

/// Who wrote a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum MessageType {
    /// The person chatting.
    User,
    /// The assistant answering.
    Assistant,
    /// Instructions or notices from the application.
    System,
    /// A tool's answer to a call an assistant message made (`tool_call_id`).
    Tool,
}

impl MessageType {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::User => "user",
            Self::Assistant => "assistant",
            Self::System => "system",
            Self::Tool => "tool",
        }
    }

    /// Parses the wire name.
    pub fn parse(value: &str) -> Result<Self, ValidationError> {
        match value {
            "user" => Ok(Self::User),
            "assistant" => Ok(Self::Assistant),
            "system" => Ok(Self::System),
            "tool" => Ok(Self::Tool),
            _ => Err(ValidationError::new(
                "message_type",
                "must be one of user, assistant, system, tool",
            )),
        }
    }
}

/// One message of a session, as stored and served.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ChatMessage {
    /// Unique within its session; retrying a post with the same id is harmless.
    pub id: MessageId,
    /// The text; never blank, except in an assistant message that only calls
    /// tools.
    pub content: String,
    /// Who wrote it.
    pub message_type: MessageType,
    /// The user the message belongs to, if known.
    #[schema(required = true)]
    pub user_id: Option<UserId>,
    /// Free-form data the frontend attaches.
    #[serde(default)]
    #[schema(value_type = Object, required = true)]
    pub metadata: JsonObject,
    /// When the service stored it (or the legacy store did).
    pub created_at: Timestamp,
    /// The tools an assistant message calls (absent when none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Vec<ToolCall>>,
    /// The call a tool message answers (tool messages only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
    /// The function a tool message answers for (tool messages only, optional).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The message this one follows; null for a first message. Messages
    /// stored before conversations became trees read as a chain.
    #[serde(default)]
    #[schema(required = true)]
    pub parent_id: Option<MessageId>,
    /// When the content or metadata was last edited in place (absent when
    /// never).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub edited_at: Option<Timestamp>,
    /// Only in answers, on a message of the branch read that has
    /// alternatives: the ids of it and its siblings (the messages with the
    /// same parent), oldest first, for a "‹ 2/3 ›" control. Never stored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub siblings: Option<Vec<MessageId>>,
}

impl ChatMessage {
    /// True when `other` carries the same payload (what a retry would send):
    /// content, type, metadata, tool parts and the parent it named. Ids and
    /// timestamps are not compared.
    pub fn same_payload(&self, other: &NewMessage) -> bool {
        self.content == other.content
            && other.parent.matches(self.parent_id.as_ref())
            && self.message_type == other.message_type
            && self.metadata == other.metadata
            && self.tool_calls == other.tools.tool_calls
            && self.tool_call_id == other.tools.tool_call_id
            && self.name == other.tools.name
    }

    /// The message's tool parts, together.
    pub fn tool_parts(&self) -> ToolParts {
        ToolParts {
            tool_calls: self.tool_calls.clone(),
            tool_call_id: self.tool_call_id.clone(),
            name: self.name.clone(),
        }
    }

    /// The stored message of `new`, stored at `created_at` after `parent_id`.
    pub fn stored(
        new: NewMessage,
        user_id: Option<UserId>,
        created_at: Timestamp,
        parent_id: Option<MessageId>,
    ) -> Self {
        Self {
            id: new.id,
            content: new.content,
            message_type: new.message_type,
            user_id,
            metadata: new.metadata,
            created_at,
            tool_calls: new.tools.tool_calls,
            tool_call_id: new.tools.tool_call_id,
            name: new.tools.name,
            parent_id,
            edited_at: None,
            siblings: None,
        }
    }
}

/// Checks a message's content and tool parts against its type: the parts
/// as [`ToolParts::check`] says, and content that is not blank, except in
/// an assistant message that calls tools. What a post and an import of a
/// message are both held to.
pub fn check_message(
    content: &str,
    message_type: MessageType,
    tools: &ToolParts,
) -> Result<(), ValidationError> {
    tools.check(message_type)?;
    if content.trim().is_empty() && !tools.calls_tools() {
        return Err(ValidationError::new("content", "must not be empty"));
    }
    Ok(())
}

/// A message to append, validated; the store assigns `created_at`.
#[derive(Debug, Clone, PartialEq)]
pub struct NewMessage {
    /// The id (client-supplied for retry safety, or generated).
    pub id: MessageId,
    /// Never blank.
    pub content: String,
    /// Who wrote it.
    pub message_type: MessageType,
    /// The writer's user id; the store falls back to the session's owner.
    pub user_id: Option<UserId>,
    /// Free-form data.
    pub metadata: JsonObject,
    /// Tool calls (assistant) or the call answered (tool).
    pub tools: ToolParts,
    /// Where in the session's tree it goes.
    pub parent: Parent,
}

impl NewMessage {
    /// Validates the parts of a message a client sends, without tool parts.
    pub fn new(
        id: Option<MessageId>,
        content: String,
        message_type: MessageType,
        user_id: Option<UserId>,
        metadata: JsonObject,
    ) -> Result<Self, ValidationError> {
        Self::with_tools(
            id,
            content,
            message_type,
            user_id,
            metadata,
            ToolParts::default(),
        )
    }

    /// Validates the parts of a message a client sends. Content may be
    /// empty only for an assistant message that calls tools.
    pub fn with_tools(
        id: Option<MessageId>,
        content: String,
        message_type: MessageType,
        user_id: Option<UserId>,
        metadata: JsonObject,
        tools: ToolParts,
    ) -> Result<Self, ValidationError> {
        check_message(&content, message_type, &tools)?;
        Ok(Self {
            id: id.unwrap_or_else(MessageId::generate),
            content,
            message_type,
            user_id,
            metadata,
            tools,
            parent: Parent::Latest,
        })
    }
}

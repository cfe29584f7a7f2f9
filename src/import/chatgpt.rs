//! ChatGPT's data export (`conversations.json`): a JSON array of
//! conversations, each a tree of nodes (`mapping`) in which an edited
//! message starts a new branch. A conversation becomes a session named by
//! its title, holding the branch the user last saw: from `current_node` up
//! through `parent` to the root, then in order.
//!
//! What the nodes of that branch become (the table in docs/api.md says the
//! same for users of the API):
//!
//! - A node of the `user`, the `assistant` or the `system` addressed to the
//!   conversation (`recipient` `all`) with text (`text`, `multimodal_text`,
//!   `code`) becomes a message of that type. Its images and files (image
//!   parts, `metadata.attachments`) become entries of the metadata's
//!   `attachments`; one that is only attachments gets `[image: name]`-like
//!   text, so that its content is not blank.
//! - An assistant node addressed to a tool (`recipient` `python`, `web.run`,
//!   `dalle.text2im`, …) becomes an assistant message making one tool call
//!   in the Chat Completions shape, with empty content: its id
//!   `call_<node id>`, its function the recipient made a valid name
//!   (`dalle.text2im` → `dalle_text2im`), its arguments the node's text when
//!   that is a JSON object (as `web.run`'s and image generation's are), else
//!   `{"code": …}` for code (`python`'s) or `{"text": …}`.
//! - The first `tool` node after that call (nodes left out do not count)
//!   answers it: a tool message naming the call and the function, with the
//!   tool's text (an execution's output, a browsing result, …), else
//!   `[image]`-like text for what it made, else `[empty]` (a call is
//!   answered whenever the export has an answer, so that the history can
//!   go back to a model as it is).
//! - A `tool` node answering no call (a second answer, a notice such as
//!   DALL·E's "displayed 1 images", the `file_search` prompt after an
//!   upload) is kept as a `system` message — a notice from the application,
//!   neither the user's nor the model's words — with
//!   `chatgpt_author_role: "tool"` in its metadata; left out when it has
//!   no text.
//! - Left out: nodes without a message, nodes ChatGPT hides
//!   (`is_visually_hidden_from_conversation`), the model's reasoning
//!   (`thoughts`, `reasoning_recap`), context nodes
//!   (`user_editable_context`, …) and blank ones.
//!
//! The shapes are those of real exports: the unofficial specification in
//! mohamed-chs/convoviz (`docs/dev/chatgpt-spec.md`: roles, recipients,
//! content types, `sediment://` and `file-service://` asset pointers), a
//! real export rendered in ErikaRS/chatgpt_to_markdown
//! (`tmp_md_openai-2025-04-06/Image_Request_Summary.md`: a `dalle.text2im`
//! call, its image, then a second tool node with DALL·E's notice), and
//! exports of 2025 quoted in public repositories (a `python` call as `code`
//! and its `execution_output` with `metadata.aggregate_result`, `web.run`
//! calls whose code is JSON answered by empty text nodes, `file_search`
//! nodes answering no call, uploads' `metadata.attachments` with
//! `mime_type`, `mimeType` in older ones).
//!
//! Ids are derived, so importing the same file again finds what it brought
//! the first time: a session's from its owner and the conversation id (two
//! users importing the same file get separate sessions), a message's from
//! its node id, a tool call's from its node id too.

use std::{cell::Cell, collections::HashMap};

use chrono::DateTime;
use serde::{
    Deserialize, Deserializer as _,
    de::{SeqAccess, Visitor},
};
use serde_json::{Value, error::Category, json};

use super::{
    ImportError, Place, Unit,
    file::{Meter, UnitTooLarge, read_failed},
    without_position,
};
use crate::digest::sha256_hex;
use crate::domain::{
    ChatMessage, FunctionCall, JsonObject, MAX_SESSION_NAME_LEN, MessageId, MessageType, SessionId,
    Timestamp, ToolCall, ToolCallType, ToolParts,
};
use crate::store::{Owner, SessionFields, SessionImport};

mod parts;

/// Prefix of every id this import derives.
const PREFIX: &str = "chatgpt_";
/// What `context.imported_from` and `metadata.imported_from` say.
const SOURCE: &str = "chatgpt";

/// One conversation of the file, as much of it as the import uses.
#[derive(Deserialize)]
pub(super) struct Conversation {
    id: Option<String>,
    conversation_id: Option<String>,
    title: Option<String>,
    create_time: Option<f64>,
    update_time: Option<f64>,
    #[serde(default)]
    mapping: HashMap<String, Node>,
    current_node: Option<String>,
    is_archived: Option<bool>,
}

#[derive(Deserialize)]
struct Node {
    parent: Option<String>,
    message: Option<Message>,
}

#[derive(Deserialize)]
struct Message {
    author: Author,
    create_time: Option<f64>,
    /// Polymorphic (see [`parts`]), so read as it comes.
    content: Option<Value>,
    /// `all` for the conversation; a tool's name for a call to it.
    recipient: Option<String>,
    metadata: Option<MessageMetadata>,
}

#[derive(Deserialize)]
struct Author {
    role: String,
    /// The tool's name on a tool's node (`python`, `web.run`, …); any other
    /// value is passed over rather than refusing the conversation.
    name: Option<Value>,
}

#[derive(Deserialize)]
struct MessageMetadata {
    model_slug: Option<String>,
    /// `true` on nodes ChatGPT does not show (context, empty system nodes,
    /// search spinners).
    is_visually_hidden_from_conversation: Option<Value>,
    /// The files and images uploaded with a message.
    attachments: Option<Value>,
    /// A code run's result: its `status` and the images it made.
    aggregate_result: Option<Value>,
}

impl Message {
    fn metadata(&self) -> Option<&MessageMetadata> {
        self.metadata.as_ref()
    }

    fn is_hidden(&self) -> bool {
        self.metadata()
            .and_then(|m| m.is_visually_hidden_from_conversation.as_ref())
            .and_then(Value::as_bool)
            .unwrap_or(false)
    }

    /// The tool the node is addressed to, when it is not the conversation.
    fn tool_recipient(&self) -> Option<&str> {
        self.recipient.as_deref().filter(|r| *r != "all")
    }

    fn content_type(&self) -> &str {
        self.content.as_ref().map_or("", parts::content_type)
    }

    fn tool_name(&self) -> Option<&str> {
        self.author.name.as_ref().and_then(Value::as_str)
    }

    /// The node's text and attachments: its content's, the uploads of its
    /// metadata and the images of a code run.
    fn read(&self) -> parts::Read {
        let mut read = self.content.as_ref().map(parts::read).unwrap_or_default();
        if let Some(metadata) = self.metadata() {
            if let Some(uploads) = &metadata.attachments {
                parts::add_uploads(&mut read.attachments, uploads);
            }
            if let Some(result) = &metadata.aggregate_result {
                parts::add_run_images(&mut read.attachments, result);
            }
        }
        read
    }
}

/// Reads the conversations of `reader` (at the opening `[`) one at a
/// time, each given to `each` as a session of `owner`: the array is never
/// held whole, one conversation at a time is, and none larger than
/// [`MAX_UNIT_BYTES`](super::file::MAX_UNIT_BYTES).
///
/// With `to_the_end`, a conversation that fails (or that `each` refuses)
/// does not stop the reading: the first such fault is reported unless the
/// JSON of the file turns out broken further on, which is reported
/// rather (a file that is not JSON is a 400 whatever else is wrong with
/// it, as when the array was parsed whole before).
pub(super) fn read(
    reader: impl std::io::Read,
    meter: &Meter,
    owner: &Owner,
    to_the_end: bool,
    each: &mut dyn FnMut(Unit) -> Result<(), ImportError>,
) -> Result<(), ImportError> {
    let mut deserializer = serde_json::Deserializer::from_reader(reader);
    let index = Cell::new(0);
    let mut failed = None;
    let visitor = Conversations {
        owner,
        meter,
        to_the_end,
        each,
        index: &index,
        failed: &mut failed,
    };
    let read = (&mut deserializer)
        .deserialize_seq(visitor)
        .and_then(|()| deserializer.end());
    match (read, failed) {
        (Err(e), _) if matches!(e.classify(), Category::Syntax | Category::Eof) => {
            Err(classify(e, index.get()))
        }
        (_, Some(failed)) => Err(failed),
        (Ok(()), None) => Ok(()),
        (Err(e), None) => Err(classify(e, index.get())),
    }
}

/// A fault of the JSON of the file, where it is: a syntax error by line
/// and column of the file, anything else by conversation.
fn classify(e: serde_json::Error, index: usize) -> ImportError {
    let place = Place::Conversation(index);
    match e.classify() {
        Category::Data => ImportError::invalid(place, without_position(&e)),
        Category::Syntax | Category::Eof => ImportError::Malformed(format!(
            "line {}, column {}: not valid JSON: {}",
            e.line(),
            e.column(),
            without_position(&e)
        )),
        Category::Io => {
            let e = std::io::Error::from(e);
            if UnitTooLarge::is(&e) {
                ImportError::invalid(
                    place,
                    format_args!(
                        "larger than {} bytes, the most one conversation may be",
                        super::file::MAX_UNIT_BYTES
                    ),
                )
            } else {
                read_failed(e)
            }
        }
    }
}

/// The array's visitor: each element parsed as a [`Conversation`], made a
/// unit and handed on before the next is read.
struct Conversations<'a, 'f> {
    owner: &'a Owner,
    meter: &'a Meter,
    /// Go on after a fault (see [`read`]).
    to_the_end: bool,
    each: &'a mut dyn FnMut(Unit) -> Result<(), ImportError>,
    index: &'a Cell<usize>,
    /// A unit that failed (or that `each` refused): the error to report,
    /// rather than the one serde stops with.
    failed: &'f mut Option<ImportError>,
}

impl<'de> Visitor<'de> for Conversations<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("an array of conversation objects")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        loop {
            self.meter.start();
            let Some(conversation) = seq.next_element::<Conversation>()? else {
                return Ok(());
            };
            let index = self.index.get();
            let handed = unit(index, conversation, self.owner).and_then(|unit| (self.each)(unit));
            if let Err(e) = handed {
                self.failed.get_or_insert(e);
                if !self.to_the_end {
                    return Err(serde::de::Error::custom("stopped"));
                }
            }
            self.index.set(index + 1);
        }
    }
}

/// Conversation `index` as a session of `owner`.
pub(super) fn unit(
    index: usize,
    conversation: Conversation,
    owner: &Owner,
) -> Result<Unit, ImportError> {
    let place = Place::Conversation(index);
    let bad = |what: String| ImportError::invalid(place, what);
    let conversation_id = conversation
        .conversation_id
        .as_deref()
        .or(conversation.id.as_deref())
        .filter(|id| !id.is_empty())
        .ok_or_else(|| bad("has no id".into()))?;
    let branch = current_branch(&conversation).map_err(bad)?;
    let time = |field: &str, t: Option<f64>| {
        t.map(|t| epoch(t).ok_or_else(|| bad(format!("{field} {t} is not a time"))))
            .transpose()
    };
    let first_message_time = branch
        .iter()
        .find_map(|(_, m)| m.create_time)
        .map(|t| time("create_time", Some(t)))
        .transpose()?
        .flatten();
    let created_at = time("create_time", conversation.create_time)?
        .or(first_message_time)
        .or(time("update_time", conversation.update_time)?)
        .ok_or_else(|| bad("has no create_time".into()))?;
    let updated_at = time("update_time", conversation.update_time)?
        .unwrap_or(created_at)
        .max(created_at);
    let user = owner.user_id().cloned();
    let mut messages: Vec<ChatMessage> = Vec::new();
    for mapped in map_branch(branch) {
        let Mapped {
            node_id,
            message,
            message_type,
            content,
            tools,
            metadata: own,
        } = mapped;
        // Times in branch order, each after the one before (a missing one
        // takes the previous), so any order by time is the branch order.
        let previous = messages.last().map(|m| m.created_at);
        let own_time = time("create_time", message.create_time)?;
        let created_at = match (own_time, previous) {
            (Some(t), Some(p)) => t.max(next_micro(p)),
            (Some(t), None) => t,
            (None, Some(p)) => next_micro(p),
            (None, None) => created_at,
        };
        let mut metadata = JsonObject::new();
        metadata.insert("imported_from".into(), json!(SOURCE));
        metadata.insert("chatgpt_node_id".into(), json!(node_id));
        if let Some(slug) = message.metadata().and_then(|m| m.model_slug.as_ref()) {
            metadata.insert("model_slug".into(), json!(slug));
        }
        metadata.extend(own);
        messages.push(ChatMessage {
            id: message_id(node_id),
            content,
            message_type,
            user_id: user.clone(),
            metadata,
            created_at,
            tool_calls: tools.tool_calls,
            tool_call_id: tools.tool_call_id,
            name: tools.name,
        });
    }
    let mut context = JsonObject::new();
    context.insert("imported_from".into(), json!(SOURCE));
    context.insert("chatgpt_conversation_id".into(), json!(conversation_id));
    Ok(Unit {
        place,
        fields: SessionFields {
            session_name: conversation.title.as_deref().and_then(session_name),
            context,
            is_active: !conversation.is_archived.unwrap_or(false),
            // ChatGPT does not say when; retention then counts from
            // `updated_at`, as for sessions archived before the field.
            archived_at: None,
            created_at,
            updated_at,
        },
        import: SessionImport {
            id: session_id(owner, conversation_id),
            user_id: user,
            messages,
        },
    })
}

/// The nodes from the root to `current_node` that carry a message, with
/// their ids.
fn current_branch(conversation: &Conversation) -> Result<Vec<(&str, &Message)>, String> {
    let mapping = &conversation.mapping;
    let Some(mut at) = conversation.current_node.as_deref() else {
        return if mapping.is_empty() {
            Ok(Vec::new())
        } else {
            Err("has no current_node".into())
        };
    };
    let mut branch = Vec::new();
    loop {
        let (id, node) = mapping
            .get_key_value(at)
            .ok_or_else(|| format!("node {at} is not in mapping"))?;
        if branch.len() >= mapping.len() {
            return Err(format!("the parents of node {at} form a cycle"));
        }
        branch.push((id.as_str(), node));
        match node.parent.as_deref() {
            Some(parent) => at = parent,
            None => break,
        }
    }
    Ok(branch
        .into_iter()
        .rev()
        .filter_map(|(id, node)| node.message.as_ref().map(|m| (id, m)))
        .collect())
}

/// What one node of the branch becomes, before its time is set.
struct Mapped<'a> {
    node_id: &'a str,
    message: &'a Message,
    message_type: MessageType,
    content: String,
    tools: ToolParts,
    /// Metadata beyond what every imported message has.
    metadata: JsonObject,
}

/// The messages of the branch's nodes, in order (see the module
/// documentation): each call to a tool is answered by the first tool node
/// kept after it, when one comes before any other message.
fn map_branch<'a>(branch: Vec<(&'a str, &'a Message)>) -> Vec<Mapped<'a>> {
    let mut mapped: Vec<Mapped<'a>> = Vec::new();
    // The call the last message kept makes, while no tool node answered it:
    // its id and function name.
    let mut open: Option<(String, String)> = None;
    for (node_id, message) in branch {
        if message.is_hidden() {
            continue;
        }
        let role = message.author.role.as_str();
        let recipient = message.tool_recipient();
        let made = match (role, recipient) {
            ("assistant", Some(recipient)) => Some(call(message, node_id, recipient)),
            ("tool", _) => match open.take() {
                Some((call_id, name)) => Some(answer(message, call_id, name)),
                None => unanswering(message),
            },
            ("user", None) => said(message, MessageType::User),
            ("assistant", None) => said(message, MessageType::Assistant),
            ("system", None) => said(message, MessageType::System),
            _ => None,
        };
        let Some((message_type, content, tools, metadata)) = made else {
            continue;
        };
        open = tools.tool_calls.as_ref().and_then(|calls| {
            calls
                .first()
                .map(|call| (call.id.clone(), call.function.name.clone()))
        });
        mapped.push(Mapped {
            node_id,
            message,
            message_type,
            content,
            tools,
            metadata,
        });
    }
    mapped
}

/// A message's type, content, tool parts and own metadata.
type Made = (MessageType, String, ToolParts, JsonObject);

/// Text of the user, the assistant or the system: `None` for content this
/// import leaves out (reasoning, context) and for a blank node.
fn said(message: &Message, message_type: MessageType) -> Option<Made> {
    if !matches!(message.content_type(), "text" | "multimodal_text" | "code") {
        return None;
    }
    let (content, metadata) = text_and_metadata(message)?;
    Some((message_type, content, ToolParts::default(), metadata))
}

/// An assistant node addressed to `recipient`: a message making one call.
fn call(message: &Message, node_id: &str, recipient: &str) -> Made {
    let text = message
        .content
        .as_ref()
        .map(parts::read)
        .unwrap_or_default()
        .text;
    let call = ToolCall {
        id: call_id(node_id),
        call_type: ToolCallType::Function,
        function: FunctionCall {
            name: function_name(recipient),
            arguments: arguments(message.content_type(), &text),
        },
    };
    let mut metadata = JsonObject::new();
    // The name as ChatGPT wrote it, which the function's name may not be.
    metadata.insert("chatgpt_recipient".into(), json!(recipient));
    let tools = ToolParts {
        tool_calls: Some(vec![call]),
        ..ToolParts::default()
    };
    (MessageType::Assistant, String::new(), tools, metadata)
}

/// A tool node answering the call `call_id` to function `name`.
fn answer(message: &Message, call_id: String, name: String) -> Made {
    let (content, mut metadata) =
        text_and_metadata(message).unwrap_or_else(|| ("[empty]".into(), JsonObject::new()));
    tool_metadata(message, &mut metadata);
    let tools = ToolParts {
        tool_call_id: Some(call_id),
        name: Some(name),
        ..ToolParts::default()
    };
    (MessageType::Tool, content, tools, metadata)
}

/// A tool node answering no call: a system message, unless it is blank.
fn unanswering(message: &Message) -> Option<Made> {
    let (content, mut metadata) = text_and_metadata(message)?;
    metadata.insert("chatgpt_author_role".into(), json!("tool"));
    tool_metadata(message, &mut metadata);
    Some((MessageType::System, content, ToolParts::default(), metadata))
}

/// The node's text, else a placeholder for its attachments, else (for a
/// tool's node of an unknown content type) its content as JSON; with the
/// metadata saying what it was: `None` when there is nothing to show.
fn text_and_metadata(message: &Message) -> Option<(String, JsonObject)> {
    let read = message.read();
    let mut metadata = JsonObject::new();
    let content_type = message.content_type();
    if !matches!(content_type, "" | "text" | "multimodal_text") {
        metadata.insert("chatgpt_content_type".into(), json!(content_type));
    }
    let content = if !read.text.trim().is_empty() {
        read.text
    } else if !read.attachments.is_empty() {
        parts::placeholder(&read.attachments)
    } else if message.author.role == "tool" {
        message.content.as_ref().and_then(parts::unknown_as_json)?
    } else {
        return None;
    };
    if !read.attachments.is_empty() {
        let attachments = read.attachments.into_iter().map(Value::Object).collect();
        metadata.insert("attachments".into(), Value::Array(attachments));
    }
    Some((content, metadata))
}

/// What a tool's node says of itself beyond its text: the tool's name as
/// ChatGPT wrote it, a code run's status (`success`,
/// `failed_with_in_kernel_exception`, …) and the source of a quote or page.
fn tool_metadata(message: &Message, metadata: &mut JsonObject) {
    if let Some(name) = message.tool_name() {
        metadata.insert("chatgpt_tool_name".into(), json!(name));
    }
    let status = message
        .metadata()
        .and_then(|m| m.aggregate_result.as_ref())
        .and_then(|r| r.get("status"))
        .and_then(Value::as_str);
    if let Some(status) = status {
        metadata.insert("chatgpt_execution_status".into(), json!(status));
    }
    let url = message
        .content
        .as_ref()
        .and_then(|c| c.get("url"))
        .and_then(Value::as_str);
    if let Some(url) = url {
        metadata.insert("chatgpt_url".into(), json!(url));
    }
}

/// A call's arguments, a JSON text: the node's text when it is a JSON
/// object (as `web.run`'s and image generation's are), else the text under
/// `code` (for code, `python`'s) or `text`; `{}` for none.
fn arguments(content_type: &str, text: &str) -> String {
    if serde_json::from_str::<JsonObject>(text).is_ok() {
        return text.to_owned();
    }
    if text.trim().is_empty() {
        return "{}".into();
    }
    let key = if content_type == "code" {
        "code"
    } else {
        "text"
    };
    json!({ key: text }).to_string()
}

/// A recipient as a function name: 1 to 64 of `[A-Za-z0-9_-]`, any other
/// character an `_` (`dalle.text2im` → `dalle_text2im`).
fn function_name(recipient: &str) -> String {
    let name: String = recipient
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .take(64)
        .collect();
    if name.is_empty() { "tool".into() } else { name }
}

/// The id of the call node `node_id` makes: `call_` and what its message's
/// id has after the prefix (the node id, or its digest), so as stable as
/// the message id and as safe.
fn call_id(node_id: &str) -> String {
    let message_id = message_id(node_id);
    format!("call_{}", &message_id.as_str()[PREFIX.len()..])
}

/// Epoch seconds (with fraction) as a timestamp.
fn epoch(seconds: f64) -> Option<Timestamp> {
    let micros = (seconds * 1e6).round();
    if !micros.is_finite() || micros.abs() > 1e17 {
        return None;
    }
    DateTime::from_timestamp_micros(micros as i64).map(Timestamp::from_datetime)
}

fn next_micro(t: Timestamp) -> Timestamp {
    Timestamp::from_datetime(t.as_datetime() + chrono::Duration::microseconds(1))
}

/// A title as a session name: control characters become spaces, and it is
/// cut to the longest name allowed.
fn session_name(title: &str) -> Option<String> {
    let name: String = title
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(MAX_SESSION_NAME_LEN)
        .collect();
    let name = name.trim();
    (!name.is_empty()).then(|| name.to_owned())
}

/// The first 32 hex digits of the SHA-256 of `text`.
fn digest(text: &str) -> String {
    sha256_hex(text, 32)
}

/// The session of `owner` for conversation `conversation_id`.
fn session_id(owner: &Owner, conversation_id: &str) -> SessionId {
    // User ids hold no control characters, so the newline separates.
    let user = owner.user_id().map_or("", |u| u.as_str());
    SessionId::parse(format!(
        "{PREFIX}{}",
        digest(&format!("{user}\n{conversation_id}"))
    ))
    .expect("a prefix and hex digits are a valid id")
}

/// The message of node `node_id`: the node id itself when it is a valid id
/// (ChatGPT's are UUIDs), else a digest of it.
fn message_id(node_id: &str) -> MessageId {
    MessageId::parse(format!("{PREFIX}{node_id}")).unwrap_or_else(|_| {
        MessageId::parse(format!("{PREFIX}{}", digest(node_id)))
            .expect("a prefix and hex digits are a valid id")
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::UserId;

    #[test]
    fn ids_are_stable_and_per_owner() {
        let alice = Owner::User(UserId::parse("alice").unwrap());
        let bob = Owner::User(UserId::parse("bob").unwrap());
        assert_eq!(session_id(&alice, "c1"), session_id(&alice, "c1"));
        assert_ne!(session_id(&alice, "c1"), session_id(&bob, "c1"));
        assert_ne!(session_id(&alice, "c1"), session_id(&alice, "c2"));
        assert_ne!(
            session_id(&alice, "c1"),
            session_id(&Owner::Anonymous, "c1")
        );
        assert_eq!(
            message_id("6f2e0c1a-2b7d-4c8e-9f10-3a4b5c6d7e8f").as_str(),
            "chatgpt_6f2e0c1a-2b7d-4c8e-9f10-3a4b5c6d7e8f"
        );
        let odd = message_id("node with spaces/and slashes");
        assert!(odd.as_str().starts_with(PREFIX) && odd.as_str().len() == PREFIX.len() + 32);
    }

    #[test]
    fn epoch_seconds_keep_microseconds() {
        assert_eq!(
            epoch(1_700_000_000.123_456).unwrap().to_string(),
            "2023-11-14T22:13:20.123456Z"
        );
        assert_eq!(epoch(f64::MAX), None);
    }

    /// The messages `nodes` (id and message JSON, in branch order) become,
    /// as JSON the way the API shows them, without the metadata every
    /// message has.
    fn mapped(nodes: &[(&str, Value)]) -> Vec<Value> {
        let messages: Vec<(&str, Message)> = nodes
            .iter()
            .map(|(id, m)| (*id, serde_json::from_value(m.clone()).unwrap()))
            .collect();
        let branch = messages.iter().map(|(id, m)| (*id, m)).collect();
        map_branch(branch)
            .into_iter()
            .map(|m| {
                let mut value = json!({
                    "node": m.node_id,
                    "message_type": m.message_type.as_str(),
                    "content": m.content,
                    "metadata": m.metadata,
                });
                let tools = serde_json::to_value(&m.tools).unwrap();
                value
                    .as_object_mut()
                    .unwrap()
                    .extend(tools.as_object().unwrap().clone());
                value
            })
            .collect()
    }

    fn node(role: &str, recipient: &str, content: Value) -> Value {
        json!({ "author": { "role": role }, "recipient": recipient, "content": content })
    }

    fn text(parts: &[&str]) -> Value {
        json!({ "content_type": "text", "parts": parts })
    }

    #[test]
    fn text_for_the_conversation_becomes_a_message_of_its_author() {
        let hidden = json!({ "author": { "role": "system" }, "recipient": "all",
            "content": text(&["You are ChatGPT"]),
            "metadata": { "is_visually_hidden_from_conversation": true } });
        let nodes = [
            ("h", hidden),
            ("s", node("system", "all", text(&["Be brief."]))),
            ("u", node("user", "all", text(&["a", "b"]))),
            (
                "x",
                node(
                    "user",
                    "all",
                    json!({ "content_type": "user_editable_context",
                "user_profile": "p" }),
                ),
            ),
            (
                "t",
                node(
                    "assistant",
                    "all",
                    json!({ "content_type": "thoughts",
                "thoughts": [{ "summary": "s", "content": "c" }] }),
                ),
            ),
            (
                "r",
                node(
                    "assistant",
                    "all",
                    json!({ "content_type": "reasoning_recap",
                "content": "Thought for 2s" }),
                ),
            ),
            ("blank", node("assistant", "all", text(&[" ", ""]))),
            ("a", node("assistant", "all", text(&["c"]))),
            (
                "c",
                node(
                    "assistant",
                    "all",
                    json!({ "content_type": "code", "text": "x = 1" }),
                ),
            ),
        ];
        assert_eq!(
            mapped(&nodes),
            [
                json!({ "node": "s", "message_type": "system", "content": "Be brief.",
                        "metadata": {} }),
                json!({ "node": "u", "message_type": "user", "content": "a\nb",
                        "metadata": {} }),
                json!({ "node": "a", "message_type": "assistant", "content": "c",
                        "metadata": {} }),
                json!({ "node": "c", "message_type": "assistant", "content": "x = 1",
                        "metadata": { "chatgpt_content_type": "code" } }),
            ]
        );
    }

    #[test]
    fn a_call_and_the_tool_node_after_it_are_a_tool_exchange() {
        let run = json!({ "author": { "role": "tool", "name": "python" }, "recipient": "all",
            "content": { "content_type": "execution_output", "text": "" },
            "metadata": { "aggregate_result": { "status": "success", "messages": [
                { "message_type": "image", "image_url": "file-service://file-qq",
                  "width": 800, "height": 600 }] } } });
        let nodes = [
            ("u", node("user", "all", text(&["plot it"]))),
            (
                "call-1",
                node(
                    "assistant",
                    "python",
                    json!({ "content_type": "code",
                "language": "python", "text": "plt.plot(x)" }),
                ),
            ),
            // Reasoning between a call and its answer does not part them.
            (
                "t",
                node(
                    "assistant",
                    "all",
                    json!({ "content_type": "thoughts", "thoughts": [] }),
                ),
            ),
            ("run-1", run),
            ("a", node("assistant", "all", text(&["Here it is."]))),
        ];
        let messages = mapped(&nodes);
        assert_eq!(
            messages[1],
            json!({ "node": "call-1", "message_type": "assistant", "content": "",
                    "metadata": { "chatgpt_recipient": "python" },
                    "tool_calls": [{ "id": "call_call-1", "type": "function",
                        "function": { "name": "python",
                                      "arguments": r#"{"code":"plt.plot(x)"}"# } }] })
        );
        assert_eq!(
            messages[2],
            json!({ "node": "run-1", "message_type": "tool", "content": "[image]",
                    "tool_call_id": "call_call-1", "name": "python",
                    "metadata": { "chatgpt_content_type": "execution_output",
                        "chatgpt_tool_name": "python", "chatgpt_execution_status": "success",
                        "attachments": [{ "kind": "image", "asset_pointer": "file-service://file-qq",
                                          "width": 800, "height": 600 }] } })
        );
        assert_eq!(messages[3]["content"], "Here it is.");
        assert_eq!(messages.len(), 4);
    }

    #[test]
    fn tool_nodes_answering_no_call_are_system_text_or_left_out() {
        let tool = |name: &str, content: Value| {
            json!({ "author": { "role": "tool", "name": name }, "recipient": "all",
                    "content": content })
        };
        let image = json!({ "content_type": "multimodal_text", "parts": [{
            "content_type": "image_asset_pointer", "asset_pointer": "sediment://file_01",
            "size_bytes": 3094420, "width": 1024, "height": 1536 }] });
        let spinner = json!({ "content_type": "tether_browsing_display", "result": "",
                              "summary": "", "assets": null, "tether_id": null });
        let nodes = [
            // The search spinner after an upload answers nothing: left out.
            ("spin", tool("file_search", spinner)),
            (
                "fs",
                tool("file_search", text(&["The files are searchable."])),
            ),
            (
                "draw",
                node(
                    "assistant",
                    "dalle.text2im",
                    text(&[r#"{"prompt":"a fox"}"#]),
                ),
            ),
            ("img", tool("dalle.text2im", image)),
            (
                "note",
                tool("dalle.text2im", text(&["DALL·E displayed 1 images."])),
            ),
            (
                "web",
                node(
                    "assistant",
                    "web.run",
                    json!({ "content_type": "code",
                "language": "unknown", "text": r#"{"search_query":[{"q":"fox"}]}"# }),
                ),
            ),
            // web.run's answers carry no text in the export.
            ("res", tool("web.run", text(&[""]))),
            (
                "odd",
                tool(
                    "browser",
                    json!({ "content_type": "app_pairing_content", "x": 1 }),
                ),
            ),
        ];
        let messages = mapped(&nodes);
        let summary: Vec<_> = messages
            .iter()
            .map(|m| {
                (
                    m["node"].as_str().unwrap(),
                    m["message_type"].as_str().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            summary,
            [
                ("fs", "system"),
                ("draw", "assistant"),
                ("img", "tool"),
                ("note", "system"),
                ("web", "assistant"),
                ("res", "tool"),
                ("odd", "system"),
            ]
        );
        assert_eq!(
            messages[0]["metadata"],
            json!({ "chatgpt_author_role": "tool", "chatgpt_tool_name": "file_search" })
        );
        let draw = &messages[1]["tool_calls"][0];
        assert_eq!(draw["function"]["name"], "dalle_text2im");
        assert_eq!(draw["function"]["arguments"], r#"{"prompt":"a fox"}"#);
        assert_eq!(
            messages[1]["metadata"]["chatgpt_recipient"],
            "dalle.text2im"
        );
        assert_eq!(messages[2]["content"], "[image]");
        assert_eq!(messages[2]["tool_call_id"], "call_draw");
        assert_eq!(messages[2]["name"], "dalle_text2im");
        assert_eq!(messages[3]["content"], "DALL·E displayed 1 images.");
        assert_eq!(
            messages[4]["tool_calls"][0]["function"]["arguments"],
            r#"{"search_query":[{"q":"fox"}]}"#
        );
        assert_eq!(messages[5]["content"], "[empty]");
        assert_eq!(messages[5]["name"], "web_run");
        assert_eq!(
            messages[6]["content"],
            r#"{"content_type":"app_pairing_content","x":1}"#
        );
        assert_eq!(
            messages[6]["metadata"]["chatgpt_content_type"],
            "app_pairing_content"
        );
    }

    #[test]
    fn uploads_leave_their_name_and_kind() {
        let photo = json!({ "author": { "role": "user" }, "recipient": "all",
            "content": { "content_type": "multimodal_text", "parts": [{
                "content_type": "image_asset_pointer", "asset_pointer": "file-service://file-3k",
                "size_bytes": 201834, "width": 1024, "height": 768 }] },
            "metadata": { "attachments": [
                { "id": "file-3k", "name": "board.jpg", "mimeType": "image/jpeg", "size": 201834 },
                { "id": "file-9p", "name": "minutes.pdf", "mime_type": "application/pdf",
                  "size": 48213 }] } });
        let messages = mapped(&[("p", photo)]);
        assert_eq!(
            messages,
            [json!({ "node": "p", "message_type": "user",
                "content": "[image: board.jpg]\n[file: minutes.pdf]",
                "metadata": { "attachments": [
                    { "kind": "image", "name": "board.jpg", "mime_type": "image/jpeg",
                      "asset_pointer": "file-service://file-3k", "size_bytes": 201834,
                      "width": 1024, "height": 768 },
                    { "kind": "file", "name": "minutes.pdf", "mime_type": "application/pdf",
                      "size_bytes": 48213 }] } })]
        );
    }

    #[test]
    fn calls_get_valid_stable_names_ids_and_arguments() {
        assert_eq!(function_name("dalle.text2im"), "dalle_text2im");
        assert_eq!(function_name("t2uay3k.sj1i4kz"), "t2uay3k_sj1i4kz");
        assert_eq!(
            function_name("canmore.create_textdoc"),
            "canmore_create_textdoc"
        );
        assert_eq!(function_name(""), "tool");
        assert_eq!(function_name(&"é".repeat(100)), "_".repeat(64));
        assert_eq!(
            call_id("6f2e0c1a-2b7d-4c8e-9f10-3a4b5c6d7e8f"),
            "call_6f2e0c1a-2b7d-4c8e-9f10-3a4b5c6d7e8f"
        );
        assert_eq!(call_id("a b"), call_id("a b"));
        assert_eq!(call_id("a b").len(), "call_".len() + 32);
        assert_eq!(arguments("code", r#"{"q": 1}"#), r#"{"q": 1}"#);
        assert_eq!(
            arguments("code", "print('{}')"),
            r#"{"code":"print('{}')"}"#
        );
        assert_eq!(arguments("text", "[1, 2]"), r#"{"text":"[1, 2]"}"#);
        assert_eq!(arguments("code", "  "), "{}");
        // Whatever the node, the call is one the domain accepts.
        let parts = ToolParts {
            tool_calls: Some(vec![ToolCall {
                id: call_id(&"x".repeat(500)),
                call_type: ToolCallType::Function,
                function: FunctionCall {
                    name: function_name(&"n.".repeat(100)),
                    arguments: arguments("code", "1"),
                },
            }]),
            ..ToolParts::default()
        };
        assert!(parts.check(MessageType::Assistant).is_ok());
    }

    #[test]
    fn titles_become_valid_names() {
        assert_eq!(
            session_name("  Trip\nplans  ").as_deref(),
            Some("Trip plans")
        );
        assert_eq!(session_name(" \t "), None);
        let long = "é".repeat(300);
        assert_eq!(
            session_name(&long).unwrap().chars().count(),
            MAX_SESSION_NAME_LEN
        );
    }
}

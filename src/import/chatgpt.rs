//! ChatGPT's data export (`conversations.json`): a JSON array of
//! conversations, each a tree of nodes (`mapping`) in which an edited
//! message or a regenerated answer starts a new branch. A conversation
//! becomes a session named by its title, holding every branch of the tree:
//! each message follows the message its parent node became (or, for a
//! parent left out, its nearest ancestor kept), and the branch the user
//! last saw, from the root down to `current_node`, is the current one.
//!
//! What the nodes become (the table in docs/api.md says the same for users
//! of the API):
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
//! - The first `tool` node after that call on its branch (nodes left out do
//!   not count) answers it: a tool message naming the call and the function, with the
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

mod mapping;
mod parts;
mod tree;

use mapping::{Mapped, map_tree};

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
    /// Its children's ids, oldest first (read leniently: only the order of
    /// siblings is taken from it; `parent` links the tree).
    children: Option<Value>,
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
    let walk = tree::walk(&conversation).map_err(bad)?;
    let time = |field: &str, t: Option<f64>| {
        t.map(|t| epoch(t).ok_or_else(|| bad(format!("{field} {t} is not a time"))))
            .transpose()
    };
    let first_message_time = walk
        .steps
        .iter()
        .filter_map(|step| step.message.and_then(|m| m.create_time))
        .min_by(f64::total_cmp)
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
    let (mapped, follows) = map_tree(&walk.steps);
    let mut messages: Vec<ChatMessage> = Vec::with_capacity(mapped.len());
    for mapped in mapped {
        let Mapped {
            node_id,
            parent,
            message,
            message_type,
            content,
            tools,
            metadata: own,
        } = mapped;
        // Each message after the one it follows (a missing time takes that
        // one's), so that any order by time puts a parent before its
        // children and a branch in its order.
        let previous = parent.map(|p| messages[p].created_at);
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
            parent_id: parent.map(|p| messages[p].id.clone()),
            edited_at: None,
            siblings: None,
        });
    }
    // The message `current_node` is, or follows when it was left out.
    let current_message_id = walk
        .current
        .and_then(|step| follows[step])
        .map(|m| messages[m].id.clone());
    // Creation order: by time (a child comes after its parent), the walk's
    // order between messages of one instant.
    messages.sort_by_key(|m| m.created_at);
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
            current_message_id,
        },
        import: SessionImport {
            id: session_id(owner, conversation_id),
            user_id: user,
            messages,
        },
    })
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
mod tests;

//! ChatGPT's data export (`conversations.json`): a JSON array of
//! conversations, each a tree of nodes (`mapping`) in which an edited
//! message starts a new branch. A conversation becomes a session named by
//! its title, holding the branch the user last saw: from `current_node` up
//! through `parent` to the root, then in order. Only nodes whose author is
//! `user`, `assistant` or `system` and whose content is text (`parts`
//! joined) become messages; nodes without a message, tool calls and
//! results, hidden context and other content types are left out.
//!
//! Ids are derived, so importing the same file again finds what it brought
//! the first time: a session's from its owner and the conversation id (two
//! users importing the same file get separate sessions), a message's from
//! its node id.

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
    ChatMessage, JsonObject, MAX_SESSION_NAME_LEN, MessageId, MessageType, SessionId, Timestamp,
};
use crate::store::{Owner, SessionFields, SessionImport};

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
    content: Option<Content>,
    /// `all` for the conversation; a tool's name for a call to it.
    recipient: Option<String>,
    metadata: Option<MessageMetadata>,
}

#[derive(Deserialize)]
struct Author {
    role: String,
}

#[derive(Deserialize)]
struct Content {
    content_type: String,
    parts: Option<Vec<Value>>,
}

#[derive(Deserialize)]
struct MessageMetadata {
    model_slug: Option<String>,
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
    for (node_id, message) in branch {
        let Some((message_type, content)) = text_of(message) else {
            continue;
        };
        // Times in branch order, each after the one before (a missing one
        // takes the previous), so any order by time is the branch order.
        let previous = messages.last().map(|m| m.created_at);
        let own = time("create_time", message.create_time)?;
        let created_at = match (own, previous) {
            (Some(t), Some(p)) => t.max(next_micro(p)),
            (Some(t), None) => t,
            (None, Some(p)) => next_micro(p),
            (None, None) => created_at,
        };
        let mut metadata = JsonObject::new();
        metadata.insert("imported_from".into(), json!(SOURCE));
        metadata.insert("chatgpt_node_id".into(), json!(node_id));
        if let Some(slug) = message
            .metadata
            .as_ref()
            .and_then(|m| m.model_slug.as_ref())
        {
            metadata.insert("model_slug".into(), json!(slug));
        }
        messages.push(ChatMessage {
            id: message_id(node_id),
            content,
            message_type,
            user_id: user.clone(),
            metadata,
            created_at,
            tool_calls: None,
            tool_call_id: None,
            name: None,
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

/// The message's type and text, when it is a text message of the user, the
/// assistant or the system addressed to the conversation (not to a tool).
fn text_of(message: &Message) -> Option<(MessageType, String)> {
    let message_type = match message.author.role.as_str() {
        "user" => MessageType::User,
        "assistant" => MessageType::Assistant,
        "system" => MessageType::System,
        _ => return None,
    };
    if message.recipient.as_deref().is_some_and(|r| r != "all") {
        return None;
    }
    let content = message.content.as_ref()?;
    if !matches!(content.content_type.as_str(), "text" | "multimodal_text") {
        return None;
    }
    // Images and files in multimodal parts are objects: only text is kept.
    let text = content
        .parts
        .as_deref()?
        .iter()
        .filter_map(Value::as_str)
        .collect::<Vec<_>>()
        .join("\n");
    (!text.trim().is_empty()).then_some((message_type, text))
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

    #[test]
    fn only_text_for_the_conversation_becomes_a_message() {
        let message = |role: &str, recipient: Option<&str>, content: Value| Message {
            author: Author { role: role.into() },
            create_time: None,
            content: serde_json::from_value(content).ok(),
            recipient: recipient.map(Into::into),
            metadata: None,
        };
        let text = json!({ "content_type": "text", "parts": ["a", "b"] });
        assert_eq!(
            text_of(&message("assistant", Some("all"), text.clone())),
            Some((MessageType::Assistant, "a\nb".into()))
        );
        assert_eq!(
            text_of(&message("system", None, text.clone())).map(|t| t.0),
            Some(MessageType::System)
        );
        // A call to a tool, a tool's answer, another content type, blank.
        assert_eq!(
            text_of(&message("assistant", Some("dalle.text2im"), text.clone())),
            None
        );
        assert_eq!(text_of(&message("tool", Some("all"), text)), None);
        let code = json!({ "content_type": "code", "text": "print(1)" });
        assert_eq!(text_of(&message("assistant", Some("all"), code)), None);
        let blank = json!({ "content_type": "text", "parts": [" ", ""] });
        assert_eq!(text_of(&message("user", Some("all"), blank)), None);
        let photo = json!({ "content_type": "multimodal_text",
            "parts": [{ "content_type": "image_asset_pointer" }, "what is this?"] });
        assert_eq!(
            text_of(&message("user", Some("all"), photo)),
            Some((MessageType::User, "what is this?".into()))
        );
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

//! What the sessions container holds: session documents, the sealed pages of
//! long sessions, the alternative branches of conversations that branched,
//! and migration checkpoints, told apart by `doc_type`; how their ids and
//! partitions are made.

use azure_data_cosmos::{PartitionKey, models::ItemResponse};
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use serde_json::Value;

use super::filter::Filter;
use crate::{
    domain::{ChatMessage, ChatSession, MessageId, SessionId, Timestamp, UserId},
    store::{StoreError, StoreResult},
};

/// `doc_type` of session documents.
pub const SESSION_DOC_TYPE: &str = "session";

/// A session as stored: the seed's document plus the discriminator and,
/// once the session outgrew one document, the sizes of its sealed pages.
/// `messages` then holds the newest messages only; `message_count` and
/// `last_message_at` always describe the whole current branch. A session
/// whose conversation branched also keeps, in a few small fields, what
/// reading and appending to the current branch need to know of the other
/// branches (which live in [`BranchDoc`]s): the children of the current
/// branch's messages that have alternatives (`forks`), a filter of the
/// alternative messages' ids (`alternatives`), and the version of the
/// pages' and alternatives' layout (`layout`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct SessionDoc {
    #[serde(flatten)]
    pub(super) session: ChatSession,
    pub(super) doc_type: String,
    /// Messages in sealed page 0, 1, …: the oldest ones, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(super) sealed_page_sizes: Vec<u32>,
    /// A copy of the session's leading system messages once page 0 holds
    /// them (possibly none), so that a context read of a long session needs
    /// no read of page 0. Absent: not known here (written before this
    /// field, imported, or page 0 is all system messages); read page 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) system_prefix: Option<Vec<ChatMessage>>,
    /// Every message of the current branch (`parent: null`: the first
    /// messages) that has a child off the branch, with all its children,
    /// oldest first: what marking `siblings` on the branch needs, with no
    /// other read.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(super) forks: Vec<Fork>,
    /// The ids of the messages off the current branch, as a filter: an
    /// append whose id it may hold looks among them (a retry must not store
    /// a message twice). Absent: every message is on the current branch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) alternatives: Option<Filter>,
    /// Raised by every write that rewrites or deletes sealed pages or
    /// alternatives; each of those documents records the value it was
    /// written under, so a read that meets a newer one knows that the
    /// session changed after its read of this document.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub(super) layout: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// Bytes of branch bookkeeping (`forks` and `alternatives`) a session
/// document carries beyond the seal policy's threshold: 50 typical messages
/// stay one document with a hundred alternatives listed, and an append
/// patches at most this much more.
pub(super) const BOOKKEEPING_ALLOWANCE: usize = 8 * 1024;

/// A message of the current branch with children off it: all of them,
/// oldest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Fork {
    /// The message; `null` for the session's first messages.
    pub(super) parent: Option<MessageId>,
    /// Its children, oldest first.
    pub(super) children: Vec<MessageId>,
}

/// A session's count of every message of every branch, from its document's
/// two counters: documents from before trees have no `total_message_count`
/// (0), and their current branch is all they hold.
pub(super) fn every_message(message_count: u64, total_message_count: u64) -> u64 {
    total_message_count.max(message_count)
}

impl SessionDoc {
    /// The document of a new session.
    pub(super) fn new(session: ChatSession) -> Self {
        Self {
            session,
            doc_type: SESSION_DOC_TYPE.into(),
            sealed_page_sizes: Vec::new(),
            system_prefix: None,
            forks: Vec::new(),
            alternatives: None,
            layout: 0,
        }
    }

    /// Messages in sealed pages, i.e. the position of the document's first.
    pub(super) fn sealed(&self) -> u64 {
        self.sealed_page_sizes.iter().map(|&n| u64::from(n)).sum()
    }

    /// The position of the first message of sealed page `page`.
    pub(super) fn page_start(&self, page: u32) -> u64 {
        self.sealed_page_sizes[..page as usize]
            .iter()
            .map(|&n| u64::from(n))
            .sum()
    }

    /// The sealed page holding position `at`; `None` when `at` is past the
    /// sealed pages.
    pub(super) fn page_of(&self, at: u64) -> Option<u32> {
        let mut end = 0u64;
        self.sealed_page_sizes
            .iter()
            .position(|&size| {
                end += u64::from(size);
                at < end
            })
            .map(|page| page as u32)
    }

    /// Fills in what documents written before a field existed lack:
    /// `total_message_count` counts at least the current branch.
    pub(super) fn normalized(mut self) -> Self {
        let session = &mut self.session;
        session.total_message_count =
            every_message(session.message_count, session.total_message_count);
        self
    }

    /// The part of [`json_len`] of this document that the seal policy does
    /// not count: its branch bookkeeping, up to [`BOOKKEEPING_ALLOWANCE`].
    pub(super) fn allowance(&self) -> usize {
        let forks = if self.forks.is_empty() {
            0
        } else {
            json_len(&self.forks)
        };
        let filter = self.alternatives.as_ref().map_or(0, json_len);
        (forks + filter).min(BOOKKEEPING_ALLOWANCE)
    }

    /// Messages off the current branch.
    pub(super) fn alternative_count(&self) -> u64 {
        self.session.total_message_count - self.session.message_count
    }

    /// The children of `parent` when it has any off the current branch.
    pub(super) fn fork_of(&self, parent: Option<&MessageId>) -> Option<&Fork> {
        self.forks.iter().find(|f| f.parent.as_ref() == parent)
    }
}

/// `doc_type` of sealed message pages.
pub const PAGE_DOC_TYPE: &str = "session_page";

/// The oldest messages of a long session, moved out of its document. Never
/// changed after it is written; its id is derived from the session's id and
/// the page number ('~' is not allowed in session ids, so ids cannot clash),
/// so reading a page is a point read.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct PageDoc {
    pub(super) id: String,
    pub(super) user_id: Option<UserId>,
    pub(super) doc_type: String,
    pub(super) session_id: SessionId,
    pub(super) page: u32,
    pub(super) messages: Vec<ChatMessage>,
    /// Its newest message's `created_at`, so that a search reading a
    /// partition's documents newest first can stop early. Absent on pages
    /// written before search existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) updated_at: Option<Timestamp>,
    /// The session's `layout` when this page was written.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub(super) layout: u64,
}

impl PageDoc {
    /// Sealed page `page` of session `session_id`, holding `messages`.
    pub(super) fn sealed(
        session_id: &SessionId,
        user_id: Option<UserId>,
        page: u32,
        messages: Vec<ChatMessage>,
        layout: u64,
    ) -> Self {
        Self {
            id: page_id(session_id, page),
            user_id,
            doc_type: PAGE_DOC_TYPE.into(),
            session_id: session_id.clone(),
            page,
            updated_at: messages.iter().map(|m| m.created_at).max(),
            messages,
            layout,
        }
    }
}

pub(super) fn page_id(session: &SessionId, page: u32) -> String {
    format!("{session}~{page:06}")
}

/// `doc_type` of the documents that hold messages off the current branch.
pub const BRANCH_DOC_TYPE: &str = "session_branch";

/// Messages off a session's current branch (alternatives), any number of
/// them, each with its `parent_id` written out. Its id comes from its first
/// message's, which no other such document of the session holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(super) struct BranchDoc {
    pub(super) id: String,
    pub(super) user_id: Option<UserId>,
    pub(super) doc_type: String,
    pub(super) session_id: SessionId,
    pub(super) messages: Vec<ChatMessage>,
    /// Its newest message's `created_at`, which bounds its search hits.
    pub(super) updated_at: Option<Timestamp>,
    /// The session's `layout` when it was written.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub(super) layout: u64,
}

impl BranchDoc {
    /// The document holding `messages` (at least one) of session `session_id`.
    pub(super) fn new(
        session_id: &SessionId,
        user_id: Option<UserId>,
        messages: Vec<ChatMessage>,
        layout: u64,
    ) -> Self {
        Self {
            id: branch_id(session_id, &messages[0].id),
            user_id,
            doc_type: BRANCH_DOC_TYPE.into(),
            session_id: session_id.clone(),
            updated_at: messages.iter().map(|m| m.created_at).max(),
            messages,
            layout,
        }
    }
}

/// Longest id Cosmos DB accepts.
const MAX_ITEM_ID: usize = 255;

/// `"<session_id>~b~<message id>"`, or `"<session_id>~h~<hash>"` when a
/// long message id would pass Cosmos DB's 255 characters ('~' is in no
/// session or message id, so these ids clash with no session's or page's).
pub(super) fn branch_id(session: &SessionId, first: &MessageId) -> String {
    let id = format!("{session}~b~{first}");
    if id.len() <= MAX_ITEM_ID {
        return id;
    }
    let bytes = first.as_str().as_bytes();
    let (a, b) = (
        super::filter::fnv1a(bytes, 0),
        super::filter::fnv1a(bytes, 1),
    );
    format!("{session}~h~{a:016x}{b:016x}")
}

/// `doc_type` of migration checkpoints.
pub const CHECKPOINT_DOC_TYPE: &str = "migration_checkpoint";
/// The partition (`user_id` value) that holds migration checkpoints; session
/// queries filter on `doc_type`, so no user ever sees them.
pub(super) const CHECKPOINT_PARTITION: &str = "__chat_sessions_migration__";

pub(super) fn checkpoint_id(run_id: &str) -> String {
    format!("migration_checkpoint:{run_id}")
}

/// A migration run's state, kept beside the sessions.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct CheckpointDoc {
    pub(super) id: String,
    pub(super) user_id: String,
    pub(super) doc_type: String,
    pub(super) state: String,
}

/// The partition of `user`'s documents; sessions without an owner live in
/// the `null` partition.
pub(super) fn partition(user: Option<&UserId>) -> PartitionKey {
    match user {
        Some(user) => PartitionKey::from(user.as_str().to_owned()),
        None => PartitionKey::from(PartitionKey::NULL),
    }
}

/// About what Cosmos DB adds to every stored item (`_rid`, `_self`, `_etag`,
/// `_attachments`, `_ts`), for the size of an item written without reading
/// it back.
pub(super) const SYSTEM_PROPERTY_BYTES: usize = 200;

/// The size of `value` as stored, for the seal policy.
pub(super) fn json_len<T: Serialize>(value: &T) -> usize {
    serde_json::to_vec(value).map_or(usize::MAX, |v| v.len())
}

/// `value` as a patch operation's operand.
pub(super) fn json_of<T: Serialize>(value: &T) -> StoreResult<Value> {
    serde_json::to_value(value).map_err(|e| StoreError::Internal(e.into()))
}

/// What the append patch changes in a session document's length.
pub(super) struct AppendedTo {
    /// [`json_len`] of the document before.
    pub(super) len: usize,
    /// Messages in the document (not in pages).
    pub(super) messages: usize,
    pub(super) message_count: u64,
    pub(super) total_message_count: u64,
    /// Whether `last_message_at` was set.
    pub(super) had_message: bool,
}

/// The length ([`json_len`]) of session document `doc` after the append
/// patch adds a message of `message_len` bytes: the message (and its comma),
/// one more digit when `message_count` or `total_message_count` gains one,
/// and `last_message_at` no longer `null` (`updated_at` keeps its length).
pub(super) fn len_after_append(before: &AppendedTo, message_len: usize) -> usize {
    let digits = |n: u64| n.checked_ilog10().unwrap_or(0) as usize + 1;
    let grown = |n: u64| digits(n + 1) - digits(n);
    let last = if before.had_message {
        0
    } else {
        json_len(&crate::domain::Timestamp::now()) - "null".len()
    };
    before.len
        + message_len
        + usize::from(before.messages > 0)
        + grown(before.message_count)
        + grown(before.total_message_count)
        + last
}

/// The item of a point operation's answer, decoded; `size` learns how many
/// bytes of JSON it had, when `size` is given (measuring costs a detour
/// through a JSON value: the answer may be in Cosmos' binary encoding).
pub(super) fn decode<T: DeserializeOwned>(
    response: ItemResponse,
    size: Option<&dyn Fn(usize)>,
) -> anyhow::Result<T> {
    let Some(size) = size else {
        return Ok(response.into_model()?);
    };
    let value: Value = response.into_model()?;
    size(json_len(&value));
    Ok(serde_json::from_value(value)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{
        ChatMessage, JsonObject, MessageId, MessageType, NewSession, SessionId, Timestamp, UserId,
    };

    /// The length the append patch leaves is what serialising the patched
    /// document gives, through the digit and `null` boundaries.
    #[test]
    fn len_after_append_matches_the_patched_document() {
        let user = UserId::parse("u").unwrap();
        let new = NewSession::new(
            Some(SessionId::parse("s").unwrap()),
            Some(user.clone()),
            None,
            JsonObject::new(),
            Timestamp::now(),
        )
        .unwrap();
        let mut doc = SessionDoc::new(new.into_session(Timestamp::now()));
        // Alternatives besides: the total passes its digit boundaries at
        // other appends than the branch's count.
        doc.session.total_message_count = 95;
        for i in 0..120u64 {
            // Sealed messages leave the array but not the count.
            if i == 50 {
                doc.session.messages.clear();
                doc.sealed_page_sizes.push(50);
            }
            let message = ChatMessage {
                tool_calls: None,
                tool_call_id: None,
                name: None,
                id: MessageId::parse(format!("m{i}")).unwrap(),
                content: "x".repeat(i as usize),
                message_type: MessageType::User,
                user_id: Some(user.clone()),
                metadata: JsonObject::new(),
                created_at: Timestamp::now(),
                parent_id: None,
                edited_at: None,
                siblings: None,
            };
            let expected = len_after_append(
                &AppendedTo {
                    len: json_len(&doc),
                    messages: doc.session.messages.len(),
                    message_count: doc.session.message_count,
                    total_message_count: doc.session.total_message_count,
                    had_message: doc.session.last_message_at.is_some(),
                },
                json_len(&message),
            );
            doc.session.last_message_at = Some(message.created_at);
            doc.session.updated_at = message.created_at;
            doc.session.message_count += 1;
            doc.session.total_message_count += 1;
            doc.session.messages.push(message);
            assert_eq!(json_len(&doc), expected, "after message {i}");
        }
    }
}

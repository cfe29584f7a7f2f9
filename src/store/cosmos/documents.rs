//! What the sessions container holds: session documents, the sealed pages of
//! long sessions and migration checkpoints, told apart by `doc_type`, and how
//! their ids and partitions are made.

use azure_data_cosmos::PartitionKey;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{
    domain::{ChatMessage, ChatSession, SessionId, Timestamp, UserId},
    store::{StoreError, StoreResult},
};

/// `doc_type` of session documents.
pub const SESSION_DOC_TYPE: &str = "session";

/// A session as stored: the seed's document plus the discriminator and,
/// once the session outgrew one document, the sizes of its sealed pages.
/// `messages` then holds the newest messages only; `message_count` and
/// `last_message_at` always describe the whole session.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct SessionDoc {
    #[serde(flatten)]
    pub(super) session: ChatSession,
    pub(super) doc_type: String,
    /// Messages in sealed page 0, 1, …: the oldest ones, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(super) sealed_page_sizes: Vec<u32>,
}

impl SessionDoc {
    /// Messages in sealed pages, i.e. the position of the document's first.
    pub(super) fn sealed(&self) -> u64 {
        self.sealed_page_sizes.iter().map(|&n| u64::from(n)).sum()
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
}

impl PageDoc {
    /// Sealed page `page` of session `session_id`, holding `messages`.
    pub(super) fn sealed(
        session_id: &SessionId,
        user_id: Option<UserId>,
        page: u32,
        messages: Vec<ChatMessage>,
    ) -> Self {
        Self {
            id: page_id(session_id, page),
            user_id,
            doc_type: PAGE_DOC_TYPE.into(),
            session_id: session_id.clone(),
            page,
            updated_at: messages.iter().map(|m| m.created_at).max(),
            messages,
        }
    }
}

pub(super) fn page_id(session: &SessionId, page: u32) -> String {
    format!("{session}~{page:06}")
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

/// The size of `value` as stored, for the seal policy.
pub(super) fn json_len<T: Serialize>(value: &T) -> usize {
    serde_json::to_vec(value).map_or(usize::MAX, |v| v.len())
}

/// `value` as a patch operation's operand.
pub(super) fn json_of<T: Serialize>(value: &T) -> StoreResult<Value> {
    serde_json::to_value(value).map_err(|e| StoreError::Internal(e.into()))
}

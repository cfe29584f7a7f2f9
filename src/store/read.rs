//! Reading one session: whole, its newest messages, a page of them, or
//! streamed out a chunk at a time. Every read here reads the current branch
//! (see [`BranchStore`](super::BranchStore) for the others).

use std::fmt;

use async_trait::async_trait;

use super::{ETag, Owner, StoreError, StoreResult, Versioned};
use crate::domain::{ChatMessage, ChatSession, SessionId, SessionSummary};

/// Which messages of a session to read: up to `limit` of those before
/// position `before` (positions count from 0 at the oldest message; `None`:
/// from the newest), newest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MessageQuery {
    /// At most this many.
    pub limit: u32,
    /// Only messages at positions below this.
    pub before: Option<u64>,
}

/// A page of a session's messages, newest first.
#[derive(Debug, Clone, PartialEq)]
pub struct MessagePage {
    /// The messages, newest first.
    pub messages: Vec<ChatMessage>,
    /// The `before` of the next (older) page; `None` when this page reaches
    /// the oldest message.
    pub next_before: Option<u64>,
}

impl MessagePage {
    /// The page of `query` out of all of a session's messages (oldest first).
    pub fn slice(all: &[ChatMessage], query: MessageQuery) -> Self {
        let end = query
            .before
            .map_or(all.len(), |b| (b as usize).min(all.len()));
        let start = end.saturating_sub(query.limit as usize);
        Self {
            messages: all[start..end].iter().rev().cloned().collect(),
            next_before: (start > 0).then_some(start as u64),
        }
    }
}

/// Older messages of a session, a chunk at a time, oldest first.
pub type MessageChunks = futures::stream::BoxStream<'static, StoreResult<Vec<ChatMessage>>>;

/// A session as first read, for streaming it out: its own fields, the
/// newest messages that came with them, and, for a long session, the older
/// ones still to be read, chunk by chunk.
pub struct SessionRead {
    /// The session without messages.
    pub summary: SessionSummary,
    /// Its version.
    pub etag: ETag,
    /// The newest messages, oldest of them first.
    pub newest: Vec<ChatMessage>,
    /// The messages before `newest`, if any were left out.
    pub older: Option<MessageChunks>,
}

impl fmt::Debug for SessionRead {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionRead")
            .field("summary", &self.summary)
            .field("etag", &self.etag)
            .field("newest", &self.newest.len())
            .field("older", &self.older.is_some())
            .finish()
    }
}

/// Reads of one session's current branch.
#[async_trait]
pub trait ReadStore {
    /// The session with all its messages, oldest first; `Ok(None)` when its
    /// version is still `known`, so a cached copy can be revalidated without
    /// transferring the messages.
    async fn get_session_if_changed(
        &self,
        owner: &Owner,
        id: &SessionId,
        known: Option<&ETag>,
    ) -> StoreResult<Option<Versioned<ChatSession>>>;

    /// The session with all its messages, oldest first.
    async fn get_session(
        &self,
        owner: &Owner,
        id: &SessionId,
    ) -> StoreResult<Versioned<ChatSession>> {
        self.get_session_if_changed(owner, id, None)
            .await?
            .ok_or_else(|| {
                StoreError::Internal(anyhow::anyhow!("an unconditional read returned no session"))
            })
    }

    /// Like [`get_session_if_changed`](Self::get_session_if_changed), but a
    /// long session may come back with only its newest messages and the
    /// count of older ones, so that it can be streamed out page by page
    /// instead of being held in memory whole.
    async fn read_session(
        &self,
        owner: &Owner,
        id: &SessionId,
        known: Option<&ETag>,
    ) -> StoreResult<Option<SessionRead>>;

    /// The session with only its newest `limit` messages (oldest of them
    /// first); `message_count` and `last_message_at` still describe the
    /// whole session.
    async fn get_session_tail(
        &self,
        owner: &Owner,
        id: &SessionId,
        limit: u32,
    ) -> StoreResult<Versioned<ChatSession>>;

    /// A page of a session's messages, newest first.
    async fn list_messages(
        &self,
        owner: &Owner,
        id: &SessionId,
        query: MessageQuery,
    ) -> StoreResult<MessagePage>;
}

//! Appending a message: the hot path, one message at a time, retry-safe.

use async_trait::async_trait;

use super::{ETag, Owner, StoreError, StoreResult};
use crate::domain::{ChatMessage, NewMessage, SessionId};

/// The result of appending a message.
#[derive(Debug, Clone, PartialEq)]
pub struct Appended {
    /// The message as stored (for a retry: as stored the first time).
    pub message: ChatMessage,
    /// False when the message id was already in the session (a retry).
    pub created: bool,
    /// The session's version after the append.
    pub etag: ETag,
}

impl Appended {
    /// The answer to an append whose message id is already `stored` in the
    /// session: the stored message when the payload is the same (a retry),
    /// else a conflict — an id is never silently reused.
    pub fn replay(stored: ChatMessage, attempt: &NewMessage, etag: ETag) -> StoreResult<Self> {
        if !stored.same_payload(attempt) {
            return Err(StoreError::Conflict(format!(
                "message id {} is already used in this session by a different message",
                attempt.id
            )));
        }
        Ok(Self {
            message: stored,
            created: false,
            etag,
        })
    }
}

/// Appending messages.
#[async_trait]
pub trait AppendStore {
    /// Appends a message atomically. If a message with the same id is already
    /// in the session (on any branch), returns it unchanged
    /// (`created: false`) when the payload matches, and
    /// [`StoreError::Conflict`] when it does not. A message whose
    /// [`parent`](NewMessage::parent) names an earlier message (or
    /// [`Parent::Root`](crate::domain::Parent::Root) in a session with
    /// messages) starts a new branch there, which becomes the current one;
    /// a parent the session lacks is [`StoreError::Invalid`].
    async fn append_message(
        &self,
        owner: &Owner,
        id: &SessionId,
        message: NewMessage,
    ) -> StoreResult<Appended>;
}

//! Creating, changing and deleting whole sessions. Appending a message is
//! [`AppendStore`](super::AppendStore).

use async_trait::async_trait;

use super::{ETag, Owner, StoreResult, Versioned};
use crate::domain::{ChatSession, NewSession, SessionId, SessionPatch};

/// Writes of whole sessions.
#[async_trait]
pub trait WriteStore {
    /// Creates a session; [`StoreError::Conflict`](super::StoreError::Conflict)
    /// if the id is taken.
    async fn create_session(&self, new: NewSession) -> StoreResult<Versioned<ChatSession>>;

    /// Applies `patch`; with `if_match`, only if the version still matches.
    async fn update_session(
        &self,
        owner: &Owner,
        id: &SessionId,
        patch: &SessionPatch,
        if_match: Option<&ETag>,
    ) -> StoreResult<Versioned<ChatSession>>;

    /// Deletes the session and its messages; with `if_match`, only if the
    /// version still matches.
    async fn delete_session(
        &self,
        owner: &Owner,
        id: &SessionId,
        if_match: Option<&ETag>,
    ) -> StoreResult<()>;
}

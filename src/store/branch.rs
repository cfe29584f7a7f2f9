//! A conversation as a tree ([`crate::domain::Tree`]): the operations that
//! read another branch, make one current, list the whole tree, and edit or
//! delete one message. Appending under a chosen parent (a new branch) is
//! [`AppendStore::append_message`](super::AppendStore::append_message)
//! with [`NewMessage::parent`](crate::domain::NewMessage::parent).
//!
//! Every backend keeps the current branch where a session's messages have
//! always been, so every read that knows nothing of branches (the session,
//! its pager, the context read, the legacy endpoints) reads the current
//! branch at the cost it always had; the other messages are kept beside it.

use async_trait::async_trait;

use super::{ETag, Owner, StoreError, StoreResult, Versioned};
use crate::domain::{
    ChatMessage, ChatSession, DeleteScope, MessageEdit, MessageId, SessionId, ValidationError,
};

/// Which part of a session's tree to list: up to `limit` messages in
/// creation order, starting after the `after`-th.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TreeQuery {
    /// At most this many, 1–1000.
    pub limit: u32,
    /// How many messages earlier pages held (0 for the first page).
    pub after: u64,
}

/// A page of a session's tree: messages oldest first, each with its
/// `parent_id`.
#[derive(Debug, Clone, PartialEq)]
pub struct TreePage {
    /// The messages, in creation order.
    pub messages: Vec<ChatMessage>,
    /// The last message of the current branch (`None`: no messages).
    pub current_message_id: Option<MessageId>,
    /// The `after` of the next page; `None` on the last page.
    pub next_after: Option<u64>,
    /// The session's version.
    pub etag: ETag,
}

/// The tree operations; part of every [`SessionStore`](super::SessionStore).
/// A session the owner cannot see is
/// [`StoreError::NotFound`](super::StoreError::NotFound). A message id the
/// session does not hold is, where it names the message to work on (an
/// edit, a delete), [`StoreError::MessageNotFound`](super::StoreError::MessageNotFound);
/// where it names where to go (a branch read or switch),
/// [`StoreError::Invalid`](super::StoreError::Invalid) naming the field.
#[async_trait]
pub trait BranchStore {
    /// The session showing the branch through `message`: the path to it,
    /// continued along the most recently created children; the stored
    /// current branch is not changed. `message_count` and `last_message_at`
    /// describe the branch read.
    async fn read_branch(
        &self,
        owner: &Owner,
        id: &SessionId,
        message: &MessageId,
    ) -> StoreResult<Versioned<ChatSession>>;

    /// Makes the branch through `message` (as [`read_branch`](Self::read_branch)
    /// reads it) the current one, atomically; with `if_match`, only if the
    /// version still matches. Returns the session as it then reads.
    async fn switch_branch(
        &self,
        owner: &Owner,
        id: &SessionId,
        message: &MessageId,
        if_match: Option<&ETag>,
    ) -> StoreResult<Versioned<ChatSession>>;

    /// A page of every message of the session, in creation order.
    async fn list_tree(
        &self,
        owner: &Owner,
        id: &SessionId,
        query: TreeQuery,
    ) -> StoreResult<TreePage>;

    /// Changes one message's content and/or metadata in place and sets its
    /// `edited_at`; with `if_match`, only if the version still matches.
    async fn edit_message(
        &self,
        owner: &Owner,
        id: &SessionId,
        message: &MessageId,
        edit: &MessageEdit,
        if_match: Option<&ETag>,
    ) -> StoreResult<Versioned<ChatMessage>>;

    /// Deletes one message ([`DeleteScope::Message`]: its children follow
    /// its parent instead) or it with everything under it; deleting the
    /// current branch's last message makes its parent the end of the
    /// branch. With `if_match`, only if the version still matches. Returns
    /// the session's new version.
    async fn delete_message(
        &self,
        owner: &Owner,
        id: &SessionId,
        message: &MessageId,
        scope: DeleteScope,
        if_match: Option<&ETag>,
    ) -> StoreResult<ETag>;
}

/// "This session has no message `message`", as the 422 a request gets that
/// names it as `field` (a parent, the message to show or make current).
pub fn unknown_message(field: &'static str, message: &MessageId) -> StoreError {
    StoreError::Invalid(ValidationError::new(
        field,
        format!("this session has no message with id {message}"),
    ))
}

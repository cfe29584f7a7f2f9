//! The context read: what a model's context window gets, the leading
//! system messages and then the newest messages going back, read only as
//! far as the caller's budget needs.

use async_trait::async_trait;

use super::{ETag, Owner, StoreResult};
use crate::domain::{ChatMessage, SessionId};

/// Reading a session for a context window.
#[async_trait]
pub trait ContextStore {
    /// Hands `sink` the session's leading system messages, then its other
    /// messages going back in time, newest first, a chunk at a time, for as
    /// long as it asks for more (what a context read needs: the newest
    /// messages that fit a budget, without reading the rest).
    async fn read_context(
        &self,
        owner: &Owner,
        id: &SessionId,
        sink: &mut (dyn ContextSink + Send),
    ) -> StoreResult<()>;
}

/// Messages a [`ContextStore::read_context`] reads at a time.
pub const CONTEXT_CHUNK: u32 = 100;

/// Receives a session's messages for a context read and says when it has
/// enough.
pub trait ContextSink {
    /// The version of the session about to be read (a backend that knows
    /// it cheaply says so first). Returns whether to go on: false when the
    /// caller already holds the answer for this version.
    fn version(&mut self, etag: &ETag) -> bool {
        let _ = etag;
        true
    }
    /// The session's leading system messages, oldest first (often none).
    /// Returns whether it wants the other messages.
    fn leading(&mut self, system: Vec<ChatMessage>) -> bool;
    /// The next older messages, newest first (never a leading one).
    /// Returns whether it wants more.
    fn older(&mut self, newest_first: Vec<ChatMessage>) -> bool;
}

/// The leading system messages of `oldest_first`.
pub fn leading_system<'a>(oldest_first: impl Iterator<Item = &'a ChatMessage>) -> Vec<ChatMessage> {
    oldest_first
        .take_while(|m| m.message_type == crate::domain::MessageType::System)
        .cloned()
        .collect()
}

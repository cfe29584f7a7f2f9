//! Where sessions live. [`SessionStore`] is the whole contract the API needs
//! from a backend, [`MigrationStore`] what the migration needs besides; every
//! backend fulfils both and runs the same conformance suite
//! (`tests/it/conformance/`).

use std::{fmt, sync::Arc, time::Duration};

use async_trait::async_trait;

use crate::domain::{
    ChatMessage, ChatSession, NewMessage, NewSession, SessionId, SessionPatch, SessionSummary,
    UserId, ValidationError,
};

pub mod branch;
mod connecting;
pub mod cosmos;
pub mod erase;
pub mod export;
pub mod health;
mod import;
mod migration;
pub mod retention;
mod search;
pub mod sqlite;

pub use branch::{BranchStore, TreePage, TreeQuery};
pub use connecting::{Backoff, Connection};
pub use erase::{DynLegacyEraser, EraseStore, Erased, LegacyErased, LegacyEraser};
pub use export::{ExportItem, ExportStore};
pub use health::{Cause, StoreState, Unready};
pub use import::{ImportStore, SessionFields};
pub use migration::{DynMigrationStore, ImportOutcome, MigrationStore, SessionImport};
pub use retention::{RetentionCandidate, RetentionStore};
pub use search::{DynSearchStore, SearchHit, SearchPage, SearchQuery, SearchStore};

/// Who is asking, which decides the sessions they can reach.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Owner {
    /// A known user: reaches only sessions whose `user_id` is theirs.
    User(UserId),
    /// No user (local mode only): reaches any session by its id, lists and
    /// creates sessions without an owner.
    Anonymous,
}

impl Owner {
    /// The `user_id` a session created by this owner carries.
    pub fn user_id(&self) -> Option<&UserId> {
        match self {
            Self::User(user) => Some(user),
            Self::Anonymous => None,
        }
    }

    /// Whether a session owned by `session_user` is visible to this owner.
    pub fn can_see(&self, session_user: Option<&UserId>) -> bool {
        match self {
            Self::User(user) => session_user == Some(user),
            Self::Anonymous => true,
        }
    }
}

/// An opaque version of a stored session, as an HTTP entity-tag including its
/// quotes (`"…"`). It changes on every write to the session.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ETag(String);

impl ETag {
    /// Wraps a stored version; adds the quotes of an entity-tag when missing.
    pub fn new(raw: impl Into<String>) -> Self {
        let raw = raw.into();
        if raw.starts_with('"') && raw.ends_with('"') && raw.len() >= 2 {
            Self(raw)
        } else {
            Self(format!("\"{raw}\""))
        }
    }

    /// The entity-tag, quotes included.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ETag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A value read from or written to the store with its version.
#[derive(Debug, Clone, PartialEq)]
pub struct Versioned<T> {
    /// The value.
    pub value: T,
    /// Its version.
    pub etag: ETag,
}

/// Filters and paging for listing sessions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListQuery {
    /// Page size, 1–200.
    pub limit: u32,
    /// Only active (or only archived) sessions.
    pub is_active: Option<bool>,
    /// Where the previous page ended, as the store returned it.
    pub continuation: Option<String>,
}

/// One page of a session listing, newest activity first.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionPage {
    /// The sessions, without messages.
    pub sessions: Vec<SessionSummary>,
    /// Pass back to get the next page; `None` on the last page.
    pub continuation: Option<String>,
}

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

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// No such session for this owner.
    #[error("session not found")]
    NotFound,
    /// The session (or the message id with other content) already exists.
    #[error("conflict: {0}")]
    Conflict(String),
    /// `If-Match` did not match the stored version.
    #[error("the session was changed since the given ETag")]
    PreconditionFailed,
    /// A caller-supplied value the store cannot use (e.g. a bad continuation).
    #[error(transparent)]
    Invalid(#[from] ValidationError),
    /// The backend is throttled or unreachable; worth retrying later.
    #[error("store unavailable")]
    Unavailable {
        /// When to retry, if the backend said.
        retry_after: Option<Duration>,
    },
    /// The disk holding the store's data is full: the write was not kept.
    /// Reads go on, and writes work again once there is space, without a
    /// restart.
    #[error(
        "the disk holding the data directory is full, so the store cannot write: free space on \
         that disk (or grow it) and try again"
    )]
    StorageFull,
    /// The store's data directory cannot be written: it is read-only, or
    /// gone. Carries what the backend said, for logs and the command line.
    #[error(
        "the data directory cannot be written ({0}): check that it is there, mounted and \
         writable, and try again"
    )]
    StorageUnavailable(String),
    /// Anything else; the cause is logged, never shown to callers.
    #[error("internal store error: {0:#}")]
    Internal(#[from] anyhow::Error),
}

impl StoreError {
    /// Whether this is a fault of the storage under the store (a full
    /// disk, a data directory that cannot be written), which no retry of
    /// the same write fixes until an operator does something.
    pub fn is_storage(&self) -> bool {
        matches!(self, Self::StorageFull | Self::StorageUnavailable(_))
    }
}

/// Shorthand for store results.
pub type StoreResult<T> = Result<T, StoreError>;

/// The storage contract of the API. Small enough to be used as
/// `dyn SessionStore`. The capabilities with their own files
/// ([`BranchStore`], [`ExportStore`], [`EraseStore`], [`RetentionStore`],
/// [`ImportStore`]) are part of it, so every `dyn SessionStore` offers them;
/// each backend implements each of them in its file of the same name.
///
/// Every operation that names a session takes the [`Owner`] asking: a session
/// the owner cannot see behaves exactly like a missing one.
#[async_trait]
pub trait SessionStore:
    BranchStore
    + ExportStore
    + EraseStore
    + RetentionStore
    + ImportStore
    + Send
    + Sync
    + fmt::Debug
    + 'static
{
    /// A short name of the backend, for health answers and logs.
    fn kind(&self) -> &'static str;

    /// Creates a session; [`StoreError::Conflict`] if the id is taken.
    async fn create_session(&self, new: NewSession) -> StoreResult<Versioned<ChatSession>>;

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
    ) -> StoreResult<Option<SessionRead>> {
        Ok(self
            .get_session_if_changed(owner, id, known)
            .await?
            .map(|stored| SessionRead {
                summary: stored.value.summary(),
                etag: stored.etag,
                newest: stored.value.messages,
                older: None,
            }))
    }

    /// The session with only its newest `limit` messages (oldest of them
    /// first); `message_count` and `last_message_at` still describe the
    /// whole session.
    async fn get_session_tail(
        &self,
        owner: &Owner,
        id: &SessionId,
        limit: u32,
    ) -> StoreResult<Versioned<ChatSession>> {
        let mut stored = self.get_session(owner, id).await?;
        let messages = &mut stored.value.messages;
        let keep = messages.len().min(limit as usize);
        messages.drain(..messages.len() - keep);
        Ok(stored)
    }

    /// A page of a session's messages, newest first.
    async fn list_messages(
        &self,
        owner: &Owner,
        id: &SessionId,
        query: MessageQuery,
    ) -> StoreResult<MessagePage> {
        let stored = self.get_session(owner, id).await?;
        Ok(MessagePage::slice(&stored.value.messages, query))
    }

    /// Hands `sink` the session's leading system messages, then its other
    /// messages going back in time, newest first, a chunk at a time, for as
    /// long as it asks for more (what a context read needs: the newest
    /// messages that fit a budget, without reading the rest). This default
    /// pages with [`list_messages`](Self::list_messages).
    async fn read_context(
        &self,
        owner: &Owner,
        id: &SessionId,
        sink: &mut (dyn ContextSink + Send),
    ) -> StoreResult<()> {
        let newest = MessageQuery {
            limit: CONTEXT_CHUNK,
            before: None,
        };
        let mut page = self.list_messages(owner, id, newest).await?;
        let mut start = page.next_before.unwrap_or(0);
        let total = start + page.messages.len() as u64;
        let leading = if start == 0 {
            leading_system(page.messages.iter().rev())
        } else {
            let mut leading = Vec::new();
            let mut from = 0;
            while from < total {
                let before = (from + u64::from(CONTEXT_CHUNK)).min(total);
                let query = MessageQuery {
                    limit: CONTEXT_CHUNK,
                    before: Some(before),
                };
                let chunk = self.list_messages(owner, id, query).await?.messages;
                let more = leading_system(chunk.iter().rev());
                let whole = more.len() == chunk.len();
                leading.extend(more);
                if !whole {
                    break;
                }
                from = before;
            }
            leading
        };
        let lead = leading.len() as u64;
        if !sink.leading(leading) {
            return Ok(());
        }
        loop {
            // Positions [start, start + len) arrive newest first; the
            // leading ones were handed over already.
            let end = start + page.messages.len() as u64;
            let mut messages = page.messages;
            messages.truncate(end.saturating_sub(start.max(lead)) as usize);
            if messages.is_empty() || !sink.older(messages) || start <= lead {
                return Ok(());
            }
            let query = MessageQuery {
                limit: CONTEXT_CHUNK,
                before: Some(start),
            };
            page = self.list_messages(owner, id, query).await?;
            start = page.next_before.unwrap_or(0);
        }
    }

    /// A page of the owner's sessions, most recently updated first.
    async fn list_sessions(&self, owner: &Owner, query: &ListQuery) -> StoreResult<SessionPage>;

    /// A version of all the owner's sessions: it changes whenever any of
    /// them is created, changed or deleted, so a listing read after it was
    /// `v` is current while it is still `v`. `None` when the store keeps no
    /// such version (every listing is then read afresh).
    async fn sessions_version(&self, owner: &Owner) -> StoreResult<Option<ETag>> {
        let _ = owner;
        Ok(None)
    }

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

    /// The store's state as last known, without asking the backend (what
    /// liveness reports). A store that was opened before serving is ready.
    fn state(&self) -> StoreState {
        StoreState::Ready
    }

    /// Asks the backend, with its cheapest real request, whether it can
    /// serve now (what readiness reports).
    async fn check_ready(&self) -> Result<(), Unready> {
        Ok(())
    }
}

/// Messages a [`SessionStore::read_context`] reads at a time.
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

/// A shared store handle.
pub type DynStore = Arc<dyn SessionStore>;

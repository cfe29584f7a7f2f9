//! Where sessions live. [`SessionStore`] is the whole contract the API needs
//! from a backend, [`MigrationStore`] what the migration needs besides; every
//! backend fulfils both and runs the same conformance suite
//! (`tests/it/conformance/`).
//!
//! The contract is a set of small capability traits, one file each here
//! ([`ReadStore`] in `read.rs`, [`AppendStore`] in `append.rs`, …), and each
//! backend implements each of them in its own file of the same name
//! (`sqlite/read.rs`, `cosmos/read.rs`, …): adding an operation is one
//! trait method and its two implementations, under one name. Callers bring
//! the traits into scope with `use crate::store::prelude::*`.

use std::{fmt, sync::Arc, time::Duration};

use crate::domain::{UserId, ValidationError};

mod append;
pub mod branch;
mod connecting;
mod context;
pub mod cosmos;
pub mod erase;
pub mod export;
pub mod health;
mod import;
mod list;
mod migration;
mod read;
pub mod retention;
mod search;
pub mod sqlite;
mod write;

pub use append::{AppendStore, Appended};
pub use branch::{BranchStore, TreePage, TreeQuery};
pub use connecting::{Backoff, Connection};
pub use context::{CONTEXT_CHUNK, ContextSink, ContextStore, leading_system};
pub use erase::{DynLegacyEraser, EraseStore, Erased, LegacyErased, LegacyEraser};
pub use export::{ExportItem, ExportStore};
pub use health::{Cause, HealthStore, StoreState, Unready};
pub use import::{ImportStore, SessionFields};
pub use list::{ListQuery, ListStore, SessionPage};
pub use migration::{DynMigrationStore, ImportOutcome, MigrationStore, SessionImport};
pub use read::{MessageChunks, MessagePage, MessageQuery, ReadStore, SessionRead};
pub use retention::{RetentionCandidate, RetentionStore};
pub use search::{DynSearchStore, SearchHit, SearchPage, SearchQuery, SearchStore};
pub use write::WriteStore;

/// The capability traits, to bring their methods into scope on a
/// [`DynStore`] or a backend: `use crate::store::prelude::*`.
pub mod prelude {
    pub use super::{
        AppendStore as _, BranchStore as _, ContextStore as _, EraseStore as _, ExportStore as _,
        HealthStore as _, ImportStore as _, ListStore as _, MigrationStore as _, ReadStore as _,
        RetentionStore as _, SearchStore as _, WriteStore as _,
    };
}

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

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// No such session for this owner.
    #[error("session not found")]
    NotFound,
    /// The session exists, but the message a request names is not in it.
    #[error("message not found")]
    MessageNotFound,
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

/// The storage contract of the API: every capability a backend offers.
/// Small enough to be used as `dyn SessionStore`; any type with all the
/// capabilities is one (there is nothing to implement here).
///
/// Every operation that names a session takes the [`Owner`] asking: a session
/// the owner cannot see behaves exactly like a missing one.
pub trait SessionStore:
    HealthStore
    + ReadStore
    + ListStore
    + WriteStore
    + AppendStore
    + ContextStore
    + BranchStore
    + ExportStore
    + EraseStore
    + RetentionStore
    + ImportStore
    + Send
    + Sync
    + fmt::Debug
    + 'static
{
}

impl<T> SessionStore for T where
    T: HealthStore
        + ReadStore
        + ListStore
        + WriteStore
        + AppendStore
        + ContextStore
        + BranchStore
        + ExportStore
        + EraseStore
        + RetentionStore
        + ImportStore
        + Send
        + Sync
        + fmt::Debug
        + 'static
{
}

/// A shared store handle.
pub type DynStore = Arc<dyn SessionStore>;

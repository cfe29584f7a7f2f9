//! What the migration needs from a store beyond serving sessions: bringing
//! legacy messages in with their ids and timestamps, and keeping a run's
//! checkpoint. Kept apart from [`SessionStore`] so that the API never sees
//! (or has to fake) these operations.

use std::sync::Arc;

use async_trait::async_trait;

use super::{ETag, SessionStore, StoreResult, Versioned};
use crate::domain::{ChatMessage, SessionId, UserId};

/// Legacy messages to bring into a session (the migration). They keep their
/// ids and timestamps and are sorted by (`created_at`, `id`).
#[derive(Debug, Clone, PartialEq)]
pub struct SessionImport {
    /// The session (the legacy `session_id`).
    pub id: SessionId,
    /// Its owner, from the messages' user ids.
    pub user_id: Option<UserId>,
    /// The messages, in order.
    pub messages: Vec<ChatMessage>,
}

/// What an import did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ImportOutcome {
    /// The session did not exist and was created.
    pub created: bool,
    /// Messages added.
    pub added: u64,
    /// Messages whose ids were there already.
    pub already_present: u64,
}

/// The migration's storage contract. Every backend that can be migrated into
/// implements it beside [`SessionStore`]; a `dyn MigrationStore` upcasts to a
/// `dyn SessionStore` where only sessions are needed.
#[async_trait]
pub trait MigrationStore: SessionStore {
    /// Brings legacy messages into their session: creates it (owned by
    /// `import.user_id`) when missing, else adds only the messages whose ids
    /// it lacks, keeping every message in (`created_at`, `id`) order and the
    /// counters true. A session with this id owned by someone else is a
    /// [`StoreError::Conflict`](super::StoreError::Conflict) and is left as
    /// it is. Running it again adds nothing.
    async fn import_messages(&self, import: SessionImport) -> StoreResult<ImportOutcome>;

    /// The saved state of migration run `run_id` and its version.
    async fn load_checkpoint(&self, run_id: &str) -> StoreResult<Option<Versioned<String>>>;

    /// Saves the state of migration run `run_id`: only if it is still at
    /// version `expected` (`None`: only if there is none yet); else
    /// [`StoreError::PreconditionFailed`](super::StoreError::PreconditionFailed),
    /// so two invocations of one run can never both advance it.
    async fn save_checkpoint(
        &self,
        run_id: &str,
        state: &str,
        expected: Option<&ETag>,
    ) -> StoreResult<ETag>;
}

/// A shared handle on a store the migration can write to.
pub type DynMigrationStore = Arc<dyn MigrationStore>;

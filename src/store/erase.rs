//! Erase: everything of one user goes — their sessions with every message
//! (sealed pages and search entries included) and, when a legacy store is
//! configured, their old per-message documents. Work is done in batches up
//! to a deadline, so erasing a user with more than one invocation's worth
//! of data is finished by calling again; a call after an interruption (a
//! timeout, a crash) continues safely.

use std::{fmt, sync::Arc, time::Instant};

use async_trait::async_trait;

use super::{SessionStore, StoreResult};
use crate::domain::UserId;

/// What one erase call of a store did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Erased {
    /// Sessions deleted by this call.
    pub sessions: u64,
    /// Messages in those sessions.
    pub messages: u64,
    /// True once nothing of the user is left.
    pub complete: bool,
}

/// Deleting all of one user's sessions.
#[async_trait]
pub trait EraseStore: Send + Sync {
    /// Deletes every session of `user` with all its messages (sealed pages
    /// and search entries included), a batch at a time, until nothing is
    /// left or `deadline` has passed (at least one batch is always done, so
    /// every call makes progress). No other user's data is touched. Calling
    /// it again continues; [`Erased::complete`] says when it is done.
    async fn erase_user(&self, user: &UserId, deadline: Instant) -> StoreResult<Erased>;
}

/// What one erase call of a legacy store did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LegacyErased {
    /// Old per-message documents deleted by this call.
    pub messages: u64,
    /// True once none of the user's documents is left.
    pub complete: bool,
}

/// Deleting a user's documents in the legacy per-message store. The wiring
/// hands one to whoever erases (the API, the CLI) when a legacy store is
/// configured; they need not know what it is.
#[async_trait]
pub trait LegacyEraser: Send + Sync + fmt::Debug {
    /// Deletes the legacy documents of `user` until none is left or
    /// `deadline` has passed (at least one batch is always done).
    async fn erase_legacy(&self, user: &UserId, deadline: Instant) -> StoreResult<LegacyErased>;
}

/// A shared legacy eraser.
pub type DynLegacyEraser = Arc<dyn LegacyEraser>;

/// What erasing a user did, over the sessions and the legacy store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Erasure {
    /// Sessions deleted by this call.
    pub sessions_deleted: u64,
    /// Messages in those sessions.
    pub messages_deleted: u64,
    /// Legacy per-message documents deleted by this call.
    pub legacy_messages_deleted: u64,
    /// True once nothing of the user is left anywhere.
    pub complete: bool,
}

/// Erases `user` from `legacy` (when given) and then from `store`, until
/// done or `deadline`. The legacy documents go first so that a migration
/// running meanwhile finds nothing left to bring back into sessions.
pub async fn erase_user(
    store: &dyn SessionStore,
    legacy: Option<&dyn LegacyEraser>,
    user: &UserId,
    deadline: Instant,
) -> StoreResult<Erasure> {
    let mut out = Erasure::default();
    if let Some(legacy) = legacy {
        let erased = legacy.erase_legacy(user, deadline).await?;
        out.legacy_messages_deleted = erased.messages;
        if !erased.complete {
            return Ok(out);
        }
    }
    let erased = store.erase_user(user, deadline).await?;
    out.sessions_deleted = erased.sessions;
    out.messages_deleted = erased.messages;
    out.complete = erased.complete;
    Ok(out)
}

//! Export: everything of one owner, streamed. A backend lists the owner's
//! sessions in a stable order ([`ExportStore`]); [`export`] puts each one's
//! messages after it, read a chunk at a time through
//! [`SessionStore::read_session`], so memory stays flat however much a user
//! has.

use futures::{StreamExt as _, TryStreamExt as _, stream::BoxStream};

use super::{DynStore, Owner, StoreError, StoreResult};
use crate::domain::{ChatMessage, SessionId, SessionSummary};

/// Sessions without messages, as a backend reads them page by page.
pub type SummaryStream = BoxStream<'static, StoreResult<SessionSummary>>;

/// Listing an owner's whole history.
pub trait ExportStore: Send + Sync {
    /// Every session of `owner` (active and archived) without messages,
    /// oldest first by (`created_at`, `id`), read a page at a time as the
    /// stream is polled. The order is one that writes do not change, so a
    /// session that exists throughout comes exactly once even while the
    /// owner keeps chatting. [`Owner::Anonymous`] means the sessions without
    /// an owner (as in listings).
    fn all_sessions(&self, owner: &Owner) -> SummaryStream;
}

/// A piece of an export, in order: a session, then its messages (oldest
/// first, in one or more pieces), then the next session.
#[derive(Debug, Clone, PartialEq)]
pub enum ExportItem {
    /// A session without its messages (as of the read of its messages).
    Session(SessionSummary),
    /// Consecutive messages of the session before.
    Messages(SessionId, Vec<ChatMessage>),
}

/// Everything of `owner`: each session followed by all its messages, oldest
/// first. A session deleted while the export runs is left out (or, if it
/// goes while its messages are being read, ends the stream with an error,
/// so that a cut-off export never looks complete).
pub fn export(store: DynStore, owner: Owner) -> BoxStream<'static, StoreResult<ExportItem>> {
    let sessions = store.all_sessions(&owner);
    sessions
        // One session at a time: its reads start only once the one before
        // has been written out.
        .then(move |summary| {
            let (store, owner) = (store.clone(), owner.clone());
            async move {
                let summary = summary?;
                let read = match store.read_session(&owner, &summary.id, None).await {
                    Ok(Some(read)) => read,
                    Err(StoreError::NotFound) => return Ok(futures::stream::empty().boxed()),
                    Ok(None) => {
                        return Err(StoreError::Internal(anyhow::anyhow!(
                            "an unconditional read returned no session"
                        )));
                    }
                    Err(e) => return Err(e),
                };
                let id = read.summary.id.clone();
                let head = futures::stream::iter([Ok(ExportItem::Session(read.summary))]);
                let older = read.older.map(|chunks| {
                    let id = id.clone();
                    chunks.map_ok(move |messages| ExportItem::Messages(id.clone(), messages))
                });
                let newest =
                    (!read.newest.is_empty()).then(|| Ok(ExportItem::Messages(id, read.newest)));
                Ok(head
                    .chain(futures::stream::iter(older).flatten())
                    .chain(futures::stream::iter(newest))
                    .boxed())
            }
        })
        .try_flatten()
        .boxed()
}

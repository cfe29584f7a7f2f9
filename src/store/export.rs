//! Export: everything of one owner, streamed. A backend lists the owner's
//! sessions in a stable order ([`ExportStore`]); [`export`] puts each one's
//! messages after it, every branch of its tree, read a chunk at a time, so
//! memory stays flat however much a user has.
//!
//! A session that never branched (nearly all) is read as it always was,
//! through [`ReadStore::read_session`](super::ReadStore::read_session);
//! one with messages off its current branch through
//! [`BranchStore::list_tree`](super::BranchStore::list_tree), a page at a
//! time in creation order. Either way every message leaves with its
//! `parent_id` (a message stored before conversations were trees has none
//! and follows the one before it: the export writes that out) and the
//! session with the last message of its current branch.

use futures::{StreamExt as _, TryStreamExt as _, stream::BoxStream};

use super::{DynStore, MessageChunks, Owner, SessionRead, StoreError, StoreResult, TreeQuery};
use crate::domain::{ChatMessage, MessageId, SessionId, SessionSummary};

/// Sessions without messages, as a backend reads them page by page.
pub type SummaryStream = BoxStream<'static, StoreResult<SessionSummary>>;

/// Messages asked for per page of a branched session's tree (the most
/// [`TreeQuery`] allows).
const TREE_PAGE: u32 = 1000;

/// Listing an owner's whole history.
pub trait ExportStore: Send + Sync {
    /// Every session of `owner` (active and archived) without messages,
    /// oldest first by (`created_at`, `id`), read a page at a time as the
    /// stream is polled. The order is one that writes do not change, so a
    /// session that exists throughout comes exactly once even while the
    /// owner keeps chatting. [`Owner::Anonymous`] means the sessions without
    /// an owner (as in listings). A summary whose `total_message_count` is
    /// above its `message_count` saves the export a read of the current
    /// branch (it goes straight to the tree); one that says nothing of it
    /// (0) is read as any other.
    fn all_sessions(&self, owner: &Owner) -> SummaryStream;
}

/// A piece of an export, in order: a session, then its messages (every
/// branch, in creation order, in one or more pieces), then the next
/// session.
#[derive(Debug, Clone, PartialEq)]
pub enum ExportItem {
    /// A session without its messages (as of the read of its messages).
    Session {
        /// The session; its `message_count` and `total_message_count` both
        /// count the messages that follow (every branch).
        summary: SessionSummary,
        /// The last message of its current branch (`None`: no messages).
        current_message_id: Option<MessageId>,
    },
    /// Consecutive messages of the session before, each with its parent.
    Messages(SessionId, Vec<ChatMessage>),
}

/// One session read for an export: its fields, the end of its current
/// branch, and every message, still to be read chunk by chunk.
pub struct SessionExport {
    /// The session; `message_count` and `total_message_count` count the
    /// messages `messages` yields.
    pub summary: SessionSummary,
    /// The last message of the current branch (`None`: no messages).
    pub current_message_id: Option<MessageId>,
    /// Every message, a parent before its children, each with its
    /// `parent_id`; ends with an error if the session changed so that they
    /// would not match the summary.
    pub messages: MessageChunks,
}

impl std::fmt::Debug for SessionExport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionExport")
            .field("summary", &self.summary)
            .field("current_message_id", &self.current_message_id)
            .finish_non_exhaustive()
    }
}

impl SessionExport {
    /// The export's items: the session, then its messages, without the
    /// `siblings` a read may mark (an answer's aid, never part of a file).
    pub fn into_items(self) -> BoxStream<'static, StoreResult<ExportItem>> {
        let id = self.summary.id.clone();
        let head = ExportItem::Session {
            summary: self.summary,
            current_message_id: self.current_message_id,
        };
        let messages = self.messages.map_ok(move |mut messages| {
            messages.iter_mut().for_each(|m| m.siblings = None);
            ExportItem::Messages(id.clone(), messages)
        });
        futures::stream::iter([Ok(head)]).chain(messages).boxed()
    }
}

/// Everything of `owner`: each session followed by all its messages, every
/// branch, in creation order. A session deleted while the export runs is
/// left out (or, if it goes while its messages are being read, ends the
/// stream with an error, so that a cut-off export never looks complete).
pub fn export(store: DynStore, owner: Owner) -> BoxStream<'static, StoreResult<ExportItem>> {
    let sessions = store.all_sessions(&owner);
    sessions
        // One session at a time: its reads start only once the one before
        // has been written out.
        .then(move |summary| {
            let (store, owner) = (store.clone(), owner.clone());
            async move {
                let summary = summary?;
                match read_export(&store, &owner, &summary.id, Some(&summary)).await {
                    Ok(read) => Ok(read.into_items()),
                    Err(StoreError::NotFound) => Ok(futures::stream::empty().boxed()),
                    Err(e) => Err(e),
                }
            }
        })
        .try_flatten()
        .boxed()
}

/// Session `id` of `owner` as an export writes it (see [`SessionExport`]);
/// `listed` is its summary from a listing, if the caller has one.
/// [`StoreError::NotFound`] when the owner has no such session.
pub async fn read_export(
    store: &DynStore,
    owner: &Owner,
    id: &SessionId,
    listed: Option<&SessionSummary>,
) -> StoreResult<SessionExport> {
    if !listed.is_some_and(SessionSummary::has_alternatives) {
        let read = store.read_session(owner, id, None).await?.ok_or_else(|| {
            StoreError::Internal(anyhow::anyhow!("an unconditional read returned no session"))
        })?;
        // It may have branched since it was listed.
        if !read.summary.has_alternatives() {
            return Ok(linear(read));
        }
    }
    tree(store, owner, id).await
}

/// A session without messages off its current branch: its messages as
/// read, each stated to follow the one before when it does not say (a
/// message stored before conversations were trees).
fn linear(read: SessionRead) -> SessionExport {
    let SessionRead {
        mut summary,
        newest,
        older,
        ..
    } = read;
    let current_message_id = newest.last().map(|m| m.id.clone());
    // A backend that kept no total says 0; the file counts its lines.
    summary.total_message_count = summary.message_count;
    let older = futures::stream::iter(older).flatten();
    let newest = futures::stream::iter((!newest.is_empty()).then_some(Ok(newest)));
    let messages = older
        .chain(newest)
        .scan(None::<MessageId>, |before, chunk| {
            let chunk = chunk.map(|mut messages| {
                for message in &mut messages {
                    if message.parent_id.is_none() {
                        message.parent_id = before.clone();
                    }
                    *before = Some(message.id.clone());
                }
                messages
            });
            futures::future::ready(Some(chunk))
        })
        .boxed();
    SessionExport {
        summary,
        current_message_id,
        messages,
    }
}

/// A session with messages off its current branch: the session with the
/// last message of its branch (one read), then its tree a page at a time,
/// as many messages as it had at that read. Messages created since come
/// after those (creation order) and are left out; a deletion meanwhile
/// (fewer messages, or the branch's end gone) ends the stream with an
/// error rather than with a file whose counts or branch do not hold.
async fn tree(store: &DynStore, owner: &Owner, id: &SessionId) -> StoreResult<SessionExport> {
    let tail = store.get_session_tail(owner, id, 1).await?.value;
    let current_message_id = tail.messages.last().map(|m| m.id.clone());
    let mut summary = tail.summary();
    let total = summary.total_message_count;
    summary.message_count = total;
    let changed = {
        let id = id.clone();
        move || {
            StoreError::Internal(anyhow::anyhow!(
                "session {id} changed while its messages were being read"
            ))
        }
    };
    struct Left {
        after: u64,
        count: u64,
        current_seen: bool,
    }
    let start = Left {
        after: 0,
        count: total,
        current_seen: current_message_id.is_none(),
    };
    let (store, owner, id, current) = (
        store.clone(),
        owner.clone(),
        id.clone(),
        current_message_id.clone(),
    );
    let messages = futures::stream::try_unfold(Some(start), move |left| {
        let (store, owner, id, current, changed) = (
            store.clone(),
            owner.clone(),
            id.clone(),
            current.clone(),
            changed.clone(),
        );
        async move {
            let Some(left) = left else {
                return Ok(None);
            };
            if left.count == 0 {
                return if left.current_seen {
                    Ok(None)
                } else {
                    Err(changed())
                };
            }
            let query = TreeQuery {
                limit: TREE_PAGE.min(u32::try_from(left.count).unwrap_or(TREE_PAGE)),
                after: left.after,
            };
            let page = match store.list_tree(&owner, &id, query).await {
                Err(StoreError::NotFound) => return Err(changed()),
                page => page?,
            };
            let mut messages = page.messages;
            messages.truncate(left.count as usize);
            let count = left.count - messages.len() as u64;
            let current_seen =
                left.current_seen || messages.iter().any(|m| current.as_ref() == Some(&m.id));
            let next = match page.next_after {
                _ if count == 0 && !current_seen => return Err(changed()),
                _ if count == 0 => None,
                Some(after) if !messages.is_empty() => Some(Left {
                    after,
                    count,
                    current_seen,
                }),
                _ => return Err(changed()),
            };
            Ok(Some((messages, next)))
        }
    })
    .boxed();
    Ok(SessionExport {
        summary,
        current_message_id,
        messages,
    })
}

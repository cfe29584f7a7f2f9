//! Reads of one session's current branch: whole, its tail, a page, or
//! streamed a chunk at a time. A revalidation is tried inline first, since
//! it is one indexed row.

use async_trait::async_trait;
use futures::StreamExt as _;
use rusqlite::params;

use super::{
    SqliteStore,
    rows::{
        MESSAGE_COLUMNS, find_session, internal, load_messages, mark_siblings, message_row,
        messages_before,
    },
};
use crate::{
    domain::{ChatMessage, ChatSession, MessageId, SessionId},
    store::{
        ETag, MessageChunks, MessagePage, MessageQuery, Owner, ReadStore, SessionRead, StoreError,
        StoreResult, Versioned,
    },
};

/// Messages read at once from a long session; a session with no more than
/// this is read whole (and served from the render cache).
pub(super) const CHUNK: u32 = 2000;

#[async_trait]
impl ReadStore for SqliteStore {
    async fn get_session_if_changed(
        &self,
        owner: &Owner,
        id: &SessionId,
        known: Option<&ETag>,
    ) -> StoreResult<Option<Versioned<ChatSession>>> {
        if let Some(known) = known
            && let Some(unchanged) = self.revalidate_inline(owner, id, known)
        {
            return unchanged;
        }
        let (owner, id, known) = (owner.clone(), id.clone(), known.cloned());
        self.read(move |conn| {
            // Revalidation is one indexed row read, without a transaction.
            if let Some(known) = &known {
                let (_, etag) = find_session(conn, &owner, &id)?;
                if ETag::new(etag) == *known {
                    return Ok(None);
                }
            }
            // The session row and its messages from one snapshot.
            let tx = conn.transaction().map_err(internal)?;
            let (summary, etag) = find_session(&tx, &owner, &id)?;
            let messages = load_messages(&tx, &summary)?;
            tx.finish().map_err(internal)?;
            Ok(Some(Versioned {
                value: ChatSession::from_parts(summary, messages),
                etag: ETag::new(etag),
            }))
        })
        .await
    }

    /// The session with its newest [`CHUNK`] messages; older ones, if any,
    /// come as a stream of chunks read when polled. Appends never move a
    /// position, so the chunks are the messages that were there at the first
    /// read; a branch switch or a delete meanwhile can, and then the chunks
    /// no longer lead to the newest messages: the stream fails rather than
    /// answer a mix of two branches.
    async fn read_session(
        &self,
        owner: &Owner,
        id: &SessionId,
        known: Option<&ETag>,
    ) -> StoreResult<Option<SessionRead>> {
        // The common case, a cached rendering still current, is one indexed
        // row read on this thread (no hop to the blocking pool).
        if let Some(known) = known
            && let Some(unchanged) = self.revalidate_inline(owner, id, known)
        {
            return unchanged.map(|_| None);
        }
        let (owner, session_id, known) = (owner.clone(), id.clone(), known.cloned());
        let first = self
            .read(move |conn| {
                let tx = conn.transaction().map_err(internal)?;
                let (summary, etag) = find_session(&tx, &owner, &session_id)?;
                let etag = ETag::new(etag);
                if known.as_ref() == Some(&etag) {
                    return Ok(None);
                }
                let mut newest = messages_before(&tx, &session_id, i64::MAX, CHUNK)?;
                let branched = summary.has_alternatives();
                mark_siblings(&tx, &session_id, branched, &mut newest)?;
                newest.reverse();
                tx.finish().map_err(internal)?;
                Ok(Some((summary, etag, newest)))
            })
            .await?;
        let Some((summary, etag, newest)) = first else {
            return Ok(None);
        };
        let older_count = summary.message_count.saturating_sub(newest.len() as u64);
        let leads_to = newest.first().and_then(|m| m.parent_id.clone());
        let branched = summary.has_alternatives();
        let older =
            (older_count > 0).then(|| self.chunks(id.clone(), older_count, branched, leads_to));
        Ok(Some(SessionRead {
            summary,
            etag,
            newest,
            older,
        }))
    }

    async fn get_session_tail(
        &self,
        owner: &Owner,
        id: &SessionId,
        limit: u32,
    ) -> StoreResult<Versioned<ChatSession>> {
        let (owner, id) = (owner.clone(), id.clone());
        self.read(move |conn| {
            let tx = conn.transaction().map_err(internal)?;
            let (summary, etag) = find_session(&tx, &owner, &id)?;
            let mut messages = messages_before(&tx, &id, i64::MAX, limit)?;
            mark_siblings(&tx, &id, summary.has_alternatives(), &mut messages)?;
            messages.reverse();
            tx.finish().map_err(internal)?;
            Ok(Versioned {
                value: ChatSession::from_parts(summary, messages),
                etag: ETag::new(etag),
            })
        })
        .await
    }

    async fn list_messages(
        &self,
        owner: &Owner,
        id: &SessionId,
        query: MessageQuery,
    ) -> StoreResult<MessagePage> {
        let (owner, id) = (owner.clone(), id.clone());
        self.read(move |conn| {
            let tx = conn.transaction().map_err(internal)?;
            let (summary, _) = find_session(&tx, &owner, &id)?;
            // Position p (0-based) is pos p + 1, and pos runs 1..=count.
            let end = query
                .before
                .map_or(summary.message_count, |b| b.min(summary.message_count));
            let start = end.saturating_sub(u64::from(query.limit));
            let mut messages = messages_before(&tx, &id, end as i64 + 1, (end - start) as u32)?;
            mark_siblings(&tx, &id, summary.has_alternatives(), &mut messages)?;
            tx.finish().map_err(internal)?;
            Ok(MessagePage {
                messages,
                next_before: (start > 0).then_some(start),
            })
        })
        .await
    }
}

impl SqliteStore {
    /// Revalidates a known version on the calling thread: one indexed row
    /// read on a connection that never waits for a lock. `None` when that is
    /// not possible right now (no idle connection, or SQLite busy), so the
    /// caller takes the ordinary path.
    pub(super) fn revalidate_inline(
        &self,
        owner: &Owner,
        id: &SessionId,
        known: &ETag,
    ) -> Option<StoreResult<Option<Versioned<ChatSession>>>> {
        match self.inline(|conn| find_session(conn, owner, id))? {
            Ok((_, etag)) if ETag::new(etag.as_str()) == *known => Some(Ok(None)),
            Err(StoreError::NotFound) => Some(Err(StoreError::NotFound)),
            _ => None,
        }
    }

    /// Messages at positions 0..`count` of session `id`, [`CHUNK`] at a
    /// time, each chunk one read when the stream gets to it. Each message
    /// must follow the one before, and the last lead to `leads_to` (the
    /// parent of the newest messages, read first); else the branch changed
    /// in between and the stream fails.
    fn chunks(
        &self,
        id: SessionId,
        count: u64,
        branched: bool,
        leads_to: Option<MessageId>,
    ) -> MessageChunks {
        let store = self.clone();
        let starts = (1..=count).step_by(CHUNK as usize);
        let changed = {
            let id = id.clone();
            move || {
                StoreError::Internal(anyhow::anyhow!(
                    "session {id} changed while its messages were being read"
                ))
            }
        };
        futures::stream::iter(starts)
            .then(move |first| {
                let (store, id) = (store.clone(), id.clone());
                let last = (first + u64::from(CHUNK) - 1).min(count);
                async move { store.pos_range(id, first, last, branched).await }
            })
            .scan(
                (None::<MessageId>, 0u64),
                move |(previous, read), chunk: StoreResult<Vec<ChatMessage>>| {
                    let chunk = chunk.and_then(|messages| {
                        for message in &messages {
                            if message.parent_id != *previous {
                                return Err(changed());
                            }
                            *previous = Some(message.id.clone());
                        }
                        *read += messages.len() as u64;
                        if *read == count && *previous != leads_to {
                            return Err(changed());
                        }
                        Ok(messages)
                    });
                    futures::future::ready(Some(chunk))
                },
            )
            .boxed()
    }

    /// The current branch's messages at positions (`pos`) `first..=last`;
    /// all of them, or an error (the session was deleted meanwhile). Their
    /// siblings are marked when the session was `branched` at its first
    /// read (a change since then fails the chunks' chain check).
    async fn pos_range(
        &self,
        id: SessionId,
        first: u64,
        last: u64,
        branched: bool,
    ) -> StoreResult<Vec<ChatMessage>> {
        self.read(move |conn| {
            let mut messages = conn
                .prepare_cached(&format!(
                    "SELECT {MESSAGE_COLUMNS} FROM messages \
                     WHERE session_id = ?1 AND pos BETWEEN ?2 AND ?3 ORDER BY pos"
                ))
                .and_then(|mut stmt| {
                    stmt.query_map(params![id.as_str(), first as i64, last as i64], message_row)
                        .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
                })
                .map_err(internal)?;
            mark_siblings(conn, &id, branched, &mut messages)?;
            if messages.len() as u64 != last - first + 1 {
                return Err(StoreError::Internal(anyhow::anyhow!(
                    "session {id} changed while its messages were being read"
                )));
            }
            Ok(messages)
        })
        .await
    }
}

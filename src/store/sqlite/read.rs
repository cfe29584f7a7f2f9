//! Reads: on a small pool of reader connections on Tokio's blocking pool,
//! which WAL lets run beside the writer; a revalidation is tried inline
//! first, since it is one indexed row.

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use rusqlite::{Connection, params};

use super::{
    SqliteStore,
    connection::open_connection,
    rows::SESSION_COLUMNS,
    rows::{find_session, internal, load_messages, messages_before, summary_row},
};
use crate::{
    domain::{ChatSession, SessionId, SessionSummary, Timestamp, UserId, ValidationError},
    store::{
        ETag, ListQuery, MessagePage, MessageQuery, Owner, SessionPage, StoreError, StoreResult,
        Versioned,
    },
    telemetry::cost,
};

impl SqliteStore {
    /// Runs `f` on a pooled reader connection. Reads that need several
    /// statements to agree open a transaction on it themselves.
    pub(super) async fn read<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> StoreResult<T> + Send + 'static,
    {
        let _timer = cost::StoreTimer::start();
        // Held until the read is done (or its caller gone).
        let _slot = self
            .inner
            .read_slots
            .acquire()
            .await
            .map_err(|e| StoreError::Internal(e.into()))?;
        let inner = self.inner.clone();
        blocking(move || {
            let pooled = inner
                .readers
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .pop();
            let mut conn = match pooled {
                Some(conn) => conn,
                None => open_connection(&inner.path, inner.durability, false)
                    .map_err(StoreError::Internal)?,
            };
            let out = f(&mut conn);
            let mut readers = inner.readers.lock().unwrap_or_else(|e| e.into_inner());
            if readers.len() < super::READERS {
                readers.push(conn);
            }
            out
        })
        .await
    }

    /// Runs `f` on the calling thread, on an idle connection that never
    /// waits for a lock (one indexed row read, cheaper than a hop to the
    /// blocking pool); `None` when none is idle.
    pub(super) fn inline<T>(&self, f: impl FnOnce(&Connection) -> T) -> Option<T> {
        let _timer = cost::StoreTimer::start();
        let readers = || {
            self.inner
                .inline_readers
                .lock()
                .unwrap_or_else(|e| e.into_inner())
        };
        let conn = readers().pop()?;
        let out = f(&conn);
        readers().push(conn);
        Some(out)
    }

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

    pub(super) async fn get_if_changed(
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
            let messages = load_messages(&tx, &id)?;
            tx.finish().map_err(internal)?;
            Ok(Some(Versioned {
                value: ChatSession::from_parts(summary, messages),
                etag: ETag::new(etag),
            }))
        })
        .await
    }

    pub(super) async fn tail(
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
            messages.reverse();
            tx.finish().map_err(internal)?;
            Ok(Versioned {
                value: ChatSession::from_parts(summary, messages),
                etag: ETag::new(etag),
            })
        })
        .await
    }

    pub(super) async fn message_page(
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
            let messages = messages_before(&tx, &id, end as i64 + 1, (end - start) as u32)?;
            tx.finish().map_err(internal)?;
            Ok(MessagePage {
                messages,
                next_before: (start > 0).then_some(start),
            })
        })
        .await
    }

    pub(super) async fn session_page(
        &self,
        owner: &Owner,
        query: &ListQuery,
    ) -> StoreResult<SessionPage> {
        let after = query
            .continuation
            .as_deref()
            .map(decode_cursor)
            .transpose()?;
        let owner = owner.clone();
        let query = query.clone();
        self.read(move |tx| {
            let limit = query.limit.clamp(1, 200);
            let (after_updated, after_id) = after.unzip();
            let sql = format!(
                "SELECT {SESSION_COLUMNS} FROM sessions WHERE user_id IS ?1 \
                 AND (?2 IS NULL OR is_active = ?2) \
                 AND (?3 IS NULL OR (updated_at, id) < (?3, ?4)) \
                 ORDER BY updated_at DESC, id DESC LIMIT ?5"
            );
            let mut stmt = tx.prepare_cached(&sql).map_err(internal)?;
            let mut sessions = stmt
                .query_map(
                    params![
                        owner.user_id().map(UserId::as_str),
                        query.is_active,
                        after_updated,
                        after_id,
                        i64::from(limit) + 1,
                    ],
                    summary_row,
                )
                .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
                .map_err(internal)?;
            let continuation = if sessions.len() > limit as usize {
                sessions.truncate(limit as usize);
                sessions.last().map(encode_cursor)
            } else {
                None
            };
            Ok(SessionPage {
                sessions,
                continuation,
            })
        })
        .await
    }
}

async fn blocking<T, F>(f: F) -> StoreResult<T>
where
    T: Send + 'static,
    F: FnOnce() -> StoreResult<T> + Send + 'static,
{
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| StoreError::Internal(anyhow::anyhow!("store task failed: {e}")))?
}

/// Continuation tokens are the keyset of the last row of a page.
fn encode_cursor(last: &SessionSummary) -> String {
    URL_SAFE_NO_PAD.encode(format!("v1\n{}\n{}", last.updated_at, last.id))
}

fn decode_cursor(token: &str) -> StoreResult<(String, String)> {
    let invalid = || {
        StoreError::Invalid(ValidationError::new(
            "continuation_token",
            "is not a token this service returned",
        ))
    };
    let bytes = URL_SAFE_NO_PAD.decode(token).map_err(|_| invalid())?;
    let text = String::from_utf8(bytes).map_err(|_| invalid())?;
    let mut parts = text.split('\n');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some("v1"), Some(updated), Some(id), None)
            if Timestamp::parse(updated).is_ok() && SessionId::parse(id).is_ok() =>
        {
            Ok((updated.to_owned(), id.to_owned()))
        }
        _ => Err(invalid()),
    }
}

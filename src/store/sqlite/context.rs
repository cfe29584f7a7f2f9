//! The context read: the leading system messages and the newest chunk from
//! one snapshot in one trip to the reader pool (what nearly every budget
//! needs), then older chunks only while the selection wants more.

use async_trait::async_trait;
use rusqlite::{Connection, params};

use super::{
    SqliteStore,
    rows::{MESSAGE_COLUMNS, find_append_target, internal, message_row, messages_before},
};
use crate::{
    domain::{ChatMessage, MessageType, SessionId},
    store::{CONTEXT_CHUNK, ContextSink, ContextStore, ETag, Owner, StoreResult},
};

#[async_trait]
impl ContextStore for SqliteStore {
    async fn read_context(
        &self,
        owner: &Owner,
        id: &SessionId,
        sink: &mut (dyn ContextSink + Send),
    ) -> StoreResult<()> {
        // The version first, inline (one indexed row, no trip to the pool):
        // a caller holding the answer for it needs nothing more.
        if let Some(target) = self.inline(|conn| find_append_target(conn, owner, id))
            && !sink.version(&ETag::new(target?.etag))
        {
            return Ok(());
        }
        let (owner, id) = (owner.clone(), id.clone());
        let read_id = id.clone();
        let (leading, newest, count, etag) = self
            .read(move |conn| {
                let tx = conn.transaction().map_err(internal)?;
                let target = find_append_target(&tx, &owner, &read_id)?;
                let leading = leading_system(&tx, &read_id)?;
                let newest = messages_before(&tx, &read_id, i64::MAX, CONTEXT_CHUNK)?;
                tx.finish().map_err(internal)?;
                Ok((leading, newest, target.message_count, target.etag))
            })
            .await?;
        if !sink.version(&ETag::new(etag)) {
            return Ok(());
        }
        // Positions are `pos`, 1 to the message count, with no gaps.
        let lead = leading.len() as i64;
        if !sink.leading(leading) {
            return Ok(());
        }
        let mut oldest = count - newest.len() as i64 + 1;
        let mut chunk = newest;
        loop {
            let keep = (oldest + chunk.len() as i64 - 1 - lead).clamp(0, chunk.len() as i64);
            chunk.truncate(keep as usize);
            if chunk.is_empty() || !sink.older(chunk) || oldest <= lead + 1 {
                return Ok(());
            }
            let below = oldest;
            let id = id.clone();
            chunk = self
                .read(move |conn| messages_before(conn, &id, below, CONTEXT_CHUNK))
                .await?;
            oldest = below - chunk.len() as i64;
        }
    }
}

/// The session's leading system messages, read a few at a time (most
/// sessions have none or one).
fn leading_system(conn: &Connection, id: &SessionId) -> StoreResult<Vec<ChatMessage>> {
    let mut leading = Vec::new();
    let mut limit = 4i64;
    loop {
        let rows: Vec<ChatMessage> = conn
            .prepare_cached(&format!(
                "SELECT {MESSAGE_COLUMNS} FROM messages \
                 WHERE session_id = ?1 AND pos > ?2 ORDER BY pos LIMIT ?3"
            ))
            .and_then(|mut stmt| {
                stmt.query_map(
                    params![id.as_str(), leading.len() as i64, limit],
                    message_row,
                )
                .and_then(|rows| rows.collect())
            })
            .map_err(internal)?;
        let got = rows.len() as i64;
        let before = leading.len();
        leading.extend(
            rows.into_iter()
                .take_while(|m| m.message_type == MessageType::System),
        );
        if leading.len() - before < got as usize || got < limit {
            return Ok(leading);
        }
        limit *= 4;
    }
}

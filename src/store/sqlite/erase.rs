//! Erasing a user: their sessions deleted a batch per write job, so that the
//! single writer never stalls other users' writes for long.

use std::time::Instant;

use async_trait::async_trait;
use rusqlite::params;

use super::{SqliteStore, rows::internal, write::delete_rows};
use crate::{
    domain::{SessionId, UserId},
    store::{EraseStore, Erased, StoreResult},
};

/// Most sessions deleted by one write job.
const BATCH_SESSIONS: i64 = 100;
/// A write job stops adding sessions once it has this many messages to
/// delete (one longer session still goes whole).
const BATCH_MESSAGES: u64 = 20_000;

#[async_trait]
impl EraseStore for SqliteStore {
    async fn erase_user(&self, user: &UserId, deadline: Instant) -> StoreResult<Erased> {
        let mut out = Erased::default();
        loop {
            let user = user.clone();
            let (sessions, messages, more) = self
                .write(move |tx| {
                    let batch: Vec<(String, u64)> = tx
                        .prepare_cached(
                            // Every branch's messages go, so every one counts.
                            "SELECT id, total_count FROM sessions \
                             WHERE user_id = ?1 ORDER BY created_at, id LIMIT ?2",
                        )
                        .and_then(|mut stmt| {
                            stmt.query_map(params![user.as_str(), BATCH_SESSIONS + 1], |row| {
                                Ok((row.get(0)?, row.get(1)?))
                            })
                            .and_then(|rows| rows.collect())
                        })
                        .map_err(internal)?;
                    let (mut sessions, mut messages) = (0u64, 0u64);
                    for (id, count) in &batch {
                        if sessions as i64 == BATCH_SESSIONS
                            || (sessions > 0 && messages + count > BATCH_MESSAGES)
                        {
                            break;
                        }
                        let id = SessionId::parse(id.clone())
                            .map_err(|e| crate::store::StoreError::Internal(e.into()))?;
                        delete_rows(tx, &id)?;
                        sessions += 1;
                        messages += count;
                    }
                    Ok((sessions, messages, batch.len() as u64 > sessions))
                })
                .await?;
            out.sessions += sessions;
            out.messages += messages;
            if !more {
                out.complete = true;
                return Ok(out);
            }
            if Instant::now() >= deadline {
                return Ok(out);
            }
        }
    }
}

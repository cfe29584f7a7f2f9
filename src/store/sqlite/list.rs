//! Listing an owner's sessions by keyset pages on (updated_at, id), and
//! the owner's version that tells a cached listing is still current.

use async_trait::async_trait;
use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use rusqlite::params;

use super::{
    SqliteStore,
    rows::{SESSION_COLUMNS, internal, summary_row},
    versions::read_version,
};
use crate::{
    domain::{SessionId, SessionSummary, Timestamp, UserId, ValidationError},
    store::{ETag, ListQuery, ListStore, Owner, SessionPage, StoreError, StoreResult},
};

#[async_trait]
impl ListStore for SqliteStore {
    async fn list_sessions(&self, owner: &Owner, query: &ListQuery) -> StoreResult<SessionPage> {
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

    /// The owner's version: on this thread when an idle connection that
    /// never waits is free (the common case), else on the reader pool.
    async fn sessions_version(&self, owner: &Owner) -> StoreResult<Option<ETag>> {
        if let Some(Ok(version)) = self.inline(|conn| read_version(conn, owner)) {
            return Ok(Some(version));
        }
        let owner = owner.clone();
        self.read(move |conn| read_version(conn, &owner))
            .await
            .map(Some)
    }
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

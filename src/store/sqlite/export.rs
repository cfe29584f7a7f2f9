//! Reading a whole history without holding it: an owner's sessions a page
//! at a time in creation order, and a long session's messages a chunk at a
//! time.

use futures::{StreamExt as _, TryStreamExt as _};
use rusqlite::params;

use super::{
    SqliteStore,
    rows::SESSION_COLUMNS,
    rows::{internal, session_row},
};
use crate::{
    domain::{SessionId, UserId},
    store::{ExportStore, Owner, StoreError, StoreResult, export::SummaryStream},
};

/// Sessions per listing page.
const PAGE: u32 = 200;
impl ExportStore for SqliteStore {
    fn all_sessions(&self, owner: &Owner) -> SummaryStream {
        let store = self.clone();
        let user = owner.user_id().cloned();
        // Keyset paging on (created_at, id), which writes never change.
        futures::stream::try_unfold(Some(None), move |cursor| {
            let (store, user) = (store.clone(), user.clone());
            async move {
                let Some(after) = cursor else {
                    return Ok::<_, StoreError>(None);
                };
                let page = store.created_page(user, after).await?;
                let next = (page.len() == PAGE as usize).then(|| {
                    page.last()
                        .map(|s| (s.created_at.to_string(), s.id.clone()))
                });
                Ok(Some((
                    futures::stream::iter(page.into_iter().map(Ok)),
                    next,
                )))
            }
        })
        .try_flatten()
        .boxed()
    }
}

impl SqliteStore {
    /// Up to [`PAGE`] sessions of `user` after `after` in (created_at, id)
    /// order.
    async fn created_page(
        &self,
        user: Option<UserId>,
        after: Option<(String, SessionId)>,
    ) -> StoreResult<Vec<crate::domain::SessionSummary>> {
        self.read(move |conn| {
            let (after_created, after_id) = after.unzip();
            let sql = format!(
                "SELECT {SESSION_COLUMNS} FROM sessions WHERE user_id IS ?1 \
                 AND (?2 IS NULL OR (created_at, id) > (?2, ?3)) \
                 ORDER BY created_at, id LIMIT ?4"
            );
            let mut stmt = conn.prepare_cached(&sql).map_err(internal)?;
            stmt.query_map(
                params![
                    user.as_ref().map(UserId::as_str),
                    after_created,
                    after_id.as_ref().map(SessionId::as_str),
                    PAGE,
                ],
                |row| session_row(row).map(|(summary, _)| summary),
            )
            .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
            .map_err(internal)
        })
        .await
    }
}

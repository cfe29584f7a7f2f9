//! Retention candidates: a scan of the sessions table in id order, a page
//! per read.

use futures::{StreamExt as _, TryStreamExt as _};
use rusqlite::params;

use super::{
    SqliteStore,
    rows::SESSION_COLUMNS,
    rows::{internal, session_row},
};
use crate::{
    domain::{SessionId, Timestamp},
    store::{
        ETag, RetentionCandidate, RetentionStore, StoreError, StoreResult,
        retention::CandidateStream,
    },
};

/// Sessions per read.
const PAGE: i64 = 500;

/// Which rule a scan serves.
#[derive(Debug, Clone, Copy)]
enum Rule {
    Archive,
    Delete,
}

impl RetentionStore for SqliteStore {
    fn untouched_before(&self, cutoff: Timestamp) -> CandidateStream {
        self.candidates(Rule::Archive, cutoff)
    }

    fn archived_before(&self, cutoff: Timestamp) -> CandidateStream {
        self.candidates(Rule::Delete, cutoff)
    }
}

impl SqliteStore {
    fn candidates(&self, rule: Rule, cutoff: Timestamp) -> CandidateStream {
        let store = self.clone();
        futures::stream::try_unfold(Some(None::<SessionId>), move |after| {
            let store = store.clone();
            async move {
                let Some(after) = after else {
                    return Ok::<_, StoreError>(None);
                };
                let page = store.candidate_page(rule, cutoff, after).await?;
                let next = (page.len() == PAGE as usize).then(|| page.last().map(|c| c.id.clone()));
                Ok(Some((
                    futures::stream::iter(page.into_iter().map(Ok)),
                    next,
                )))
            }
        })
        .try_flatten()
        .boxed()
    }

    async fn candidate_page(
        &self,
        rule: Rule,
        cutoff: Timestamp,
        after: Option<SessionId>,
    ) -> StoreResult<Vec<RetentionCandidate>> {
        self.read(move |conn| {
            let filter = match rule {
                Rule::Archive => "is_active = 1 AND updated_at < ?1",
                Rule::Delete => "is_active = 0 AND COALESCE(archived_at, updated_at) < ?1",
            };
            let sql = format!(
                "SELECT {SESSION_COLUMNS} FROM sessions WHERE {filter} \
                 AND (?2 IS NULL OR id > ?2) ORDER BY id LIMIT ?3"
            );
            let mut stmt = conn.prepare_cached(&sql).map_err(internal)?;
            stmt.query_map(
                params![
                    cutoff.to_string(),
                    after.as_ref().map(SessionId::as_str),
                    PAGE
                ],
                session_row,
            )
            .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
            .map_err(internal)
            .map(|rows| {
                rows.into_iter()
                    .map(|(summary, etag)| RetentionCandidate {
                        since: match rule {
                            Rule::Archive => summary.updated_at,
                            Rule::Delete => summary.archived_at.unwrap_or(summary.updated_at),
                        },
                        id: summary.id,
                        user_id: summary.user_id,
                        etag: ETag::new(etag),
                        message_count: summary.total_message_count,
                    })
                    .collect()
            })
        })
        .await
    }
}

//! Retention candidates: a paged cross-partition query over the session
//! documents (the sweep works for every user; message bodies stay out of
//! the projection).

use azure_data_cosmos::{FeedScope, Query};
use futures::{StreamExt as _, TryStreamExt as _};
use serde::Deserialize;

use super::{
    CosmosStore,
    documents::{SESSION_DOC_TYPE, every_message},
    errors::store_error,
};
use crate::{
    domain::{SessionId, Timestamp, UserId},
    store::{ETag, RetentionCandidate, RetentionStore, StoreResult, retention::CandidateStream},
};

/// Documents per query page.
const PAGE: u32 = 200;

/// What a candidate needs of a session document.
#[derive(Deserialize)]
struct Row {
    id: SessionId,
    #[serde(default)]
    user_id: Option<UserId>,
    #[serde(rename = "_etag")]
    etag: String,
    #[serde(default)]
    message_count: u64,
    /// Every branch's messages (absent on documents from before trees).
    #[serde(default)]
    total_message_count: u64,
    updated_at: Timestamp,
    #[serde(default)]
    archived_at: Option<Timestamp>,
}

const COLUMNS: &str = "c.id, c.user_id, c._etag, c.message_count, c.total_message_count, \
     c.updated_at, c.archived_at";

impl RetentionStore for CosmosStore {
    fn untouched_before(&self, cutoff: Timestamp) -> CandidateStream {
        let sql = format!(
            "SELECT {COLUMNS} FROM c WHERE c.doc_type = @type AND c.is_active = true \
             AND c.updated_at < @cutoff"
        );
        self.candidates(sql, cutoff, |row| Some(row.updated_at))
    }

    fn archived_before(&self, cutoff: Timestamp) -> CandidateStream {
        // A comparison with a missing or null `archived_at` is undefined in
        // Cosmos SQL, so the `updated_at` half finds the sessions archived
        // before the field existed; the exact rule is applied below.
        let sql = format!(
            "SELECT {COLUMNS} FROM c WHERE c.doc_type = @type AND c.is_active = false \
             AND (c.archived_at < @cutoff OR c.updated_at < @cutoff)"
        );
        self.candidates(sql, cutoff, move |row| {
            let since = row.archived_at.unwrap_or(row.updated_at);
            (since < cutoff).then_some(since)
        })
    }
}

impl CosmosStore {
    /// The rows of `sql` for which `since` gives the time the rule measured.
    fn candidates(
        &self,
        sql: String,
        cutoff: Timestamp,
        since: impl Fn(&Row) -> Option<Timestamp> + Send + Sync + 'static,
    ) -> CandidateStream {
        let query = Query::from(sql)
            .with_parameter("@type", SESSION_DOC_TYPE)
            .and_then(|q| q.with_parameter("@cutoff", cutoff.to_string()));
        let rows = match query {
            Ok(query) => self.query_stream::<Row>(query, FeedScope::full_container(), PAGE),
            Err(e) => return futures::stream::once(async move { Err(store_error(e)) }).boxed(),
        };
        rows.try_filter_map(move |row| {
            let candidate = since(&row).map(|since| RetentionCandidate {
                id: row.id,
                user_id: row.user_id,
                etag: ETag::new(row.etag),
                message_count: every_message(row.message_count, row.total_message_count),
                since,
            });
            futures::future::ready(StoreResult::Ok(candidate))
        })
        .boxed()
    }
}

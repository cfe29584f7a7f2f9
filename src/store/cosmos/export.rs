//! An owner's whole history as a paged query of their partition (session
//! documents without `messages`, oldest first); each session's messages are
//! then read through `read_session`, a sealed page at a time. Never one big
//! query result in memory.

use azure_data_cosmos::{
    FeedScope, Query,
    options::{MaxItemCountHint, QueryOptions},
};
use futures::{StreamExt as _, TryStreamExt as _, stream::BoxStream};
use serde::de::DeserializeOwned;

use super::{
    CosmosStore,
    documents::{SESSION_DOC_TYPE, partition},
    errors::store_error,
};
use crate::{
    domain::SessionSummary,
    store::{ExportStore, Owner, StoreResult, export::SummaryStream},
};

/// Items per query page of a listing.
const PAGE: u32 = 100;

impl ExportStore for CosmosStore {
    fn all_sessions(&self, owner: &Owner) -> SummaryStream {
        // `created_at` never changes, so the continuation stays exact while
        // the owner keeps writing.
        let query = Query::from(
            "SELECT c.id, c.user_id, c.session_name, c.is_active, c.archived_at, c.context, \
             c.message_count, c.total_message_count, c.last_message_at, c.created_at, \
             c.updated_at FROM c WHERE c.doc_type = @type ORDER BY c.created_at",
        )
        .with_parameter("@type", SESSION_DOC_TYPE);
        match query {
            Ok(query) => self
                .query_stream::<SessionSummary>(
                    query,
                    FeedScope::partition(partition(owner.user_id())),
                    PAGE,
                )
                .map_ok(super::list::normalized)
                .boxed(),
            Err(e) => futures::stream::once(async move { Err(store_error(e)) }).boxed(),
        }
    }
}

impl CosmosStore {
    /// The items of `query`, read a page (of at most `page_size`) at a time
    /// as the stream is polled; every page's charge is counted.
    pub(super) fn query_stream<T: DeserializeOwned + Send + 'static>(
        &self,
        query: Query,
        scope: FeedScope,
        page_size: u32,
    ) -> BoxStream<'static, StoreResult<T>> {
        let store = self.clone();
        let limit = std::num::NonZeroU32::new(page_size.max(1)).expect("at least 1");
        futures::stream::once(async move {
            let options =
                QueryOptions::default().with_max_item_count(MaxItemCountHint::Limit(limit));
            // Requests are counted per page, as they are sent.
            let pages = store
                .container()?
                .query_items::<T>(query, scope, Some(options))
                .await
                .map_err(store_error)?
                .into_pages();
            let metrics = store.metrics.clone();
            StoreResult::Ok(
                pages
                    .map_err(store_error)
                    .map_ok(move |page| {
                        metrics.record(page.headers().request_charge().map(|c| c.value()));
                        futures::stream::iter(page.into_items().into_iter().map(Ok))
                    })
                    .try_flatten(),
            )
        })
        .try_flatten()
        .boxed()
    }

    /// The items of a small query, all of them.
    pub(super) async fn query_all<T: DeserializeOwned + Send + 'static>(
        &self,
        query: Query,
        scope: FeedScope,
    ) -> StoreResult<Vec<T>> {
        self.query_stream(query, scope, 1000).try_collect().await
    }
}

//! Listing an owner's sessions: one single-partition query per page that
//! leaves `messages` out. Cosmos DB keeps no per-owner version, so every
//! listing is read afresh (`sessions_version` is the default `None`).

use async_trait::async_trait;
use azure_data_cosmos::{
    CosmosError, FeedScope, Query,
    feed::ContinuationToken,
    options::{MaxItemCountHint, QueryOptions},
};
use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use futures::TryStreamExt as _;

use super::{
    CosmosStore,
    documents::{SESSION_DOC_TYPE, json_len, partition},
    errors::{invalid_continuation, status, store_error},
    metrics::ItemIo,
};
use crate::{
    domain::SessionSummary,
    store::{ListQuery, ListStore, Owner, SessionPage, StoreResult},
};

/// A listed session as documents older than `total_message_count` list it:
/// every message is on the current branch.
pub(super) fn normalized(mut summary: SessionSummary) -> SessionSummary {
    summary.total_message_count = summary.total_message_count.max(summary.message_count);
    summary
}

#[async_trait]
impl ListStore for CosmosStore {
    async fn list_sessions(&self, owner: &Owner, query: &ListQuery) -> StoreResult<SessionPage> {
        let mut sql = String::from(
            "SELECT c.id, c.user_id, c.session_name, c.is_active, c.archived_at, c.context, \
             c.message_count, c.total_message_count, c.last_message_at, c.created_at, \
             c.updated_at FROM c WHERE c.doc_type = @type",
        );
        if query.is_active.is_some() {
            sql.push_str(" AND c.is_active = @active");
        }
        sql.push_str(" ORDER BY c.updated_at DESC");
        let mut cosmos_query = Query::from(sql)
            .with_parameter("@type", SESSION_DOC_TYPE)
            .map_err(store_error)?;
        if let Some(active) = query.is_active {
            cosmos_query = cosmos_query
                .with_parameter("@active", active)
                .map_err(store_error)?;
        }
        let limit = std::num::NonZeroU32::new(query.limit.clamp(1, 200)).expect("clamped above 0");
        let mut options =
            QueryOptions::default().with_max_item_count(MaxItemCountHint::Limit(limit));
        if let Some(token) = &query.continuation {
            let raw = URL_SAFE_NO_PAD
                .decode(token)
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                // Cosmos DB's tokens are printable ASCII and travel in a
                // header; anything else is not one we handed out.
                .filter(|raw| raw.bytes().all(|b| (0x20..0x7f).contains(&b)))
                .ok_or_else(invalid_continuation)?;
            options = options.with_continuation_token(ContinuationToken::from_string(raw));
        }
        let resumed = query.continuation.is_some();
        let bad_token = |e: CosmosError| {
            if resumed && matches!(status(&e), 400 | 500) {
                invalid_continuation()
            } else {
                store_error(e)
            }
        };
        let mut pages = self
            .container()?
            .query_items::<SessionSummary>(
                cosmos_query,
                FeedScope::partition(partition(owner.user_id())),
                Some(options),
            )
            .await
            .map_err(bad_token)?
            .into_pages();
        // One page is one request; Cosmos may hand back an empty page with a
        // continuation, so keep going until there is something to show.
        let mut sessions = Vec::new();
        let mut more = false;
        while let Some(page) = pages.try_next().await.map_err(bad_token)? {
            self.metrics
                .record(page.headers().request_charge().map(|c| c.value()));
            self.io(|| ItemIo::Query(json_len(&page.items())));
            more = page.headers().continuation().is_some();
            sessions.extend(page.into_items().into_iter().map(normalized));
            if !sessions.is_empty() || !more {
                break;
            }
        }
        let continuation = if more {
            let token = pages.to_continuation_token().map_err(store_error)?;
            Some(URL_SAFE_NO_PAD.encode(token.as_str()))
        } else {
            None
        };
        Ok(SessionPage {
            sessions,
            continuation,
        })
    }
}

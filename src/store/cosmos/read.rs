//! Reading sessions: point reads of session documents (conditional when the
//! caller knows a version) and listing pages as single-partition queries.
//! The messages of the current branch (the document and its sealed pages)
//! are read in `current`.

use azure_data_cosmos::{
    CosmosError, FeedScope, Query,
    feed::ContinuationToken,
    options::{ItemReadOptions, MaxItemCountHint, Precondition, QueryOptions},
};
use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use futures::TryStreamExt as _;
use serde_json::Value;

use super::{
    CosmosStore,
    cache::Known,
    documents::{SESSION_DOC_TYPE, SessionDoc, json_len, partition},
    errors::{etag_of, invalid_continuation, status, store_error, to_etag},
    metrics::{ItemIo, item_charge},
};
use crate::{
    domain::{SessionId, SessionSummary, UserId},
    store::{ETag, ListQuery, Owner, SessionPage, StoreError, StoreResult},
};

/// A listed session as documents older than `total_message_count` list it:
/// every message is on the current branch.
pub(super) fn normalized(mut summary: SessionSummary) -> SessionSummary {
    summary.total_message_count = summary.total_message_count.max(summary.message_count);
    summary
}

impl CosmosStore {
    /// The owner whose partition holds session `id`: the caller's own, or for
    /// an anonymous caller (local mode) whoever's it is, found with one
    /// cross-partition query.
    pub(super) async fn partition_of(
        &self,
        owner: &Owner,
        id: &SessionId,
    ) -> StoreResult<Option<UserId>> {
        if let Owner::User(user) = owner {
            return Ok(Some(user.clone()));
        }
        let query = Query::from(
            "SELECT VALUE { \"user_id\": c.user_id } FROM c WHERE c.id = @id AND c.doc_type = @type",
        )
        .with_parameter("@id", id.as_str())
        .and_then(|q| q.with_parameter("@type", SESSION_DOC_TYPE))
        .map_err(store_error)?;
        let mut pages = self
            .container()?
            .query_items::<Value>(query, FeedScope::full_container(), None)
            .await
            .map_err(store_error)?
            .into_pages();
        let mut owners = Vec::new();
        while let Some(page) = pages.try_next().await.map_err(store_error)? {
            self.metrics
                .record(page.headers().request_charge().map(|c| c.value()));
            self.io(|| ItemIo::Query(json_len(&page.items())));
            owners.extend(page.into_items());
        }
        if owners.len() > 1 {
            tracing::warn!(session_id = %id, "several users have a session with this id; using the first");
        }
        let first = owners.into_iter().next().ok_or(StoreError::NotFound)?;
        match first.get("user_id") {
            Some(Value::String(user)) => UserId::parse(user.clone())
                .map(Some)
                .map_err(|e| StoreError::Internal(e.into())),
            _ => Ok(None),
        }
    }

    /// The session document and its version; `None` when it is still
    /// `known`. Anything but a session document under this id is no session.
    pub(super) async fn read_doc(
        &self,
        user: Option<&UserId>,
        id: &SessionId,
        known: Option<&ETag>,
    ) -> StoreResult<Option<(SessionDoc, ETag)>> {
        let options = known.map(|etag| {
            ItemReadOptions::default().with_precondition(Precondition::if_none_match(to_etag(etag)))
        });
        let response = self
            .track(
                self.container()?
                    .read_item(partition(user), id.as_str(), options)
                    .await,
                item_charge,
            )
            .map_err(store_error)?;
        if u16::from(response.status().status_code()) == 304 {
            self.io(|| ItemIo::Read(0));
            return Ok(None);
        }
        let etag = etag_of(&response, "Cosmos DB read without an ETag")?;
        let doc: SessionDoc = self
            .decode_item(response, ItemIo::Read)
            .map_err(|e| StoreError::Internal(e.context("decoding a session document")))?;
        if doc.doc_type != SESSION_DOC_TYPE {
            return Err(StoreError::NotFound);
        }
        Ok(Some((doc.normalized(), etag)))
    }

    /// The session's document as it is now: an unconditional read, which
    /// always answers a document (or an error).
    pub(super) async fn read_current(
        &self,
        user: Option<&UserId>,
        id: &SessionId,
    ) -> StoreResult<(SessionDoc, ETag)> {
        self.read_doc(user, id, None).await?.ok_or_else(|| {
            StoreError::Internal(anyhow::anyhow!("unconditional read returned nothing"))
        })
    }

    /// Keeps what an append needs to know of version `etag` of `doc`, when
    /// that is all in the document (no sealed pages), so that the next
    /// append from this process needs no read. A version already remembered
    /// is not rebuilt (that would measure and hash the whole document again
    /// on every read).
    pub(super) fn remember(&self, user: Option<&UserId>, doc: &SessionDoc, etag: &ETag) {
        if doc.sealed_page_sizes.is_empty() {
            let key = (user.cloned(), doc.session.id.clone());
            if !self.versions.holds(&key, etag) {
                self.versions.put(&key, Known::of(doc, etag.clone(), None));
            }
        }
    }

    pub(super) async fn session_page(
        &self,
        owner: &Owner,
        query: &ListQuery,
    ) -> StoreResult<SessionPage> {
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

//! Fetching a session document: finding its partition, point reads
//! (conditional when the caller knows a version), and remembering the
//! version read for the next append. What the reads make of it is in `read`.

use azure_data_cosmos::{
    FeedScope, Query,
    options::{ItemReadOptions, Precondition},
};
use futures::TryStreamExt as _;
use serde_json::Value;

use super::{
    CosmosStore,
    cache::Known,
    documents::{SESSION_DOC_TYPE, SessionDoc, json_len, partition},
    errors::{etag_of, store_error, to_etag},
    metrics::{ItemIo, item_charge},
};
use crate::{
    domain::{SessionId, UserId},
    store::{ETag, Owner, StoreError, StoreResult},
};

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
}

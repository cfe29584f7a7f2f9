//! Writing a tree operation's [`Plan`]: one transactional batch in the
//! session's partition, the session document first and guarded by the ETag
//! of the version the operation read, so that either every document changes
//! or none does, and never over another writer's change.

use azure_data_cosmos::{
    TransactionalBatch,
    models::{BatchResponse, TransactionalBatchResponse},
    options::{BatchReplaceOptions, Precondition},
};

use super::{
    CosmosStore,
    cache::Known,
    documents::{SYSTEM_PROPERTY_BYTES, json_len, partition},
    errors::{store_error, to_etag},
    metrics::ItemIo,
    relayout::Plan,
};
use crate::{
    domain::UserId,
    store::{ETag, StoreError, StoreResult},
};

impl CosmosStore {
    /// Writes `plan` at once, if the session is still at version `etag`;
    /// returns the new version and remembers it for the next append.
    pub(super) async fn commit(
        &self,
        user: Option<&UserId>,
        plan: &Plan,
        etag: &ETag,
    ) -> StoreResult<ETag> {
        let session = plan.doc.session.id.to_string();
        let guard =
            BatchReplaceOptions::default().with_precondition(Precondition::if_match(to_etag(etag)));
        let mut batch = TransactionalBatch::new(partition(user))
            .replace_item(session, &plan.doc, Some(guard))
            .map_err(store_error)?;
        for page in &plan.pages {
            batch = batch.upsert_item(page, None).map_err(store_error)?;
        }
        for id in plan.gone_pages.iter().chain(&plan.gone_branches) {
            batch = batch.delete_item(id.clone(), None);
        }
        for doc in &plan.branches {
            batch = batch.upsert_item(doc, None).map_err(store_error)?;
        }
        let key = (user.cloned(), plan.doc.session.id.clone());
        let results = self
            .run_batch(batch, "a transactional batch of a branch change")
            .await?
            .inspect_err(|_| self.versions.forget(&key))?;
        self.io(|| ItemIo::Write(json_len(&plan.doc) + SYSTEM_PROPERTY_BYTES));
        for page in &plan.pages {
            self.io(|| ItemIo::Write(json_len(page) + SYSTEM_PROPERTY_BYTES));
        }
        for doc in &plan.branches {
            self.io(|| ItemIo::Write(json_len(doc) + SYSTEM_PROPERTY_BYTES));
        }
        for &bytes in &plan.gone_bytes {
            self.io(|| ItemIo::Write(bytes + SYSTEM_PROPERTY_BYTES));
        }
        let etag = results
            .results()
            .first()
            .and_then(|r| r.etag())
            .map(ETag::new)
            .ok_or_else(|| {
                StoreError::Internal(anyhow::anyhow!("a batch answer without an ETag"))
            })?;
        // What the next append needs: known when the document holds the
        // branch's end, or the newest page was read or written.
        self.versions.put(
            &key,
            Known::of(&plan.doc, etag.clone(), plan.newest_page.as_deref()),
        );
        Ok(etag)
    }

    /// Sends `batch` as one request, counting its charge; the answer's
    /// status is 200 when every operation was applied, and none was if not.
    pub(super) async fn send_batch(&self, batch: TransactionalBatch) -> StoreResult<BatchResponse> {
        self.track(
            self.container()?
                .execute_transactional_batch(batch, None)
                .await,
            |r| r.headers().request_charge().map(|c| c.value()),
        )
        .map_err(store_error)
    }

    /// Sends `batch` and decodes its answer. The outer error is one of
    /// sending or decoding; the inner one says the batch was refused as a
    /// whole: [`StoreError::PreconditionFailed`] when an ETag check failed,
    /// else an internal error naming `what` and the operations' codes.
    pub(super) async fn run_batch(
        &self,
        batch: TransactionalBatch,
        what: &str,
    ) -> StoreResult<StoreResult<TransactionalBatchResponse>> {
        let response = self.send_batch(batch).await?;
        let ok = u16::from(response.status().status_code()) == 200;
        let results = response.into_model().map_err(|e| {
            StoreError::Internal(anyhow::Error::new(e).context("decoding a batch answer"))
        })?;
        if ok {
            return Ok(Ok(results));
        }
        let codes: Vec<u16> = results.results().iter().map(|r| r.status_code()).collect();
        Ok(Err(if codes.contains(&412) {
            StoreError::PreconditionFailed
        } else {
            StoreError::Internal(anyhow::anyhow!("{what} failed: {codes:?}"))
        }))
    }
}

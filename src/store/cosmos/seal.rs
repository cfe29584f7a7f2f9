//! Long sessions: when a session document would outgrow the policy, its
//! oldest messages move into sealed pages (immutable documents beside it),
//! atomically with the document; reads put them back in front.

use azure_data_cosmos::options::Precondition;

use super::{
    CosmosStore,
    documents::{PageDoc, SessionDoc, json_len, page_id, partition},
    errors::{store_error, to_etag},
    metrics::item_charge,
};
use crate::{
    domain::{SessionId, UserId},
    store::{ETag, StoreError, StoreResult},
};

/// When a session document is split: before it would pass `max_bytes`
/// (default 512 KiB, well under Cosmos' 2 MB item limit) or hold more than
/// `max_messages` messages, its oldest messages move into a sealed page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SealPolicy {
    /// Largest session document, in bytes (16 KiB – 1 MiB).
    pub max_bytes: usize,
    /// Most messages in the session document, if limited.
    pub max_messages: Option<usize>,
}

impl Default for SealPolicy {
    fn default() -> Self {
        Self {
            max_bytes: 512 * 1024,
            max_messages: None,
        }
    }
}

/// Room kept for Cosmos' system properties and the counters a patch adds.
const DOC_MARGIN: usize = 512;

impl CosmosStore {
    /// The same store sealing pages by `policy` (clamped to 16 KiB – 1 MiB,
    /// so that a seal always fits one 2 MB transactional batch).
    pub fn with_seal_policy(mut self, policy: SealPolicy) -> Self {
        self.seal = SealPolicy {
            max_bytes: policy.max_bytes.clamp(16 * 1024, 1024 * 1024),
            max_messages: policy.max_messages.map(|m| m.max(2)),
        };
        self
    }

    /// Point-reads sealed pages `pages` of a session, in order.
    pub(super) async fn read_pages(
        &self,
        user: Option<&UserId>,
        id: &SessionId,
        pages: std::ops::Range<u32>,
    ) -> StoreResult<Vec<PageDoc>> {
        let mut out = Vec::with_capacity(pages.len());
        for page in pages {
            let response = self
                .track(
                    self.container
                        .read_item(partition(user), &page_id(id, page), None)
                        .await,
                    item_charge,
                )
                .map_err(|e| match store_error(e) {
                    StoreError::NotFound => StoreError::Internal(anyhow::anyhow!(
                        "sealed page {page} of session {id} is missing"
                    )),
                    other => other,
                })?;
            out.push(response.into_model().map_err(|e| {
                StoreError::Internal(anyhow::Error::new(e).context("decoding a sealed page"))
            })?);
        }
        Ok(out)
    }

    /// Whether adding `extra` (bytes, messages) to `doc` passes the policy.
    pub(super) fn over(&self, doc: &SessionDoc, extra_bytes: usize, extra_messages: usize) -> bool {
        !doc.session.messages.is_empty()
            && (json_len(doc) + extra_bytes + DOC_MARGIN > self.seal.max_bytes
                || self
                    .seal
                    .max_messages
                    .is_some_and(|m| doc.session.messages.len() + extra_messages > m))
    }

    /// Moves the oldest messages of `doc` into a new sealed page, atomically
    /// with the document (one transactional batch guarded by `etag`): no
    /// message is ever lost or in two places. The newest messages that fit
    /// in half the threshold stay, so seals are rare.
    pub(super) async fn seal(
        &self,
        user: Option<&UserId>,
        mut doc: SessionDoc,
        etag: &ETag,
    ) -> StoreResult<()> {
        let messages = std::mem::take(&mut doc.session.messages);
        let mut keep_bytes = 0;
        let mut keep = 0;
        for message in messages.iter().rev() {
            let len = json_len(message) + 1;
            if keep_bytes + len > self.seal.max_bytes / 2
                || self.seal.max_messages.is_some_and(|m| keep + 1 > m / 2)
            {
                break;
            }
            keep_bytes += len;
            keep += 1;
        }
        let keep = keep.min(messages.len() - 1);
        let mut sealed = messages;
        let kept = sealed.split_off(sealed.len() - keep);
        let page = doc.sealed_page_sizes.len() as u32;
        let page_doc = PageDoc::sealed(&doc.session.id, doc.session.user_id.clone(), page, sealed);
        doc.sealed_page_sizes.push(page_doc.messages.len() as u32);
        doc.session.messages = kept;
        let session_id = doc.session.id.to_string();
        let batch = azure_data_cosmos::TransactionalBatch::new(partition(user))
            // Upsert: a page left over from a deleted session of the same id
            // is replaced, and a concurrent sealer's page is rolled back with
            // its batch when its ETag check fails.
            .upsert_item(&page_doc, None)
            .and_then(|b| {
                b.replace_item(
                    session_id,
                    &doc,
                    Some(
                        azure_data_cosmos::options::BatchReplaceOptions::default()
                            .with_precondition(Precondition::if_match(to_etag(etag))),
                    ),
                )
            })
            .map_err(store_error)?;
        let response = self
            .track(
                self.container
                    .execute_transactional_batch(batch, None)
                    .await,
                |r| r.headers().request_charge().map(|c| c.value()),
            )
            .map_err(store_error)?;
        if u16::from(response.status().status_code()) == 200 {
            return Ok(());
        }
        let results = response.into_model().map_err(|e| {
            StoreError::Internal(anyhow::Error::new(e).context("decoding a batch answer"))
        })?;
        if results.results().iter().any(|r| r.status_code() == 412) {
            Err(StoreError::PreconditionFailed)
        } else {
            let codes: Vec<u16> = results.results().iter().map(|r| r.status_code()).collect();
            Err(StoreError::Internal(anyhow::anyhow!(
                "sealing a page failed: {codes:?}"
            )))
        }
    }

    /// Deletes sealed pages, up to 100 per transactional batch (the batch
    /// limit); pages already gone are fine.
    pub(super) async fn delete_pages(
        &self,
        user: Option<&UserId>,
        id: &SessionId,
        pages: std::ops::Range<u32>,
    ) -> StoreResult<()> {
        let ids: Vec<String> = pages.map(|page| page_id(id, page)).collect();
        self.delete_ids(user, &ids).await.map(drop)
    }
}

//! Long sessions: when a session document would outgrow the policy, its
//! oldest messages move into sealed pages (immutable documents beside it),
//! atomically with the document; reads put them back in front.

use azure_data_cosmos::options::Precondition;
use futures::{StreamExt as _, TryStreamExt as _};

use super::{
    CosmosStore,
    cache::Known,
    documents::{PageDoc, SYSTEM_PROPERTY_BYTES, SessionDoc, json_len, page_id, partition},
    errors::{stale, store_error, to_etag},
    lineage::{Before, chain, unchain},
    metrics::{ItemIo, item_charge},
};
use crate::{
    domain::{ChatMessage, SessionId, UserId},
    store::{ETag, StoreError, StoreResult, leading_system},
};

/// When a session document is split, and how: before it would pass
/// `max_bytes` or hold more than `max_messages` messages, its oldest
/// messages, up to `page_bytes` of them, move into a sealed page. The
/// defaults come from the `cosmos_requests` bench (see docs/cosmos.md): an
/// append stays within about twice the old per-message model's insert, a
/// session of 50 typical messages is still one document, and the newest 50
/// messages are in the document and its newest page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SealPolicy {
    /// Largest session document, in bytes (16 KiB – 1 MiB).
    pub max_bytes: usize,
    /// Most bytes of messages one seal moves into a page (an eighth of
    /// `max_bytes` to all of it); the newer ones stay in the document.
    pub page_bytes: usize,
    /// Most messages in the session document, if limited (a seal then moves
    /// at most half of them).
    pub max_messages: Option<usize>,
}

impl Default for SealPolicy {
    fn default() -> Self {
        let max_bytes = 32 * 1024;
        Self {
            max_bytes,
            page_bytes: Self::page_bytes_for(max_bytes),
            max_messages: None,
        }
    }
}

/// Room kept for Cosmos' system properties and the counters a patch adds.
const DOC_MARGIN: usize = 512;

/// Sealed pages read at once by a read of several (a long session's full
/// read is one point read per page: reading a few at a time cuts its latency
/// and holds at most this many pages ahead of what is written out).
pub(super) const PAGE_READS_AT_ONCE: usize = 4;

impl SealPolicy {
    /// Smallest `max_bytes`: 16 KiB.
    pub const MIN_BYTES: usize = 16 * 1024;
    /// Largest `max_bytes`: 1 MiB, so that a seal (the page and the
    /// rewritten session) fits one 2 MB transactional batch.
    pub const MAX_BYTES: usize = 1024 * 1024;
    /// Fewest messages a document may be limited to.
    pub const MIN_MESSAGES: usize = 2;

    /// The page sizes allowed with documents of `max_bytes`: an eighth of
    /// them to all of them.
    pub fn page_bytes_range(max_bytes: usize) -> std::ops::RangeInclusive<usize> {
        max_bytes / 8..=max_bytes
    }

    /// The default page size for documents of `max_bytes`: fifteen
    /// sixteenths, so that a seal leaves the newest sixteenth (a few typical
    /// messages) in the document.
    pub fn page_bytes_for(max_bytes: usize) -> usize {
        max_bytes - max_bytes / 16
    }

    /// The policy held to its bounds: 16 KiB – 1 MiB documents, so that a
    /// seal always fits one 2 MB transactional batch; pages of at least an
    /// eighth of that.
    pub fn clamped(self) -> Self {
        let max_bytes = self.max_bytes.clamp(Self::MIN_BYTES, Self::MAX_BYTES);
        let pages = Self::page_bytes_range(max_bytes);
        Self {
            max_bytes,
            page_bytes: self.page_bytes.clamp(*pages.start(), *pages.end()),
            max_messages: self.max_messages.map(|m| m.max(Self::MIN_MESSAGES)),
        }
    }

    /// Whether a document of `doc_len` bytes holding `messages` messages
    /// passes the policy once `extra_bytes` and `extra_messages` are added.
    pub(super) fn over(
        &self,
        doc_len: usize,
        messages: usize,
        extra_bytes: usize,
        extra_messages: usize,
    ) -> bool {
        messages > 0
            && (doc_len + extra_bytes + DOC_MARGIN > self.max_bytes
                || self
                    .max_messages
                    .is_some_and(|m| messages + extra_messages > m))
    }

    /// Most messages one page takes.
    fn page_messages(&self) -> usize {
        self.max_messages.map_or(usize::MAX, |m| m - m / 2)
    }

    /// How many of `messages` the next page takes: from the first given
    /// (the oldest, or the newest when filling pages backwards), up to
    /// `page_bytes`, at least one.
    pub(super) fn page_len<'a>(&self, messages: impl Iterator<Item = &'a ChatMessage>) -> usize {
        fitting(messages, self.page_bytes, self.page_messages())
    }

    /// How many of the newest of `messages` a new session document keeps
    /// (the migration's import): as many as a seal would leave, at least one.
    pub(super) fn kept_len(&self, messages: &[ChatMessage]) -> usize {
        let room = self.max_bytes.saturating_sub(self.page_bytes);
        let most = self.max_messages.map_or(usize::MAX, |m| m / 2);
        fitting(messages.iter().rev(), room, most)
    }
}

/// How many of `messages`, in the order given, fit in `bytes` and `count`;
/// at least one, if there is one.
fn fitting<'a>(
    messages: impl Iterator<Item = &'a ChatMessage>,
    bytes: usize,
    count: usize,
) -> usize {
    let mut used = 0;
    let mut fit = 0;
    let mut any = false;
    for message in messages.take(count.max(1)) {
        any = true;
        used += json_len(message) + 1;
        if used > bytes {
            break;
        }
        fit += 1;
    }
    fit.max(usize::from(any))
}

impl CosmosStore {
    /// The same store sealing pages by `policy` ([clamped](SealPolicy::clamped)).
    pub fn with_seal_policy(mut self, policy: SealPolicy) -> Self {
        self.seal = policy.clamped();
        self
    }

    /// Point-reads sealed pages `pages` of a session whose document has
    /// layout `layout`, in order.
    pub(super) async fn read_pages(
        &self,
        user: Option<&UserId>,
        id: &SessionId,
        pages: std::ops::Range<u32>,
        layout: u64,
    ) -> StoreResult<Vec<PageDoc>> {
        futures::stream::iter(pages)
            .map(|page| self.read_page(user, id, page, layout))
            .buffered(PAGE_READS_AT_ONCE)
            .try_collect()
            .await
    }

    /// Point-reads sealed page `page` of a session whose document has layout
    /// `layout`. A page that is gone, or was written under a later layout,
    /// belongs to a later version of the session: the read is
    /// [stale](super::errors::Stale).
    pub(super) async fn read_page(
        &self,
        user: Option<&UserId>,
        id: &SessionId,
        page: u32,
        layout: u64,
    ) -> StoreResult<PageDoc> {
        let response = self
            .track(
                self.container()?
                    .read_item(partition(user), &page_id(id, page), None)
                    .await,
                item_charge,
            )
            .map_err(|e| match store_error(e) {
                StoreError::NotFound => stale(),
                other => other,
            })?;
        let read: PageDoc = self
            .decode_item(response, ItemIo::Read)
            .map_err(|e| StoreError::Internal(e.context("decoding a sealed page")))?;
        if read.layout > layout {
            return Err(stale());
        }
        Ok(read)
    }

    /// Moves the oldest messages of `doc` into a new sealed page, atomically
    /// with the document (one transactional batch guarded by `etag`): no
    /// message is ever lost or in two places. Returns the new version, as
    /// far as an append needs it.
    pub(super) async fn seal(
        &self,
        user: Option<&UserId>,
        mut doc: SessionDoc,
        etag: &ETag,
    ) -> StoreResult<Option<Known>> {
        let mut sealed = std::mem::take(&mut doc.session.messages);
        // Measured as stored (the parent implied), then parents written out
        // while the messages are together: the first one kept still names
        // the last one sealed.
        let take = self.seal.page_len(sealed.iter());
        chain(&mut sealed, Before::at(doc.sealed()));
        let mut kept = sealed.split_off(take);
        unchain(&mut sealed);
        unchain(&mut kept);
        let page = doc.sealed_page_sizes.len() as u32;
        let page_doc = PageDoc::sealed(
            &doc.session.id,
            doc.session.user_id.clone(),
            page,
            sealed,
            doc.layout,
        );
        if page == 0 {
            let leading = leading_system(page_doc.messages.iter());
            // Only when the run ends inside page 0 is it the whole prefix.
            doc.system_prefix = (leading.len() < page_doc.messages.len()).then_some(leading);
        }
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
        let results = self.run_batch(batch, "sealing a page").await??;
        self.io(|| ItemIo::Write(json_len(&page_doc) + SYSTEM_PROPERTY_BYTES));
        self.io(|| ItemIo::Write(json_len(&doc) + SYSTEM_PROPERTY_BYTES));
        let etag = results.results().get(1).and_then(|r| r.etag());
        Ok(etag.and_then(|etag| Known::of(&doc, ETag::new(etag), Some(&page_doc.messages))))
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

//! The production store: Azure Cosmos DB for NoSQL through the official SDK.
//!
//! One document per session, exactly the seed's JSON plus a `doc_type`
//! discriminator, in a container partitioned by `/user_id` (sessions without
//! an owner live in the `null` partition).
//!
//! Request budget: a read is one point read (with `If-None-Match` when the
//! caller knows a version: a 304 costs no transfer); a listing page is one
//! single-partition query that leaves `messages` out; an update is one
//! server-side patch; an append is a read plus a server-side patch guarded by
//! the read's ETag, repeated with jittered backoff only when another writer got
//! in between. Only local mode without a user (`Owner::Anonymous`) needs one
//! extra cross-partition query to find a session's partition.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::Context as _;
use async_trait::async_trait;
use azure_core::http::Etag;
use azure_data_cosmos::{
    ContainerClient, CosmosClient, CosmosError, FeedScope, PartitionKey, Query,
    feed::ContinuationToken,
    models::{CosmosNumber, ItemResponse, PatchInstructions, PatchOperation},
    options::{
        ContentResponseOnWrite, ItemReadOptions, ItemWriteOptions, MaxItemCountHint,
        OperationOptionsBuilder, PatchItemOptions, PatchStrategy, Precondition, QueryOptions,
    },
};
use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use futures::{StreamExt as _, TryStreamExt as _};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{
    Appended, ETag, ImportOutcome, ListQuery, MessagePage, MessageQuery, MigrationStore, Owner,
    SessionImport, SessionPage, SessionRead, SessionStore, StoreError, StoreResult, Versioned,
};
use crate::domain::{
    ChatMessage, ChatSession, MessageId, NewMessage, NewSession, SessionId, SessionPatch,
    SessionSummary, Timestamp, UserId, ValidationError,
};

/// `doc_type` of session documents.
pub const SESSION_DOC_TYPE: &str = "session";

/// How long an append keeps retrying against concurrent writers before it
/// answers "unavailable" (the API then says 503 with Retry-After).
const APPEND_DEADLINE: Duration = Duration::from_secs(30);

/// A session as stored: the seed's document plus the discriminator and,
/// once the session outgrew one document, the sizes of its sealed pages.
/// `messages` then holds the newest messages only; `message_count` and
/// `last_message_at` always describe the whole session.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct SessionDoc {
    #[serde(flatten)]
    session: ChatSession,
    doc_type: String,
    /// Messages in sealed page 0, 1, …: the oldest ones, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    sealed_page_sizes: Vec<u32>,
}

impl SessionDoc {
    fn sealed(&self) -> u64 {
        self.sealed_page_sizes.iter().map(|&n| u64::from(n)).sum()
    }
}

/// `doc_type` of sealed message pages.
pub const PAGE_DOC_TYPE: &str = "session_page";

/// The oldest messages of a long session, moved out of its document. Never
/// changed after it is written; its id is derived from the session's id and
/// the page number ('~' is not allowed in session ids, so ids cannot clash),
/// so reading a page is a point read.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct PageDoc {
    id: String,
    user_id: Option<UserId>,
    doc_type: String,
    session_id: SessionId,
    page: u32,
    messages: Vec<ChatMessage>,
}

fn page_id(session: &SessionId, page: u32) -> String {
    format!("{session}~{page:06}")
}

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

fn json_len<T: Serialize>(value: &T) -> usize {
    serde_json::to_vec(value).map_or(usize::MAX, |v| v.len())
}

/// `doc_type` of migration checkpoints.
pub const CHECKPOINT_DOC_TYPE: &str = "migration_checkpoint";
/// The partition (`user_id` value) that holds migration checkpoints; session
/// queries filter on `doc_type`, so no user ever sees them.
const CHECKPOINT_PARTITION: &str = "__chat_sessions_migration__";

fn checkpoint_id(run_id: &str) -> String {
    format!("migration_checkpoint:{run_id}")
}

/// A migration run's state, kept beside the sessions.
#[derive(Debug, Serialize, Deserialize)]
struct CheckpointDoc {
    id: String,
    user_id: String,
    doc_type: String,
    state: String,
}

/// Requests sent and request units charged, for benchmarks and logs.
#[derive(Debug, Default)]
pub struct Metrics {
    requests: AtomicU64,
    /// Request units × 100, so that they can be added atomically.
    centi_ru: AtomicU64,
}

/// A reading of [`Metrics`].
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct MetricsSnapshot {
    /// Requests sent to Cosmos DB.
    pub requests: u64,
    /// Request units charged.
    pub request_units: f64,
}

impl std::ops::Sub for MetricsSnapshot {
    type Output = Self;

    fn sub(self, earlier: Self) -> Self {
        Self {
            requests: self.requests - earlier.requests,
            request_units: self.request_units - earlier.request_units,
        }
    }
}

impl Metrics {
    fn record(&self, request_units: Option<f64>) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        let centi = (request_units.unwrap_or(0.0) * 100.0).round() as u64;
        self.centi_ru.fetch_add(centi, Ordering::Relaxed);
    }

    fn snapshot(&self) -> MetricsSnapshot {
        MetricsSnapshot {
            requests: self.requests.load(Ordering::Relaxed),
            request_units: self.centi_ru.load(Ordering::Relaxed) as f64 / 100.0,
        }
    }
}

/// The Cosmos DB store over one sessions container.
#[derive(Clone)]
pub struct CosmosStore {
    container: ContainerClient,
    metrics: Arc<Metrics>,
    seal: SealPolicy,
}

impl std::fmt::Debug for CosmosStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CosmosStore").finish_non_exhaustive()
    }
}

fn partition(user: Option<&UserId>) -> PartitionKey {
    match user {
        Some(user) => PartitionKey::from(user.as_str().to_owned()),
        None => PartitionKey::from(PartitionKey::NULL),
    }
}

fn status(e: &CosmosError) -> u16 {
    u16::from(e.status().status_code())
}

fn error_charge(e: &CosmosError) -> Option<f64> {
    e.response()
        .and_then(|r| r.headers().request_charge)
        .map(|c| c.value())
}

/// Maps an SDK error to the store's. Throttling, timeouts and unavailability
/// (after the SDK's own retries) are worth retrying later; anything else is
/// internal and its text goes to the log only.
fn store_error(e: CosmosError) -> StoreError {
    let s = e.status();
    if s.is_not_found() || status(&e) == 404 {
        StoreError::NotFound
    } else if s.is_conflict() {
        StoreError::Conflict("a session with this id already exists".into())
    } else if s.is_precondition_failed() {
        StoreError::PreconditionFailed
    } else if s.is_throttled() || s.is_timeout() || s.is_transient() || status(&e) == 503 {
        tracing::warn!(status = status(&e), "Cosmos DB unavailable: {e}");
        StoreError::Unavailable { retry_after: None }
    } else {
        StoreError::Internal(anyhow::Error::new(e).context("Cosmos DB"))
    }
}

fn to_etag(etag: &ETag) -> Etag {
    Etag::from(etag.as_str().to_owned())
}

fn invalid_continuation() -> StoreError {
    StoreError::Invalid(ValidationError::new(
        "continuation_token",
        "is not a token this service returned for this query",
    ))
}

impl CosmosStore {
    /// The store over `container` of `database`, through `client`.
    pub async fn open(
        client: &CosmosClient,
        database: &str,
        container: &str,
    ) -> anyhow::Result<Self> {
        let container = client
            .database_client(database)
            .container_client(container, None)
            .await
            .with_context(|| format!("opening Cosmos DB container {database}/{container}"))?;
        Ok(Self {
            container,
            metrics: Arc::default(),
            seal: SealPolicy::default(),
        })
    }

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
    async fn read_pages(
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

    /// Every message of the session: its sealed pages, then its document.
    async fn whole(&self, user: Option<&UserId>, doc: SessionDoc) -> StoreResult<ChatSession> {
        let mut session = doc.session;
        if !doc.sealed_page_sizes.is_empty() {
            let pages = self
                .read_pages(user, &session.id, 0..doc.sealed_page_sizes.len() as u32)
                .await?;
            let mut messages: Vec<ChatMessage> =
                pages.into_iter().flat_map(|p| p.messages).collect();
            messages.append(&mut session.messages);
            session.messages = messages;
        }
        Ok(session)
    }

    /// Whether adding `extra` (bytes, messages) to `doc` passes the policy.
    fn over(&self, doc: &SessionDoc, extra_bytes: usize, extra_messages: usize) -> bool {
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
    async fn seal(
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
        let page_doc = PageDoc {
            id: page_id(&doc.session.id, page),
            user_id: doc.session.user_id.clone(),
            doc_type: PAGE_DOC_TYPE.into(),
            session_id: doc.session.id.clone(),
            page,
            messages: sealed,
        };
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

    /// Requests and request units used so far.
    pub fn metrics(&self) -> MetricsSnapshot {
        self.metrics.snapshot()
    }

    /// The container (for tests and tools that inspect stored documents).
    pub fn container(&self) -> &ContainerClient {
        &self.container
    }

    fn track<T>(
        &self,
        result: azure_data_cosmos::Result<T>,
        charge: impl Fn(&T) -> Option<f64>,
    ) -> azure_data_cosmos::Result<T> {
        match &result {
            Ok(value) => self.metrics.record(charge(value)),
            Err(e) => self.metrics.record(error_charge(e)),
        }
        result
    }

    /// The owner whose partition holds session `id`: the caller's own, or for
    /// an anonymous caller (local mode) whoever's it is, found with one
    /// cross-partition query.
    async fn partition_of(&self, owner: &Owner, id: &SessionId) -> StoreResult<Option<UserId>> {
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
            .track(
                self.container
                    .query_items::<Value>(query, FeedScope::full_container(), None)
                    .await,
                |_| None,
            )
            .map_err(store_error)?
            .into_pages();
        let mut owners = Vec::new();
        while let Some(page) = pages.try_next().await.map_err(store_error)? {
            self.metrics
                .record(page.headers().request_charge().map(|c| c.value()));
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

    async fn read_doc(
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
                self.container
                    .read_item(partition(user), id.as_str(), options)
                    .await,
                item_charge,
            )
            .map_err(store_error)?;
        if u16::from(response.status().status_code()) == 304 {
            return Ok(None);
        }
        let etag = etag_of(&response, "Cosmos DB read without an ETag")?;
        let doc: SessionDoc = response.into_model().map_err(|e| {
            StoreError::Internal(anyhow::Error::new(e).context("decoding a session document"))
        })?;
        if doc.doc_type != SESSION_DOC_TYPE {
            return Err(StoreError::NotFound);
        }
        Ok(Some((doc, etag)))
    }

    /// One server-side patch. The SDK's default strategy would read and
    /// replace on the client and write bookkeeping into the document. With
    /// `post_image` false the answer carries no body (an append only needs
    /// the new ETag, not the whole session back).
    async fn patch(
        &self,
        user: Option<&UserId>,
        id: &SessionId,
        operations: Vec<PatchOperation>,
        if_match: Option<&ETag>,
        post_image: bool,
    ) -> StoreResult<ItemResponse> {
        let mut instructions = PatchInstructions::new();
        for op in operations {
            instructions = instructions.with_operation(op);
        }
        let mut options = PatchItemOptions::default().with_strategy(PatchStrategy::ServerSide);
        if let Some(etag) = if_match {
            options = options.with_precondition(Precondition::if_match(to_etag(etag)));
        }
        if !post_image {
            options = options.with_operation_options(
                OperationOptionsBuilder::new()
                    .with_content_response_on_write(ContentResponseOnWrite::Disabled)
                    .build(),
            );
        }
        self.track(
            self.container
                .patch_item(partition(user), id.as_str(), instructions, Some(options))
                .await,
            item_charge,
        )
        .map_err(store_error)
    }
}

/// Ids of the messages in a session's sealed pages, read so far by an import.
#[derive(Default)]
struct SealedIds {
    ids: std::collections::HashSet<MessageId>,
    pages: u32,
}

/// The request charge of a point operation, for [`Metrics`].
fn item_charge(response: &ItemResponse) -> Option<f64> {
    response.headers().request_charge().map(|c| c.value())
}

/// The ETag of a response; its absence is a fault of the server.
fn etag_of(response: &ItemResponse, what: &str) -> StoreResult<ETag> {
    response
        .headers()
        .etag()
        .map(|e| ETag::new(e.to_string()))
        .ok_or_else(|| StoreError::Internal(anyhow::anyhow!("{what}")))
}

fn json_of<T: Serialize>(value: &T) -> StoreResult<Value> {
    serde_json::to_value(value).map_err(|e| StoreError::Internal(e.into()))
}

/// Exponential backoff with full jitter, capped at half a second.
fn backoff(attempt: u32) -> Duration {
    let cap_ms = (5u64 << attempt.min(7)).min(500);
    Duration::from_millis(rand::random_range(0..=cap_ms))
}

#[async_trait]
impl SessionStore for CosmosStore {
    fn kind(&self) -> &'static str {
        "cosmos"
    }

    async fn create_session(&self, new: NewSession) -> StoreResult<Versioned<ChatSession>> {
        let now = Timestamp::now();
        let doc = SessionDoc {
            session: new.into_session(now),
            doc_type: SESSION_DOC_TYPE.into(),
            sealed_page_sizes: Vec::new(),
        };
        let response = self
            .track(
                self.container
                    .create_item(
                        partition(doc.session.user_id.as_ref()),
                        doc.session.id.as_str(),
                        &doc,
                        None,
                    )
                    .await,
                item_charge,
            )
            .map_err(|e| match store_error(e) {
                StoreError::Conflict(_) => StoreError::Conflict(format!(
                    "a session with id {} already exists",
                    doc.session.id
                )),
                other => other,
            })?;
        let etag = etag_of(&response, "Cosmos DB create without an ETag")?;
        Ok(Versioned {
            value: doc.session,
            etag,
        })
    }

    async fn get_session_if_changed(
        &self,
        owner: &Owner,
        id: &SessionId,
        known: Option<&ETag>,
    ) -> StoreResult<Option<Versioned<ChatSession>>> {
        let user = self.partition_of(owner, id).await?;
        let Some((doc, etag)) = self.read_doc(user.as_ref(), id, known).await? else {
            return Ok(None);
        };
        Ok(Some(Versioned {
            value: self.whole(user.as_ref(), doc).await?,
            etag,
        }))
    }

    async fn read_session(
        &self,
        owner: &Owner,
        id: &SessionId,
        known: Option<&ETag>,
    ) -> StoreResult<Option<SessionRead>> {
        let user = self.partition_of(owner, id).await?;
        let Some((doc, etag)) = self.read_doc(user.as_ref(), id, known).await? else {
            return Ok(None);
        };
        // The pages, one point read each, only when the stream gets to them.
        let pages = doc.sealed_page_sizes.len() as u32;
        let older = (pages > 0).then(|| {
            let (store, id) = (self.clone(), id.clone());
            futures::stream::iter(0..pages)
                .then(move |page| {
                    let (store, user, id) = (store.clone(), user.clone(), id.clone());
                    async move {
                        let mut read = store.read_pages(user.as_ref(), &id, page..page + 1).await?;
                        Ok(read.remove(0).messages)
                    }
                })
                .boxed()
        });
        Ok(Some(SessionRead {
            summary: doc.session.summary(),
            etag,
            newest: doc.session.messages,
            older,
        }))
    }

    async fn get_session_tail(
        &self,
        owner: &Owner,
        id: &SessionId,
        limit: u32,
    ) -> StoreResult<Versioned<ChatSession>> {
        let user = self.partition_of(owner, id).await?;
        let (doc, etag) = self
            .read_doc(user.as_ref(), id, None)
            .await?
            .ok_or_else(|| {
                StoreError::Internal(anyhow::anyhow!("unconditional read returned nothing"))
            })?;
        let limit = limit as usize;
        let mut messages = doc.session.messages.clone();
        // Older messages only when the document does not hold enough.
        let mut page = doc.sealed_page_sizes.len() as u32;
        while messages.len() < limit && page > 0 {
            page -= 1;
            let mut older = self
                .read_pages(user.as_ref(), id, page..page + 1)
                .await?
                .remove(0)
                .messages;
            older.append(&mut messages);
            messages = older;
        }
        let keep = messages.len().min(limit);
        messages.drain(..messages.len() - keep);
        let mut session = doc.session;
        session.messages = messages;
        Ok(Versioned {
            value: session,
            etag,
        })
    }

    async fn list_messages(
        &self,
        owner: &Owner,
        id: &SessionId,
        query: MessageQuery,
    ) -> StoreResult<MessagePage> {
        let user = self.partition_of(owner, id).await?;
        let (doc, _) = self
            .read_doc(user.as_ref(), id, None)
            .await?
            .ok_or_else(|| {
                StoreError::Internal(anyhow::anyhow!("unconditional read returned nothing"))
            })?;
        let sealed = doc.sealed();
        let total = sealed + doc.session.messages.len() as u64;
        let end = query.before.map_or(total, |b| b.min(total));
        let start = end.saturating_sub(u64::from(query.limit));
        // The pages that hold positions [start, end), then the document.
        let mut messages = Vec::new();
        let mut offset = 0u64;
        for (page, &size) in doc.sealed_page_sizes.iter().enumerate() {
            let (from, to) = (offset, offset + u64::from(size));
            offset = to;
            if to <= start || from >= end {
                continue;
            }
            let page = page as u32;
            let page_messages = self
                .read_pages(user.as_ref(), id, page..page + 1)
                .await?
                .remove(0)
                .messages;
            let lo = start.max(from) - from;
            let hi = end.min(to) - from;
            messages.extend_from_slice(&page_messages[lo as usize..hi as usize]);
        }
        if end > sealed {
            let lo = start.max(sealed) - sealed;
            let hi = end - sealed;
            messages.extend_from_slice(&doc.session.messages[lo as usize..hi as usize]);
        }
        messages.reverse();
        Ok(MessagePage {
            messages,
            next_before: (start > 0).then_some(start),
        })
    }

    async fn list_sessions(&self, owner: &Owner, query: &ListQuery) -> StoreResult<SessionPage> {
        let mut sql = String::from(
            "SELECT c.id, c.user_id, c.session_name, c.is_active, c.context, c.message_count, \
             c.last_message_at, c.created_at, c.updated_at FROM c WHERE c.doc_type = @type",
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
            .container
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
            more = page.headers().continuation().is_some();
            sessions.extend(page.into_items());
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

    async fn update_session(
        &self,
        owner: &Owner,
        id: &SessionId,
        patch: &SessionPatch,
        if_match: Option<&ETag>,
    ) -> StoreResult<Versioned<ChatSession>> {
        let user = self.partition_of(owner, id).await?;
        let mut operations = Vec::new();
        if let Some(name) = &patch.session_name {
            operations.push(PatchOperation::set("/session_name", json_of(name)?));
        }
        if let Some(active) = patch.is_active {
            operations.push(PatchOperation::set("/is_active", json!(active)));
        }
        if let Some(context) = &patch.context {
            operations.push(PatchOperation::set("/context", json_of(context)?));
        }
        operations.push(PatchOperation::set(
            "/updated_at",
            json_of(&Timestamp::now())?,
        ));
        let response = self
            .patch(user.as_ref(), id, operations, if_match, true)
            .await?;
        let etag = etag_of(&response, "Cosmos DB patch without an ETag")?;
        let doc: SessionDoc = response.into_model().map_err(|e| {
            StoreError::Internal(anyhow::Error::new(e).context("decoding a patched session"))
        })?;
        Ok(Versioned {
            value: self.whole(user.as_ref(), doc).await?,
            etag,
        })
    }

    async fn delete_session(
        &self,
        owner: &Owner,
        id: &SessionId,
        if_match: Option<&ETag>,
    ) -> StoreResult<()> {
        let user = self.partition_of(owner, id).await?;
        let user = user.as_ref();
        let started = Instant::now();
        let mut attempt = 0u32;
        // The document first (guarded by the version read, so no seal slips
        // in between unseen), then its pages.
        let pages = loop {
            let (doc, etag) = self.read_doc(user, id, None).await?.ok_or_else(|| {
                StoreError::Internal(anyhow::anyhow!("unconditional read returned nothing"))
            })?;
            if let Some(expected) = if_match
                && *expected != etag
            {
                return Err(StoreError::PreconditionFailed);
            }
            let options = ItemWriteOptions::default()
                .with_precondition(Precondition::if_match(to_etag(&etag)));
            let result = self
                .track(
                    self.container
                        .delete_item(partition(user), id.as_str(), Some(options))
                        .await,
                    item_charge,
                )
                .map_err(store_error);
            match result {
                Ok(_) => break doc.sealed_page_sizes.len() as u32,
                Err(StoreError::PreconditionFailed)
                    if if_match.is_none() && started.elapsed() < APPEND_DEADLINE =>
                {
                    tokio::time::sleep(backoff(attempt)).await;
                    attempt += 1;
                }
                Err(e) => return Err(e),
            }
        };
        self.delete_pages(user, id, 0..pages).await
    }

    async fn append_message(
        &self,
        owner: &Owner,
        id: &SessionId,
        message: NewMessage,
    ) -> StoreResult<Appended> {
        let user = self.partition_of(owner, id).await?;
        let user = user.as_ref();
        let started = Instant::now();
        let mut attempt = 0u32;
        let mut pages_seen: Option<u32> = None;
        loop {
            // Read to learn the version and whether this id is already there
            // (a retry), then append guarded by that version: a concurrent
            // writer makes the patch fail with 412 and this loop try again.
            let (doc, etag) = self.read_doc(user, id, None).await?.ok_or_else(|| {
                StoreError::Internal(anyhow::anyhow!("unconditional read returned nothing"))
            })?;
            let existing = match doc.session.messages.iter().find(|m| m.id == message.id) {
                Some(stored) => Some(stored.clone()),
                // A retry whose message was sealed since: only pages sealed
                // after the first look (or the newest one) can hold it.
                None => {
                    let pages = doc.sealed_page_sizes.len() as u32;
                    let from = pages_seen.unwrap_or(pages.saturating_sub(1));
                    pages_seen = Some(pages);
                    let mut found = None;
                    for page in self.read_pages(user, id, from.min(pages)..pages).await? {
                        found = found.or(page.messages.into_iter().find(|m| m.id == message.id));
                    }
                    found
                }
            };
            if let Some(stored) = existing {
                return Appended::replay(stored, &message, etag);
            }
            let now = doc
                .session
                .last_message_at
                .map_or_else(Timestamp::now, |last| Timestamp::now().max(last));
            let stored = ChatMessage {
                id: message.id.clone(),
                content: message.content.clone(),
                message_type: message.message_type,
                user_id: message.user_id.clone().or(doc.session.user_id.clone()),
                metadata: message.metadata.clone(),
                created_at: now,
            };
            let result = if self.over(&doc, json_len(&stored) + 1, 1) {
                // Make room first; the next round appends.
                self.seal(user, doc, &etag).await.map(|()| None)
            } else {
                let operations = vec![
                    PatchOperation::add("/messages/-", json_of(&stored)?),
                    PatchOperation::increment("/message_count", CosmosNumber::from(1i64)),
                    PatchOperation::set("/last_message_at", json_of(&now)?),
                    PatchOperation::set("/updated_at", json_of(&now.max(doc.session.updated_at))?),
                ];
                self.patch(user, id, operations, Some(&etag), false)
                    .await
                    .and_then(|response| {
                        etag_of(&response, "Cosmos DB patch without an ETag").map(Some)
                    })
            };
            match result {
                Ok(Some(etag)) => {
                    return Ok(Appended {
                        message: stored,
                        created: true,
                        etag,
                    });
                }
                Ok(None) => {}
                // Lost a race, or an ambiguous failure: the next read tells
                // whether the message is in, so nothing is appended twice.
                Err(StoreError::PreconditionFailed | StoreError::Unavailable { .. })
                    if started.elapsed() < APPEND_DEADLINE =>
                {
                    tokio::time::sleep(backoff(attempt)).await;
                    attempt += 1;
                }
                Err(StoreError::PreconditionFailed) => {
                    return Err(StoreError::Unavailable {
                        retry_after: Some(Duration::from_secs(1)),
                    });
                }
                Err(e) => return Err(e),
            }
        }
    }
}

#[async_trait]
impl MigrationStore for CosmosStore {
    async fn import_messages(&self, import: SessionImport) -> StoreResult<ImportOutcome> {
        if import.messages.is_empty() {
            return Ok(ImportOutcome::default());
        }
        // A session with this id under another owner lives in another
        // partition: only a query by id can see it.
        match self.partition_of(&Owner::Anonymous, &import.id).await {
            Ok(owner) if owner != import.user_id => {
                return Err(StoreError::Conflict(format!(
                    "session {} exists with another owner",
                    import.id
                )));
            }
            Ok(_) | Err(StoreError::NotFound) => {}
            Err(e) => return Err(e),
        }
        let user = import.user_id.as_ref();
        let started = Instant::now();
        let mut attempt = 0u32;
        let mut outcome = ImportOutcome::default();
        let mut sealed = SealedIds::default();
        loop {
            let step = match self.read_doc(user, &import.id, None).await {
                Err(StoreError::NotFound) => self.import_new(&import).await.map(|created| {
                    outcome = created;
                    true
                }),
                Err(e) => return Err(e),
                Ok(None) => unreachable!("an unconditional read always returns the document"),
                Ok(Some((doc, etag))) => {
                    self.import_step(user, &import, doc, &etag, &mut outcome, &mut sealed)
                        .await
                }
            };
            match step {
                Ok(true) => return Ok(outcome),
                Ok(false) => {}
                // Someone wrote in between (an append, a seal, another
                // importer): read again and merge into the newer version.
                Err(StoreError::PreconditionFailed | StoreError::Conflict(_))
                    if started.elapsed() < APPEND_DEADLINE =>
                {
                    tokio::time::sleep(backoff(attempt)).await;
                    attempt += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }

    async fn load_checkpoint(&self, run_id: &str) -> StoreResult<Option<Versioned<String>>> {
        let response = self.track(
            self.container
                .read_item(CHECKPOINT_PARTITION, &checkpoint_id(run_id), None)
                .await,
            item_charge,
        );
        match response.map_err(store_error) {
            Err(StoreError::NotFound) => Ok(None),
            Err(e) => Err(e),
            Ok(response) => {
                let etag = etag_of(&response, "checkpoint without an ETag")?;
                let doc: CheckpointDoc = response.into_model().map_err(|e| {
                    StoreError::Internal(anyhow::Error::new(e).context("decoding a checkpoint"))
                })?;
                Ok(Some(Versioned {
                    value: doc.state,
                    etag,
                }))
            }
        }
    }

    async fn save_checkpoint(
        &self,
        run_id: &str,
        state: &str,
        expected: Option<&ETag>,
    ) -> StoreResult<ETag> {
        let id = checkpoint_id(run_id);
        let doc = CheckpointDoc {
            id: id.clone(),
            user_id: CHECKPOINT_PARTITION.into(),
            doc_type: CHECKPOINT_DOC_TYPE.into(),
            state: state.to_owned(),
        };
        let response = match expected {
            None => self.track(
                self.container
                    .create_item(CHECKPOINT_PARTITION, &id, &doc, None)
                    .await,
                item_charge,
            ),
            Some(etag) => self.track(
                self.container
                    .replace_item(
                        CHECKPOINT_PARTITION,
                        &id,
                        &doc,
                        Some(
                            ItemWriteOptions::default()
                                .with_precondition(Precondition::if_match(to_etag(etag))),
                        ),
                    )
                    .await,
                item_charge,
            ),
        };
        let response = response.map_err(|e| match store_error(e) {
            StoreError::Conflict(_) | StoreError::NotFound => StoreError::PreconditionFailed,
            other => other,
        })?;
        etag_of(&response, "checkpoint write without an ETag")
    }
}

impl CosmosStore {
    /// Deletes sealed pages, up to 100 per transactional batch (the batch
    /// limit); pages already gone are fine.
    async fn delete_pages(
        &self,
        user: Option<&UserId>,
        id: &SessionId,
        pages: std::ops::Range<u32>,
    ) -> StoreResult<()> {
        let all: Vec<u32> = pages.collect();
        for chunk in all.chunks(100) {
            let mut batch = azure_data_cosmos::TransactionalBatch::new(partition(user));
            for &page in chunk {
                batch = batch.delete_item(page_id(id, page), None);
            }
            let response = self
                .track(
                    self.container
                        .execute_transactional_batch(batch, None)
                        .await,
                    |r| r.headers().request_charge().map(|c| c.value()),
                )
                .map_err(store_error)?;
            if u16::from(response.status().status_code()) != 200 {
                // One page was missing (an earlier, interrupted delete), which
                // fails the whole batch: delete these one by one.
                for &page in chunk {
                    match self
                        .track(
                            self.container
                                .delete_item(partition(user), &page_id(id, page), None)
                                .await,
                            item_charge,
                        )
                        .map_err(store_error)
                    {
                        Ok(_) | Err(StoreError::NotFound) => {}
                        Err(e) => return Err(e),
                    }
                }
            }
        }
        Ok(())
    }

    /// A session that does not exist yet, with all imported messages: the
    /// oldest in sealed pages when they would not fit, written before the
    /// document (no one appends to a session without a document).
    async fn import_new(&self, import: &SessionImport) -> StoreResult<ImportOutcome> {
        let user = import.user_id.as_ref();
        let first = import.messages[0].created_at;
        let last = import.messages[import.messages.len() - 1].created_at;
        let mut doc = SessionDoc {
            session: ChatSession {
                id: import.id.clone(),
                user_id: import.user_id.clone(),
                session_name: None,
                is_active: true,
                context: Default::default(),
                messages: Vec::new(),
                message_count: import.messages.len() as u64,
                last_message_at: Some(last),
                created_at: first,
                updated_at: last,
            },
            doc_type: SESSION_DOC_TYPE.into(),
            sealed_page_sizes: Vec::new(),
        };
        // The newest messages that fit in half the threshold stay in the
        // document (as after a seal); the older ones fill pages, oldest first.
        let all = &import.messages;
        let mut split = all.len();
        let mut tail_bytes = 0;
        for (i, message) in all.iter().enumerate().rev() {
            let len = json_len(message) + 1;
            if tail_bytes + len > self.seal.max_bytes / 2
                || self
                    .seal
                    .max_messages
                    .is_some_and(|m| all.len() - i > m / 2)
            {
                break;
            }
            tail_bytes += len;
            split = i;
        }
        let split = split.min(all.len() - 1);
        let mut pages: Vec<Vec<ChatMessage>> = Vec::new();
        let mut pending: Vec<ChatMessage> = Vec::new();
        let mut pending_bytes = 0;
        for message in &all[..split] {
            let len = json_len(message) + 1;
            let full = pending_bytes + len > self.seal.max_bytes / 2
                || self
                    .seal
                    .max_messages
                    .is_some_and(|m| pending.len() + 1 > m / 2);
            if full && !pending.is_empty() {
                pages.push(std::mem::take(&mut pending));
                pending_bytes = 0;
            }
            pending.push(message.clone());
            pending_bytes += len;
        }
        if !pending.is_empty() {
            pages.push(pending);
        }
        doc.session.messages = all[split..].to_vec();
        for (page, messages) in pages.into_iter().enumerate() {
            doc.sealed_page_sizes.push(messages.len() as u32);
            let page_doc = PageDoc {
                id: page_id(&import.id, page as u32),
                user_id: import.user_id.clone(),
                doc_type: PAGE_DOC_TYPE.into(),
                session_id: import.id.clone(),
                page: page as u32,
                messages,
            };
            self.track(
                self.container
                    .upsert_item(partition(user), &page_doc.id, &page_doc, None)
                    .await,
                item_charge,
            )
            .map_err(store_error)?;
        }
        self.track(
            self.container
                .create_item(partition(user), import.id.as_str(), &doc, None)
                .await,
            item_charge,
        )
        .map_err(store_error)?;
        Ok(ImportOutcome {
            created: true,
            added: import.messages.len() as u64,
            already_present: 0,
        })
    }

    /// One step of importing into an existing session: merges a slice of the
    /// missing messages into the document (sealing when it would outgrow the
    /// policy), guarded by `etag`. `Ok(true)` when nothing is missing any more.
    async fn import_step(
        &self,
        user: Option<&UserId>,
        import: &SessionImport,
        doc: SessionDoc,
        etag: &ETag,
        outcome: &mut ImportOutcome,
        sealed: &mut SealedIds,
    ) -> StoreResult<bool> {
        // Pages never change: only those sealed since the last step are read.
        let pages = doc.sealed_page_sizes.len() as u32;
        for page in self
            .read_pages(user, &import.id, sealed.pages..pages)
            .await?
        {
            sealed.ids.extend(page.messages.into_iter().map(|m| m.id));
        }
        sealed.pages = pages;
        let in_doc: std::collections::HashSet<&MessageId> =
            doc.session.messages.iter().map(|m| &m.id).collect();
        let missing: Vec<&ChatMessage> = import
            .messages
            .iter()
            .filter(|m| !sealed.ids.contains(&m.id) && !in_doc.contains(&m.id))
            .collect();
        if outcome.added == 0 && outcome.already_present == 0 {
            outcome.already_present = (import.messages.len() - missing.len()) as u64;
        }
        if missing.is_empty() {
            return Ok(true);
        }
        if self.over(&doc, 0, 0) {
            self.seal(user, doc, etag).await?;
            return Ok(false);
        }
        // As many as fit in a quarter of the threshold per step, so every
        // write stays far below the item and batch limits.
        let mut slice = Vec::new();
        let mut bytes = 0;
        for message in &missing {
            let len = json_len(*message) + 1;
            if !slice.is_empty() && bytes + len > self.seal.max_bytes / 4 {
                break;
            }
            slice.push((*message).clone());
            bytes += len;
        }
        let added = slice.len() as u64;
        let mut doc = doc;
        let session = &mut doc.session;
        // Stragglers join the document part; sealed pages never change.
        session.messages.extend(slice);
        session
            .messages
            .sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        session.message_count += added;
        let newest = session.messages.last().map(|m| m.created_at);
        session.last_message_at = session.last_message_at.max(newest);
        if let Some(newest) = session.last_message_at {
            session.updated_at = session.updated_at.max(newest);
        }
        let options =
            ItemWriteOptions::default().with_precondition(Precondition::if_match(to_etag(etag)));
        self.track(
            self.container
                .replace_item(partition(user), import.id.as_str(), &doc, Some(options))
                .await,
            item_charge,
        )
        .map_err(store_error)?;
        outcome.added += added;
        Ok(missing.len() as u64 == added)
    }
}

/// Where and how to reach Cosmos DB. The account key, when there is one, is
/// never printed (`Debug` leaves it out).
#[derive(Clone)]
pub struct CosmosConfig {
    /// `COSMOS_ENDPOINT`, e.g. `https://<account>.documents.azure.com:443/`.
    pub endpoint: String,
    /// `COSMOS_DATABASE` (default `chat`).
    pub database: String,
    /// `COSMOS_SESSIONS_CONTAINER` (default `chat_sessions`).
    pub sessions_container: String,
    /// `COSMOS_LEGACY_CONTAINER` (default `chat_messages`), read by the migration.
    pub legacy_container: String,
    /// `COSMOS_LEGACY_PARTITION_KEY` (default `/session_id`).
    pub legacy_partition_key: String,
    /// `COSMOS_KEY`: account-key auth, for local emulators only.
    pub key: Option<azure_core::credentials::Secret>,
    /// `AZURE_CLIENT_ID`: the user-assigned managed identity to use.
    pub client_id: Option<String>,
    /// `COSMOS_REGION` (default: the app's `REGION_NAME`, else East US): the
    /// region the SDK routes to first.
    pub region: String,
    /// `COSMOS_SEAL_MAX_BYTES` / `COSMOS_SEAL_MAX_MESSAGES`: when a session
    /// document moves its oldest messages into a sealed page.
    pub seal: SealPolicy,
}

impl std::fmt::Debug for CosmosConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CosmosConfig")
            .field("endpoint", &self.endpoint)
            .field("database", &self.database)
            .field("sessions_container", &self.sessions_container)
            .field("legacy_container", &self.legacy_container)
            .field("auth", &self.auth_kind())
            .field("region", &self.region)
            .field("seal", &self.seal)
            .finish()
    }
}

impl CosmosConfig {
    /// How the client authenticates, for logs.
    pub fn auth_kind(&self) -> &'static str {
        if self.key.is_some() {
            "account key (emulator)"
        } else if self.client_id.is_some() || std::env::var_os("IDENTITY_ENDPOINT").is_some() {
            "managed identity"
        } else {
            "developer tools (az / azd login)"
        }
    }
}

/// A client for the configured account: account key when given (emulators),
/// else managed identity in Azure (user-assigned with `AZURE_CLIENT_ID`),
/// else the developer's `az`/`azd` login. A plain-`http://` endpoint can only
/// be a local emulator (the SDK refuses it for anything but loopback), so
/// HTTP/2 and binary encoding, which emulators lack, are turned off for it.
pub async fn connect(config: &CosmosConfig) -> anyhow::Result<CosmosClient> {
    use azure_data_cosmos::{
        AccountEndpoint, AccountReference, CosmosRuntime, RoutingStrategy,
        options::{BinaryEncodingOptions, ConnectionPoolOptions, Region},
    };
    let endpoint: AccountEndpoint = config.endpoint.parse().with_context(|| {
        format!(
            "COSMOS_ENDPOINT {:?} is not a valid endpoint",
            config.endpoint
        )
    })?;
    let account = match &config.key {
        Some(key) => AccountReference::with_authentication_key(endpoint, key.clone()),
        None => {
            let credential: Arc<dyn azure_core::credentials::TokenCredential> =
                if config.client_id.is_some() || std::env::var_os("IDENTITY_ENDPOINT").is_some() {
                    azure_identity::ManagedIdentityCredential::new(Some(
                        azure_identity::ManagedIdentityCredentialOptions {
                            user_assigned_id: config
                                .client_id
                                .clone()
                                .map(azure_identity::UserAssignedId::ClientId),
                            ..Default::default()
                        },
                    ))?
                } else {
                    azure_identity::DeveloperToolsCredential::new(None)?
                };
            AccountReference::with_credential(endpoint, credential)
        }
    };
    let mut builder = CosmosClient::builder();
    if config.endpoint.starts_with("http://") {
        let pool = ConnectionPoolOptions::builder()
            .with_is_http2_allowed(false)
            .build()?;
        builder = builder
            .with_runtime(
                CosmosRuntime::builder()
                    .with_connection_pool(pool)
                    .build()
                    .await?,
            )
            .with_binary_encoding_options(BinaryEncodingOptions::new().with_enabled(false));
    }
    builder
        .build(
            account,
            RoutingStrategy::ProximityTo(Region::new(config.region.clone())),
        )
        .await
        .context("connecting to Cosmos DB")
}

/// Creates the database and containers if missing (local emulators: needs
/// key auth; in Azure, infra provisions them). The sessions container is
/// partitioned by `/user_id` and indexes only what queries use.
pub async fn init_containers(client: &CosmosClient, config: &CosmosConfig) -> anyhow::Result<()> {
    use azure_data_cosmos::models::{ContainerProperties, IndexingPolicy, PartitionKeyDefinition};
    let exists = |e: &CosmosError| e.status().is_conflict();
    match client.create_database(&config.database, None).await {
        Ok(_) => tracing::info!(database = %config.database, "created database"),
        Err(e) if exists(&e) => {}
        Err(e) => return Err(anyhow::Error::new(e).context("creating the database")),
    }
    let database = client.database_client(&config.database);
    let sessions = ContainerProperties::new(
        config.sessions_container.clone(),
        PartitionKeyDefinition::from("/user_id"),
    )
    .with_indexing_policy(sessions_indexing_policy());
    let legacy = ContainerProperties::new(
        config.legacy_container.clone(),
        PartitionKeyDefinition::from(config.legacy_partition_key.clone()),
    )
    .with_indexing_policy(IndexingPolicy::default().with_included_path("/*"));
    for props in [sessions, legacy] {
        let name = props.id.clone();
        match database.create_container(props, None).await {
            Ok(_) => tracing::info!(container = %name, "created container"),
            Err(e) if exists(&e) => tracing::info!(container = %name, "container exists"),
            Err(e) => {
                return Err(anyhow::Error::new(e).context(format!("creating container {name}")));
            }
        }
    }
    Ok(())
}

/// Index what the queries filter and sort on; leave out message bodies and
/// free-form context, which no query reads and which would only cost write RU.
pub fn sessions_indexing_policy() -> azure_data_cosmos::models::IndexingPolicy {
    azure_data_cosmos::models::IndexingPolicy::default()
        .with_included_path("/*")
        .with_excluded_path("/messages/*")
        .with_excluded_path("/context/*")
        .with_excluded_path("/\"_etag\"/?")
}

//! Reading sessions: point reads of session documents (conditional when the
//! caller knows a version), the sealed pages only when asked for, and
//! listing pages as single-partition queries.

use azure_data_cosmos::{
    CosmosError, FeedScope, Query,
    feed::ContinuationToken,
    options::{ItemReadOptions, MaxItemCountHint, Precondition, QueryOptions},
};
use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use futures::{StreamExt as _, TryStreamExt as _};
use serde_json::Value;

use super::{
    CosmosStore,
    cache::Known,
    documents::{SESSION_DOC_TYPE, SessionDoc, json_len, partition},
    errors::{etag_of, invalid_continuation, status, store_error, to_etag},
    metrics::{ItemIo, item_charge},
    seal::PAGE_READS_AT_ONCE,
};
use crate::{
    domain::{ChatMessage, ChatSession, SessionId, SessionSummary, UserId},
    store::{
        ETag, ListQuery, MessagePage, MessageQuery, Owner, SessionPage, SessionRead, StoreError,
        StoreResult, Versioned,
    },
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
            .track(
                self.container()?
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
        Ok(Some((doc, etag)))
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
    fn remember(&self, user: Option<&UserId>, doc: &SessionDoc, etag: &ETag) {
        if doc.sealed_page_sizes.is_empty() {
            let key = (user.cloned(), doc.session.id.clone());
            if !self.versions.holds(&key, etag) {
                self.versions.put(&key, Known::of(doc, etag.clone(), None));
            }
        }
    }

    /// Every message of the session: its sealed pages, then its document.
    pub(super) async fn whole(
        &self,
        user: Option<&UserId>,
        doc: SessionDoc,
    ) -> StoreResult<ChatSession> {
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

    pub(super) async fn get_if_changed(
        &self,
        owner: &Owner,
        id: &SessionId,
        known: Option<&ETag>,
    ) -> StoreResult<Option<Versioned<ChatSession>>> {
        let user = self.partition_of(owner, id).await?;
        let Some((doc, etag)) = self.read_doc(user.as_ref(), id, known).await? else {
            return Ok(None);
        };
        self.remember(user.as_ref(), &doc, &etag);
        Ok(Some(Versioned {
            value: self.whole(user.as_ref(), doc).await?,
            etag,
        }))
    }

    pub(super) async fn read_streamed(
        &self,
        owner: &Owner,
        id: &SessionId,
        known: Option<&ETag>,
    ) -> StoreResult<Option<SessionRead>> {
        let user = self.partition_of(owner, id).await?;
        let Some((doc, etag)) = self.read_doc(user.as_ref(), id, known).await? else {
            return Ok(None);
        };
        self.remember(user.as_ref(), &doc, &etag);
        // The pages, one point read each, a few ahead of the stream only.
        let pages = doc.sealed_page_sizes.len() as u32;
        let older = (pages > 0).then(|| {
            let (store, id) = (self.clone(), id.clone());
            futures::stream::iter(0..pages)
                .map(move |page| {
                    let (store, user, id) = (store.clone(), user.clone(), id.clone());
                    async move {
                        let read = store.read_page(user.as_ref(), &id, page).await?;
                        Ok(read.messages)
                    }
                })
                .buffered(PAGE_READS_AT_ONCE)
                .boxed()
        });
        Ok(Some(SessionRead {
            summary: doc.session.summary(),
            etag,
            newest: doc.session.messages,
            older,
        }))
    }

    pub(super) async fn tail(
        &self,
        owner: &Owner,
        id: &SessionId,
        limit: u32,
    ) -> StoreResult<Versioned<ChatSession>> {
        let user = self.partition_of(owner, id).await?;
        let (doc, etag) = self.read_current(user.as_ref(), id).await?;
        self.remember(user.as_ref(), &doc, &etag);
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

    pub(super) async fn message_page(
        &self,
        owner: &Owner,
        id: &SessionId,
        query: MessageQuery,
    ) -> StoreResult<MessagePage> {
        let user = self.partition_of(owner, id).await?;
        let (doc, etag) = self.read_current(user.as_ref(), id).await?;
        self.remember(user.as_ref(), &doc, &etag);
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

    pub(super) async fn session_page(
        &self,
        owner: &Owner,
        query: &ListQuery,
    ) -> StoreResult<SessionPage> {
        let mut sql = String::from(
            "SELECT c.id, c.user_id, c.session_name, c.is_active, c.archived_at, c.context, \
             c.message_count, c.last_message_at, c.created_at, c.updated_at FROM c \
             WHERE c.doc_type = @type",
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
}

//! Writing sessions: creates, server-side patches, deletes (the document
//! first, then its pages) and appends, each guarded by the version it read
//! and retried with backoff when another writer got in between.

use std::time::{Duration, Instant};

use azure_data_cosmos::{
    models::{CosmosNumber, ItemResponse, PatchInstructions, PatchOperation},
    options::{
        ContentResponseOnWrite, ItemWriteOptions, OperationOptionsBuilder, PatchItemOptions,
        PatchStrategy, Precondition,
    },
};
use serde_json::json;

use super::{
    CosmosStore,
    documents::{SESSION_DOC_TYPE, SessionDoc, json_len, json_of, partition},
    errors::{APPEND_DEADLINE, backoff, etag_of, store_error, to_etag},
    metrics::item_charge,
};
use crate::{
    domain::{
        ChatMessage, ChatSession, NewMessage, NewSession, SessionId, SessionPatch, Timestamp,
        UserId, archived_at,
    },
    store::{Appended, ETag, Owner, StoreError, StoreResult, Versioned},
};

impl CosmosStore {
    pub(super) async fn create(&self, new: NewSession) -> StoreResult<Versioned<ChatSession>> {
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

    pub(super) async fn update(
        &self,
        owner: &Owner,
        id: &SessionId,
        patch: &SessionPatch,
        if_match: Option<&ETag>,
    ) -> StoreResult<Versioned<ChatSession>> {
        let user = self.partition_of(owner, id).await?;
        let started = Instant::now();
        let mut attempt = 0u32;
        let response = loop {
            let now = Timestamp::now();
            let mut operations = Vec::new();
            let mut guard = if_match.cloned();
            if let Some(name) = &patch.session_name {
                operations.push(PatchOperation::set("/session_name", json_of(name)?));
            }
            if let Some(active) = patch.is_active {
                // `archived_at` depends on whether the session was active,
                // so archiving reads first and patches that version only.
                let (doc, etag) =
                    self.read_doc(user.as_ref(), id, None)
                        .await?
                        .ok_or_else(|| {
                            StoreError::Internal(anyhow::anyhow!(
                                "unconditional read returned nothing"
                            ))
                        })?;
                if if_match.is_some_and(|expected| *expected != etag) {
                    return Err(StoreError::PreconditionFailed);
                }
                let archived =
                    archived_at(doc.session.is_active, doc.session.archived_at, active, now);
                operations.push(PatchOperation::set("/is_active", json!(active)));
                operations.push(PatchOperation::set("/archived_at", json_of(&archived)?));
                guard = Some(etag);
            }
            if let Some(context) = &patch.context {
                operations.push(PatchOperation::set("/context", json_of(context)?));
            }
            operations.push(PatchOperation::set("/updated_at", json_of(&now)?));
            match self
                .patch(user.as_ref(), id, operations, guard.as_ref(), true)
                .await
            {
                Ok(response) => break response,
                // Another writer got in between the read and the patch.
                Err(StoreError::PreconditionFailed)
                    if if_match.is_none() && started.elapsed() < APPEND_DEADLINE =>
                {
                    tokio::time::sleep(backoff(attempt)).await;
                    attempt += 1;
                }
                Err(e) => return Err(e),
            }
        };
        let etag = etag_of(&response, "Cosmos DB patch without an ETag")?;
        let doc: SessionDoc = response.into_model().map_err(|e| {
            StoreError::Internal(anyhow::Error::new(e).context("decoding a patched session"))
        })?;
        Ok(Versioned {
            value: self.whole(user.as_ref(), doc).await?,
            etag,
        })
    }

    pub(super) async fn delete(
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

    pub(super) async fn append(
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

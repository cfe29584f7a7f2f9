//! Writing sessions: creates, server-side patches and deletes (the document
//! first, then its pages), guarded by the version read and retried with
//! backoff when another writer got in between. Appends are in `append`.

use std::time::Instant;

use async_trait::async_trait;

use azure_data_cosmos::{
    models::{ItemResponse, PatchInstructions, PatchOperation},
    options::{
        ContentResponseOnWrite, ItemWriteOptions, OperationOptionsBuilder, PatchItemOptions,
        PatchStrategy, Precondition,
    },
};
use serde_json::json;

use super::{
    CosmosStore,
    cache::Known,
    documents::{SYSTEM_PROPERTY_BYTES, SessionDoc, json_len, json_of, partition},
    errors::{APPEND_DEADLINE, backoff, etag_of, store_error, to_etag},
    metrics::{ItemIo, item_charge},
};
use crate::{
    domain::{ChatSession, NewSession, SessionId, SessionPatch, Timestamp, UserId, archived_at},
    store::{ETag, Owner, StoreError, StoreResult, Versioned, WriteStore},
};

#[async_trait]
impl WriteStore for CosmosStore {
    async fn create_session(&self, new: NewSession) -> StoreResult<Versioned<ChatSession>> {
        let now = Timestamp::now();
        let doc = SessionDoc::new(new.into_session(now));
        let user = doc.session.user_id.clone();
        let created = self
            .track(
                self.container()?
                    .create_item(
                        partition(user.as_ref()),
                        doc.session.id.as_str(),
                        &doc,
                        None,
                    )
                    .await,
                item_charge,
            )
            .map_err(store_error)
            .and_then(|response| etag_of(&response, "Cosmos DB create without an ETag"));
        let etag = match created {
            Ok(etag) => etag,
            // The SDK retries a create whose answer was lost; the retry then
            // finds the first attempt's document. Exactly this document,
            // timestamps to the microsecond, is this create's own.
            Err(StoreError::Conflict(_)) => {
                match self.read_doc(user.as_ref(), &doc.session.id, None).await {
                    Ok(Some((stored, etag))) if stored.session == doc.session => etag,
                    Ok(_) | Err(StoreError::NotFound) => {
                        return Err(StoreError::Conflict(format!(
                            "a session with id {} already exists",
                            doc.session.id
                        )));
                    }
                    Err(e) => return Err(e),
                }
            }
            Err(e) => return Err(e),
        };
        self.io(|| ItemIo::Write(json_len(&doc) + SYSTEM_PROPERTY_BYTES));
        self.versions.put(
            &(user, doc.session.id.clone()),
            Known::of(&doc, etag.clone(), None),
        );
        Ok(Versioned {
            value: doc.session,
            etag,
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
                let (doc, etag) = self.read_current(user.as_ref(), id).await?;
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
        let doc = self
            .decode_item::<SessionDoc>(response, ItemIo::Write)
            .map_err(|e| StoreError::Internal(e.context("decoding a patched session")))?
            .normalized();
        // A sealed session is only known with its newest page: forgotten.
        self.versions.put(
            &(user.clone(), id.clone()),
            Known::of(&doc, etag.clone(), None),
        );
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
        self.versions.forget(&(user.clone(), id.clone()));
        let user = user.as_ref();
        let started = Instant::now();
        let mut attempt = 0u32;
        // The document first (guarded by the version read, so no seal slips
        // in between unseen), then its pages and alternatives.
        let (pages, alternatives) = loop {
            let (doc, etag) = self.read_current(user, id).await?;
            if let Some(expected) = if_match
                && *expected != etag
            {
                return Err(StoreError::PreconditionFailed);
            }
            let options = ItemWriteOptions::default()
                .with_precondition(Precondition::if_match(to_etag(&etag)));
            let result = self
                .track(
                    self.container()?
                        .delete_item(partition(user), id.as_str(), Some(options))
                        .await,
                    item_charge,
                )
                .map_err(store_error);
            let rest = (
                doc.sealed_page_sizes.len() as u32,
                doc.alternative_count() > 0,
            );
            match result {
                Ok(_) => {
                    self.io(|| ItemIo::Write(json_len(&doc) + SYSTEM_PROPERTY_BYTES));
                    break rest;
                }
                // Gone after the read: the SDK retried a delete whose answer
                // was lost, or someone else deleted it. Deleted either way.
                Err(StoreError::NotFound) => break rest,
                Err(StoreError::PreconditionFailed)
                    if if_match.is_none() && started.elapsed() < APPEND_DEADLINE =>
                {
                    tokio::time::sleep(backoff(attempt)).await;
                    attempt += 1;
                }
                Err(e) => return Err(e),
            }
        };
        self.delete_pages(user, id, 0..pages).await?;
        if alternatives {
            let ids: Vec<String> = self
                // Whatever layout: the session is gone, all of them go.
                .alternatives_of(user, id, u64::MAX)
                .await?
                .into_iter()
                .map(|d| d.id)
                .collect();
            self.delete_ids(user, &ids).await?;
        }
        Ok(())
    }
}

impl CosmosStore {
    /// One server-side patch. The SDK's default strategy would read and
    /// replace on the client and write bookkeeping into the document. With
    /// `post_image` false the answer carries no body (an append only needs
    /// the new ETag, not the whole session back).
    pub(super) async fn patch(
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
            self.container()?
                .patch_item(partition(user), id.as_str(), instructions, Some(options))
                .await,
            item_charge,
        )
        .map_err(store_error)
    }
}

//! Erasing a user: everything is in their partition, so it goes in
//! transactional batches of up to 100 deletes there — each session document
//! before its sealed pages (a reader never meets a session whose pages are
//! gone), then the alternatives of those sessions and any pages left over
//! by an interrupted delete.

use std::{collections::HashSet, time::Instant};

use async_trait::async_trait;
use azure_data_cosmos::{FeedScope, Query};
use serde::Deserialize;

use super::{
    CosmosStore,
    documents::{
        BRANCH_DOC_TYPE, PAGE_DOC_TYPE, SESSION_DOC_TYPE, every_message, page_id, partition,
    },
    errors::store_error,
    metrics::item_charge,
};
use crate::{
    domain::{SessionId, UserId},
    store::{EraseStore, Erased, StoreError, StoreResult},
};

/// Documents found per query, and deletes per transactional batch (the
/// batch limit).
const BATCH: usize = 100;

/// What erasing needs of a session document.
#[derive(Deserialize)]
struct SessionRow {
    id: SessionId,
    #[serde(default)]
    message_count: u64,
    /// Every branch's messages (absent on documents from before trees).
    #[serde(default)]
    total_message_count: u64,
    #[serde(default)]
    sealed_page_sizes: Vec<u32>,
}

#[async_trait]
impl EraseStore for CosmosStore {
    async fn erase_user(&self, user: &UserId, deadline: Instant) -> StoreResult<Erased> {
        let mut out = Erased::default();
        loop {
            // A fresh query each round: what was deleted is gone from it, so
            // no continuation can skip anything.
            let sessions: Vec<SessionRow> = self
                .query_all(
                    Query::from(format!(
                        "SELECT TOP {BATCH} c.id, c.message_count, c.total_message_count, \
                         c.sealed_page_sizes FROM c \
                         WHERE c.doc_type = @type"
                    ))
                    .with_parameter("@type", SESSION_DOC_TYPE)
                    .map_err(store_error)?,
                    FeedScope::partition(partition(Some(user))),
                )
                .await?;
            if sessions.is_empty() {
                let pages: Vec<String> = self
                    .query_all(
                        Query::from(format!(
                            "SELECT TOP {BATCH} VALUE c.id FROM c \
                             WHERE c.doc_type = @page OR c.doc_type = @branch"
                        ))
                        .with_parameter("@page", PAGE_DOC_TYPE)
                        .and_then(|q| q.with_parameter("@branch", BRANCH_DOC_TYPE))
                        .map_err(store_error)?,
                        FeedScope::partition(partition(Some(user))),
                    )
                    .await?;
                if pages.is_empty() {
                    out.complete = true;
                    return Ok(out);
                }
                self.delete_ids(Some(user), &pages).await?;
            } else {
                let mut ids = Vec::new();
                for session in &sessions {
                    ids.push(session.id.to_string());
                    ids.extend(
                        (0..session.sealed_page_sizes.len() as u32)
                            .map(|page| page_id(&session.id, page)),
                    );
                }
                let missing = self.delete_ids(Some(user), &ids).await?;
                for session in sessions {
                    // Deleted meanwhile by someone else: not ours to count.
                    if !missing.contains(session.id.as_str()) {
                        out.sessions += 1;
                        out.messages +=
                            every_message(session.message_count, session.total_message_count);
                    }
                }
            }
            if Instant::now() >= deadline {
                return Ok(out);
            }
        }
    }
}

impl CosmosStore {
    /// Deletes documents of `user`'s partition in order, in transactional
    /// batches of up to 100 (the batch limit); returns the ids that were
    /// already gone.
    pub(super) async fn delete_ids(
        &self,
        user: Option<&UserId>,
        ids: &[String],
    ) -> StoreResult<HashSet<String>> {
        let mut missing = HashSet::new();
        for chunk in ids.chunks(BATCH) {
            let mut batch = azure_data_cosmos::TransactionalBatch::new(partition(user));
            for id in chunk {
                batch = batch.delete_item(id.clone(), None);
            }
            let response = self.send_batch(batch).await?;
            if u16::from(response.status().status_code()) == 200 {
                continue;
            }
            // One of them was gone already, which fails the whole batch:
            // delete these one by one, in the same order.
            for id in chunk {
                match self
                    .track(
                        self.container()?
                            .delete_item(partition(user), id, None)
                            .await,
                        item_charge,
                    )
                    .map_err(store_error)
                {
                    Ok(_) => {}
                    Err(StoreError::NotFound) => {
                        missing.insert(id.clone());
                    }
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(missing)
    }
}

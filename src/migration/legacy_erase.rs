//! Erasing a user from the legacy per-message Cosmos container: their old
//! documents, found by `user_id` a page at a time and deleted by id and
//! partition key. What the migration knows of the container (its client and
//! partition key path) is all it needs; callers see only a
//! [`LegacyEraser`].

use std::{sync::Arc, time::Instant};

use async_trait::async_trait;
use azure_data_cosmos::{ContainerClient, CosmosError, FeedScope, PartitionKey, Query};
use futures::{StreamExt as _, TryStreamExt as _};
use serde_json::Value;

use super::{SourceSpec, cosmos_source::to_partition_key};
use crate::{
    domain::UserId,
    store::{DynLegacyEraser, LegacyErased, LegacyEraser, StoreError, StoreResult},
};

/// Documents found per query.
const PAGE: usize = 100;
/// Deletes in flight at once.
const CONCURRENCY: usize = 16;

impl SourceSpec {
    /// What erases a user's documents from this legacy source: the Cosmos
    /// legacy container can be erased from; a JSONL file is the operator's
    /// input and is never changed.
    pub fn eraser(&self) -> Option<DynLegacyEraser> {
        match self {
            Self::Jsonl(_) => None,
            Self::Cosmos {
                container,
                partition_key_path,
            } => Some(Arc::new(CosmosLegacyEraser {
                container: container.clone(),
                partition_key_path: partition_key_path.clone(),
            })),
        }
    }
}

/// Erases users' documents from the legacy Cosmos container.
pub struct CosmosLegacyEraser {
    container: ContainerClient,
    partition_key_path: String,
}

impl std::fmt::Debug for CosmosLegacyEraser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CosmosLegacyEraser")
            .field("partition_key_path", &self.partition_key_path)
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl LegacyEraser for CosmosLegacyEraser {
    async fn erase_legacy(&self, user: &UserId, deadline: Instant) -> StoreResult<LegacyErased> {
        let mut out = LegacyErased::default();
        // One partition when the old container is partitioned by user;
        // otherwise (by session, the usual layout) a cross-partition query.
        let scope = || {
            if self.partition_key_path == "/user_id" {
                FeedScope::partition(PartitionKey::from(user.as_str().to_owned()))
            } else {
                FeedScope::full_container()
            }
        };
        loop {
            // A fresh query each round: what was deleted is gone from it.
            let query = Query::from(format!("SELECT TOP {PAGE} * FROM c WHERE c.user_id = @u"))
                .with_parameter("@u", user.as_str())
                .map_err(cosmos_failure)?;
            let docs: Vec<Value> = self
                .container
                .query_items::<Value>(query, scope(), None)
                .await
                .map_err(cosmos_failure)?
                .try_collect()
                .await
                .map_err(cosmos_failure)?;
            if docs.is_empty() {
                out.complete = true;
                return Ok(out);
            }
            let deleted: Vec<bool> = futures::stream::iter(docs)
                .map(|doc| self.delete(doc))
                .buffer_unordered(CONCURRENCY)
                .try_collect()
                .await?;
            out.messages += deleted.into_iter().filter(|d| *d).count() as u64;
            if Instant::now() >= deadline {
                return Ok(out);
            }
        }
    }
}

impl CosmosLegacyEraser {
    /// Deletes one old document; `false` when it was gone already.
    async fn delete(&self, doc: Value) -> StoreResult<bool> {
        let id = doc.get("id").and_then(Value::as_str).ok_or_else(|| {
            StoreError::Internal(anyhow::anyhow!("a legacy document without an id"))
        })?;
        let key = doc
            .pointer(&self.partition_key_path)
            .cloned()
            .unwrap_or(Value::Null);
        let key = to_partition_key(&key).map_err(StoreError::Internal)?;
        match self.container.delete_item(key, id, None).await {
            Ok(_) => Ok(true),
            Err(e) if e.status().is_not_found() => Ok(false),
            Err(e) => Err(cosmos_failure(e)),
        }
    }
}

/// Throttling and unavailability are worth retrying later; anything else is
/// internal (its text goes to the log only).
fn cosmos_failure(e: CosmosError) -> StoreError {
    let status = e.status();
    if status.is_throttled() || status.is_timeout() || status.is_transient() {
        StoreError::Unavailable { retry_after: None }
    } else {
        StoreError::Internal(anyhow::Error::new(e).context("the legacy Cosmos DB container"))
    }
}

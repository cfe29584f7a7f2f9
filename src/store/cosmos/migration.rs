//! The migration's side of the Cosmos DB store: legacy messages merged into
//! their sessions (the merge is shared with file imports, in `import`), and
//! each run's checkpoint, one document per run in a partition of their own,
//! written only over the version the writer read (compare-and-set).

use async_trait::async_trait;
use azure_data_cosmos::options::{ItemWriteOptions, Precondition};

use super::{
    CosmosStore,
    documents::{CHECKPOINT_DOC_TYPE, CHECKPOINT_PARTITION, CheckpointDoc, checkpoint_id},
    errors::{etag_of, store_error, to_etag},
    metrics::item_charge,
};
use crate::store::{
    ETag, ImportOutcome, MigrationStore, SessionImport, StoreError, StoreResult, Versioned,
};

#[async_trait]
impl MigrationStore for CosmosStore {
    async fn import_messages(&self, import: SessionImport) -> StoreResult<ImportOutcome> {
        self.import_with(import, None).await
    }

    async fn load_checkpoint(&self, run_id: &str) -> StoreResult<Option<Versioned<String>>> {
        let response = self.track(
            self.container()?
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
                self.container()?
                    .create_item(CHECKPOINT_PARTITION, &id, &doc, None)
                    .await,
                item_charge,
            ),
            Some(etag) => self.track(
                self.container()?
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

//! A run's state between invocations: the checkpoint kept in the store
//! (compare-and-set, so one invocation owns the run at a time), or held by
//! the caller for dry runs.

use serde::{Deserialize, Serialize};

use super::{Options, Report, RunError};
use crate::store::{ETag, MigrationStore, StoreError};

/// The state saved between invocations of a run.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Checkpoint {
    /// Where the source resumes.
    pub position: Option<String>,
    /// Invocations so far; a queue message naming an older step is stale.
    pub step: u64,
    /// The report so far.
    pub report: Report,
}

/// Where the checkpoint lives: the store for real runs; the caller for dry
/// runs, which write nothing.
#[derive(Debug, Clone, PartialEq)]
pub enum Resume {
    /// Load from and save to the store.
    Store,
    /// Start from this state and do not save (dry runs).
    From(Box<Checkpoint>),
}

impl Resume {
    /// Where a run started from scratch keeps its state: dry runs write
    /// nothing, so they start empty and save nothing; real runs use the store.
    pub fn new_run(dry_run: bool) -> Self {
        if dry_run {
            Self::From(Box::default())
        } else {
            Self::Store
        }
    }
}

pub(super) fn store_failure(e: StoreError) -> RunError {
    RunError::Failed(anyhow::anyhow!("store: {e}"))
}

pub(super) async fn save(
    store: &dyn MigrationStore,
    options: &Options,
    state: &Checkpoint,
    version: Option<&ETag>,
) -> Result<ETag, RunError> {
    let text = serde_json::to_string(state).map_err(|e| RunError::Failed(e.into()))?;
    match store.save_checkpoint(&options.run_id, &text, version).await {
        Ok(etag) => Ok(etag),
        Err(StoreError::PreconditionFailed) => Err(RunError::Superseded(options.run_id.clone())),
        Err(e) => Err(store_failure(e)),
    }
}

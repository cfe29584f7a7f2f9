//! The migration from the old one-document-per-message store into sessions.
//!
//! A [`LegacySource`] yields the old messages grouped by session; the engine
//! checks each group (one owner? valid records?), brings it into any
//! [`MigrationStore`] with [`MigrationStore::import_messages`] (idempotent:
//! only missing ids are added), reads the session back, and only then, when
//! asked, deletes the old documents it saw in it. Progress is a checkpoint in
//! the store, written after every session, so a run killed anywhere resumes
//! where it was and converges to the same result. No HTTP or queue types here.
//!
//! The files of this module: `source` (the legacy records and where they
//! come from), `session` (one session checked and imported), `report` and
//! `checkpoint` (what a run did and where it resumes); this file runs the
//! pass.

use std::time::{Duration, Instant};

use futures::StreamExt as _;

use crate::store::{MigrationStore, StoreError};

mod checkpoint;
pub mod cosmos_source;
pub mod jsonl;
mod legacy_erase;
mod report;
mod session;
mod source;

pub use checkpoint::{Checkpoint, Resume};
use checkpoint::{save, store_failure};
pub use legacy_erase::CosmosLegacyEraser;
pub use report::{Conflict, REPORT_ID_LIMIT, Report};
use session::migrate_item;
pub use source::{
    Deleter, Item, LegacyMessage, LegacyRecord, LegacySource, SourceSpec, parse_legacy,
};

/// Sessions migrated side by side within a batch: under load the stores
/// group their writes (SQLite commits, Cosmos round trips overlap).
const CONCURRENCY: usize = 16;

/// Default number of legacy messages read per batch.
pub const DEFAULT_BATCH_SIZE: u32 = 500;
/// Largest accepted batch size.
pub const MAX_BATCH_SIZE: u32 = 5000;

/// What to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// Read and report only; write nothing.
    pub dry_run: bool,
    /// Legacy messages per batch: the checkpoint is saved after each batch.
    pub batch_size: u32,
    /// Delete old records once their session holds them (not with dry runs).
    pub delete_old: bool,
    /// Names the run; its checkpoint is kept under this name.
    pub run_id: String,
    /// Stop (resumably) after this long; `None`: run to the end.
    pub budget: Option<Duration>,
    /// For a continuation message: the step that wrote it. A run whose
    /// checkpoint is past it has moved on, and the message is a stale
    /// redelivery.
    pub continues_step: Option<u64>,
}

/// Why a run could not go on.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// Another invocation advanced this run's checkpoint meanwhile: it owns
    /// the run now, this one stops.
    #[error("another invocation is working on run {0}")]
    Superseded(String),
    /// The message continues a step the run has already left behind.
    #[error(
        "stale message for run {run} (step {message_step}; the run is at step {run_step}): nothing to do"
    )]
    Stale {
        /// The run.
        run: String,
        /// The step the message continues.
        message_step: u64,
        /// Where the run is.
        run_step: u64,
    },
    /// The source or the store failed in a way the run cannot step over.
    #[error(transparent)]
    Failed(#[from] anyhow::Error),
}

/// Progress callbacks, for a progress bar or log lines.
pub trait Progress: Send {
    /// Called after each batch.
    fn batch_done(&mut self, report: &Report);
}

/// No progress output.
pub struct Quiet;

impl Progress for Quiet {
    fn batch_done(&mut self, _: &Report) {}
}

/// Runs (or continues) a migration pass until the source ends or the budget
/// is spent. Returns the state to continue from; `report.finished` says
/// whether the pass is complete.
pub async fn run(
    source: &mut dyn LegacySource,
    store: &dyn MigrationStore,
    options: &Options,
    resume: Resume,
    progress: &mut dyn Progress,
) -> Result<Checkpoint, RunError> {
    let started = Instant::now();
    let (mut state, mut version) = match resume {
        Resume::From(state) => (*state, None),
        Resume::Store => match store
            .load_checkpoint(&options.run_id)
            .await
            .map_err(store_failure)?
        {
            Some(saved) => {
                let state: Checkpoint = serde_json::from_str(&saved.value).map_err(|e| {
                    anyhow::anyhow!("checkpoint of run {} is unreadable: {e}", options.run_id)
                })?;
                (state, Some(saved.etag))
            }
            None => (Checkpoint::default(), None),
        },
    };
    if let Some(message_step) = options.continues_step
        && state.step > message_step
    {
        return Err(RunError::Stale {
            run: options.run_id.clone(),
            message_step,
            run_step: state.step,
        });
    }
    // A finished pass run again is a new pass (picks up stragglers).
    if state.report.finished {
        state = Checkpoint {
            step: state.step,
            ..Checkpoint::default()
        };
    }
    state.step += 1;
    state.report.run_id = options.run_id.clone();
    state.report.dry_run = options.dry_run;
    let base_ms = state.report.duration_ms;
    if !options.dry_run {
        // Claim the run: a concurrent invocation of it fails here or at its
        // next save, never both advance.
        version = Some(save(store, options, &state, version.as_ref()).await?);
    }
    source.start(state.position.as_deref()).await?;
    let deleter = if options.delete_old && !options.dry_run {
        source.deleter()
    } else {
        None
    };
    loop {
        // A batch of about `batch_size` messages; at least one item, so a
        // run always moves forward whatever its budget.
        let mut batch = Vec::new();
        let mut messages = 0usize;
        while messages < options.batch_size.max(1) as usize {
            let Some(item) = source.next_item().await? else {
                state.report.finished = true;
                break;
            };
            messages += match &item {
                Item::Session { records, .. } => records.len(),
                _ => 1,
            };
            batch.push(item);
        }
        let parts: Vec<(Report, Result<(), StoreError>)> = futures::stream::iter(batch)
            .map(|item| {
                let deleter = deleter.clone();
                async move {
                    let mut part = Report::default();
                    let done =
                        migrate_item(item, deleter.as_deref(), store, options, &mut part).await;
                    (part, done)
                }
            })
            .buffer_unordered(CONCURRENCY)
            .collect()
            .await;
        let mut fault = None;
        for (part, done) in parts {
            state.report.absorb(part);
            fault = fault.or(done.err());
        }
        // The checkpoint stays before this batch: a run started again
        // redoes it (imports are idempotent).
        if let Some(fault) = fault {
            return Err(store_failure(fault));
        }
        state.position = if state.report.finished {
            None
        } else {
            source.position()
        };
        state.report.duration_ms = base_ms + started.elapsed().as_millis() as u64;
        if !options.dry_run {
            version = Some(save(store, options, &state, version.as_ref()).await?);
        }
        progress.batch_done(&state.report);
        if state.report.finished || options.budget.is_some_and(|b| started.elapsed() >= b) {
            break;
        }
    }
    Ok(state)
}

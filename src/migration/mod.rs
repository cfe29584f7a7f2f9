//! The migration from the old one-document-per-message store into sessions.
//!
//! A [`LegacySource`] yields the old messages grouped by session; the engine
//! checks each group (one owner? valid records?), brings it into any
//! [`MigrationStore`] with [`MigrationStore::import_messages`] (idempotent:
//! only missing ids are added), reads the session back, and only then, when
//! asked, deletes the old documents it saw in it. Progress is a checkpoint in
//! the store, written after every session, so a run killed anywhere resumes
//! where it was and converges to the same result. No HTTP or queue types here.

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    sync::Arc,
    time::{Duration, Instant},
};

use async_trait::async_trait;
use futures::StreamExt as _;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{
    domain::{ChatMessage, JsonObject, MessageId, MessageType, SessionId, Timestamp, UserId},
    store::{ETag, MigrationStore, Owner, SessionImport, SessionStore, StoreError},
};

pub mod cosmos_source;
pub mod jsonl;

/// How many orphan or invalid ids a report lists (all are counted and
/// logged).
pub const REPORT_ID_LIMIT: usize = 1000;

/// One old-style message, as the old store kept it. Lenient: whatever can be
/// read is kept, so that a bad record can still be reported by its id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LegacyMessage {
    /// The message id.
    pub id: Option<String>,
    /// The session it belongs to; absent or null for an orphan.
    #[serde(default)]
    pub session_id: Option<String>,
    /// Its user.
    #[serde(default)]
    pub user_id: Option<String>,
    /// The text.
    #[serde(default)]
    pub content: Option<String>,
    /// `user`, `assistant` or `system`.
    #[serde(default)]
    pub message_type: Option<String>,
    /// Free-form data.
    #[serde(default)]
    pub metadata: Option<Value>,
    /// When it was written.
    #[serde(default)]
    pub created_at: Option<String>,
}

/// A legacy record with what the source needs to delete it.
#[derive(Debug, Clone, PartialEq)]
pub struct LegacyRecord {
    /// The message.
    pub message: LegacyMessage,
    /// The source's handle for deleting it (Cosmos: its partition key value).
    pub handle: Value,
}

/// What a source yields.
#[derive(Debug, Clone, PartialEq)]
pub enum Item {
    /// Every legacy record of one session.
    Session {
        /// The legacy `session_id`.
        session_id: String,
        /// Its records, in any order.
        records: Vec<LegacyRecord>,
    },
    /// A record without a session: reported, never moved or deleted.
    Orphan(LegacyRecord),
    /// Something that is not a legacy message at all (e.g. a line that is
    /// not JSON); `what` says where it is.
    Unreadable {
        /// Where and why.
        what: String,
    },
}

/// Where the old messages come from.
#[async_trait]
pub trait LegacySource: Send {
    /// Starts the pass at `position` (as an earlier [`position`](Self::position)
    /// returned), or at the beginning.
    async fn start(&mut self, position: Option<&str>) -> anyhow::Result<()>;
    /// The next item; `None` at the end of the pass.
    async fn next_item(&mut self) -> anyhow::Result<Option<Item>>;
    /// Where a pass resumed now would start, at the latest: everything
    /// before it has been yielded. Resuming may yield some items again;
    /// the engine is idempotent.
    fn position(&self) -> Option<String>;
    /// What deletes old records, if this source can.
    fn deleter(&self) -> Option<Arc<dyn Deleter>>;
}

/// Deletes old records; shared by the sessions migrated side by side.
#[async_trait]
pub trait Deleter: Send + Sync {
    /// Deletes one old record (already gone counts as deleted).
    async fn delete(&self, record: &LegacyRecord) -> anyhow::Result<()>;
}

/// Sessions migrated side by side within a batch: under load the stores
/// group their writes (SQLite commits, Cosmos round trips overlap).
const CONCURRENCY: usize = 16;

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

/// A session left untouched because its messages disagree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Conflict {
    /// The session.
    pub session_id: String,
    /// Why.
    pub reason: String,
}

/// What a run did (so far).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Report {
    /// The run.
    pub run_id: String,
    /// Nothing was written.
    pub dry_run: bool,
    /// The pass reached the end of the source.
    pub finished: bool,
    /// Sessions created.
    pub sessions_created: u64,
    /// Existing sessions that got messages.
    pub sessions_merged: u64,
    /// Sessions that already held every message.
    pub sessions_unchanged: u64,
    /// Messages added to sessions.
    pub messages_migrated: u64,
    /// Messages whose ids their session already had.
    pub messages_already_present: u64,
    /// Duplicate deliveries of one message in the source (same id, same
    /// content), counted once.
    pub duplicate_records: u64,
    /// Records without a session.
    pub orphan_count: u64,
    /// Their ids (at most [`REPORT_ID_LIMIT`]).
    pub orphans: Vec<String>,
    /// Sessions left untouched.
    pub conflicts: Vec<Conflict>,
    /// Records that could not be migrated (bad id, type or timestamp):
    /// left where they are.
    pub invalid_count: u64,
    /// Their ids or places (at most [`REPORT_ID_LIMIT`]).
    pub invalid: Vec<String>,
    /// Old records deleted.
    pub old_deleted: u64,
    /// Errors that stopped a session (store unavailable, …); the session is
    /// retried by the next run.
    pub errors: Vec<String>,
    /// Time spent, over all invocations.
    pub duration_ms: u64,
}

impl Report {
    /// Whether the run needs attention (conflicts, invalid records, errors).
    pub fn has_problems(&self) -> bool {
        !self.conflicts.is_empty() || self.invalid_count > 0 || !self.errors.is_empty()
    }

    /// Adds the counts and lists of `other` (one batch's part) to this report.
    fn absorb(&mut self, other: Report) {
        self.sessions_created += other.sessions_created;
        self.sessions_merged += other.sessions_merged;
        self.sessions_unchanged += other.sessions_unchanged;
        self.messages_migrated += other.messages_migrated;
        self.messages_already_present += other.messages_already_present;
        self.duplicate_records += other.duplicate_records;
        self.orphan_count += other.orphan_count;
        let room = REPORT_ID_LIMIT.saturating_sub(self.orphans.len());
        self.orphans.extend(other.orphans.into_iter().take(room));
        self.conflicts.extend(other.conflicts);
        self.invalid_count += other.invalid_count;
        let room = REPORT_ID_LIMIT.saturating_sub(self.invalid.len());
        self.invalid.extend(other.invalid.into_iter().take(room));
        self.old_deleted += other.old_deleted;
        self.errors.extend(other.errors);
    }

    fn note_orphan(&mut self, id: &str) {
        self.orphan_count += 1;
        if self.orphans.len() < REPORT_ID_LIMIT {
            self.orphans.push(id.to_owned());
        }
    }

    fn note_invalid(&mut self, what: String) {
        self.invalid_count += 1;
        if self.invalid.len() < REPORT_ID_LIMIT {
            self.invalid.push(what);
        }
    }
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "migration {}{}: {}",
            self.run_id,
            if self.dry_run {
                " (dry run: nothing written)"
            } else {
                ""
            },
            if self.finished {
                "finished"
            } else {
                "not finished"
            }
        )?;
        writeln!(
            f,
            "  sessions: {} created, {} merged, {} unchanged",
            self.sessions_created, self.sessions_merged, self.sessions_unchanged
        )?;
        writeln!(
            f,
            "  messages: {} migrated, {} already present, {} duplicate records",
            self.messages_migrated, self.messages_already_present, self.duplicate_records
        )?;
        writeln!(
            f,
            "  orphans (no session_id, left in place): {}",
            self.orphan_count
        )?;
        writeln!(
            f,
            "  conflicts (sessions left untouched): {}",
            self.conflicts.len()
        )?;
        for c in &self.conflicts {
            writeln!(f, "    {}: {}", c.session_id, c.reason)?;
        }
        writeln!(
            f,
            "  invalid records (left in place): {}",
            self.invalid_count
        )?;
        writeln!(f, "  old documents deleted: {}", self.old_deleted)?;
        for e in &self.errors {
            writeln!(f, "  error: {e}")?;
        }
        write!(f, "  duration: {:.1} s", self.duration_ms as f64 / 1000.0)
    }
}

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
        let parts: Vec<Report> = futures::stream::iter(batch)
            .map(|item| {
                let deleter = deleter.clone();
                async move {
                    let mut part = Report::default();
                    migrate_item(item, deleter.as_deref(), store, options, &mut part).await;
                    part
                }
            })
            .buffer_unordered(CONCURRENCY)
            .collect()
            .await;
        for part in parts {
            state.report.absorb(part);
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

fn store_failure(e: StoreError) -> RunError {
    RunError::Failed(anyhow::anyhow!("store: {e}"))
}

async fn save(
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

/// The records of one session, checked: the owner, the messages to import in
/// order, and the records each message came from (for deletion).
struct Checked {
    user_id: Option<UserId>,
    messages: Vec<ChatMessage>,
    /// Records whose message is in `messages`, by message id.
    sources: HashMap<String, Vec<LegacyRecord>>,
}

fn check(records: Vec<LegacyRecord>, report: &mut Report) -> Result<Checked, String> {
    let users: BTreeSet<&str> = records
        .iter()
        .filter_map(|r| r.message.user_id.as_deref())
        .collect();
    if users.len() > 1 {
        return Err(format!(
            "messages carry different user ids: {}",
            users.into_iter().collect::<Vec<_>>().join(", ")
        ));
    }
    let user_id = match users.into_iter().next() {
        Some(user) => Some(UserId::parse(user).map_err(|e| format!("bad user id: {e}"))?),
        None => None,
    };
    let mut by_id: BTreeMap<String, (ChatMessage, Vec<LegacyRecord>)> = BTreeMap::new();
    for record in records {
        let message = match to_message(&record.message) {
            Ok(message) => message,
            Err(why) => {
                report.note_invalid(format!(
                    "{} ({why})",
                    record.message.id.as_deref().unwrap_or("<no id>")
                ));
                continue;
            }
        };
        match by_id.get_mut(message.id.as_str()) {
            Some((first, copies)) => {
                if first.content != message.content
                    || first.message_type != message.message_type
                    || first.metadata != message.metadata
                    || first.created_at != message.created_at
                {
                    return Err(format!(
                        "message id {} appears with different contents",
                        message.id
                    ));
                }
                report.duplicate_records += 1;
                copies.push(record);
            }
            None => {
                by_id.insert(message.id.as_str().to_owned(), (message, vec![record]));
            }
        }
    }
    let mut messages = Vec::with_capacity(by_id.len());
    let mut sources = HashMap::with_capacity(by_id.len());
    for (id, (message, copies)) in by_id {
        messages.push(message);
        sources.insert(id, copies);
    }
    messages.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
    Ok(Checked {
        user_id,
        messages,
        sources,
    })
}

fn to_message(legacy: &LegacyMessage) -> Result<ChatMessage, String> {
    let id = MessageId::parse(legacy.id.clone().ok_or("no id")?).map_err(|e| e.to_string())?;
    let message_type = MessageType::parse(legacy.message_type.as_deref().ok_or("no message_type")?)
        .map_err(|e| e.to_string())?;
    let created_at = Timestamp::parse(legacy.created_at.as_deref().ok_or("no created_at")?)
        .map_err(|e| e.to_string())?;
    let metadata = match &legacy.metadata {
        None | Some(Value::Null) => JsonObject::new(),
        Some(Value::Object(map)) => map.clone(),
        Some(_) => return Err("metadata is not an object".into()),
    };
    let user_id = legacy
        .user_id
        .as_deref()
        .map(UserId::parse)
        .transpose()
        .map_err(|e| e.to_string())?;
    Ok(ChatMessage {
        id,
        content: legacy.content.clone().ok_or("no content")?,
        message_type,
        user_id,
        metadata,
        created_at,
    })
}

async fn migrate_item(
    item: Item,
    deleter: Option<&dyn Deleter>,
    store: &dyn MigrationStore,
    options: &Options,
    report: &mut Report,
) {
    let (session_id, records) = match item {
        Item::Orphan(record) => {
            let id = record.message.id.as_deref().unwrap_or("<no id>");
            tracing::info!(
                message_id = id,
                "orphan: legacy message without session_id, left in place"
            );
            report.note_orphan(id);
            return;
        }
        Item::Unreadable { what } => {
            tracing::warn!("unreadable legacy record, left in place: {what}");
            report.note_invalid(what);
            return;
        }
        Item::Session {
            session_id,
            records,
        } => (session_id, records),
    };
    let conflict = |report: &mut Report, reason: String| {
        tracing::warn!(session_id = %session_id, "conflict, session left untouched: {reason}");
        report.conflicts.push(Conflict {
            session_id: session_id.clone(),
            reason,
        });
    };
    let id = match SessionId::parse(session_id.clone()) {
        Ok(id) => id,
        Err(e) => {
            for record in &records {
                report.note_invalid(format!(
                    "{} (session id {session_id:?}: {e})",
                    record.message.id.as_deref().unwrap_or("<no id>")
                ));
            }
            return;
        }
    };
    let checked = match check(records, report) {
        Ok(checked) if checked.messages.is_empty() => return,
        Ok(checked) => checked,
        Err(reason) => return conflict(report, reason),
    };
    if options.dry_run {
        return preview(store, &id, checked, report).await;
    }
    let import = SessionImport {
        id: id.clone(),
        user_id: checked.user_id.clone(),
        messages: checked.messages,
    };
    let wanted: Vec<MessageId> = import.messages.iter().map(|m| m.id.clone()).collect();
    let outcome = match store.import_messages(import).await {
        Ok(outcome) => outcome,
        Err(StoreError::Conflict(reason)) => return conflict(report, reason),
        Err(e) => {
            tracing::error!(session_id = %session_id, "import failed: {e}");
            report.errors.push(format!("session {session_id}: {e}"));
            return;
        }
    };
    if outcome.created {
        report.sessions_created += 1;
    } else if outcome.added > 0 {
        report.sessions_merged += 1;
    } else {
        report.sessions_unchanged += 1;
    }
    report.messages_migrated += outcome.added;
    report.messages_already_present += outcome.already_present;
    let Some(deleter) = deleter else {
        return;
    };
    // Delete only what the session, read back now, holds.
    let owner = checked
        .user_id
        .clone()
        .map_or(Owner::Anonymous, Owner::User);
    let stored = match store.get_session(&owner, &id).await {
        Ok(stored) => stored.value,
        Err(e) => {
            report.errors.push(format!(
                "session {session_id}: read-back failed, nothing deleted: {e}"
            ));
            return;
        }
    };
    let present: BTreeSet<&str> = stored.messages.iter().map(|m| m.id.as_str()).collect();
    for message_id in &wanted {
        if !present.contains(message_id.as_str()) {
            report.errors.push(format!(
                "session {session_id}: message {message_id} missing after import; nothing of it deleted"
            ));
            continue;
        }
        for record in checked
            .sources
            .get(message_id.as_str())
            .into_iter()
            .flatten()
        {
            match deleter.delete(record).await {
                Ok(()) => report.old_deleted += 1,
                Err(e) => report
                    .errors
                    .push(format!("deleting old message {message_id}: {e:#}")),
            }
        }
    }
}

/// A dry run's view of one session: what an import would do.
async fn preview(store: &dyn SessionStore, id: &SessionId, checked: Checked, report: &mut Report) {
    match store.get_session(&Owner::Anonymous, id).await {
        Ok(existing) if existing.value.user_id != checked.user_id => {
            report.conflicts.push(Conflict {
                session_id: id.to_string(),
                reason: format!("session {id} exists with another owner"),
            })
        }
        Ok(existing) => {
            let present: BTreeSet<&str> = existing
                .value
                .messages
                .iter()
                .map(|m| m.id.as_str())
                .collect();
            let missing = checked
                .messages
                .iter()
                .filter(|m| !present.contains(m.id.as_str()))
                .count() as u64;
            if missing == 0 {
                report.sessions_unchanged += 1;
            } else {
                report.sessions_merged += 1;
            }
            report.messages_migrated += missing;
            report.messages_already_present += checked.messages.len() as u64 - missing;
        }
        Err(StoreError::NotFound) => {
            report.sessions_created += 1;
            report.messages_migrated += checked.messages.len() as u64;
        }
        Err(e) => report.errors.push(format!("session {id}: {e}")),
    }
}

/// Where a run reads the old messages from.
#[derive(Clone)]
pub enum SourceSpec {
    /// A JSONL file.
    Jsonl(std::path::PathBuf),
    /// The old Cosmos DB container and its partition key path.
    Cosmos {
        /// The container.
        container: azure_data_cosmos::ContainerClient,
        /// E.g. `/session_id`.
        partition_key_path: String,
    },
}

impl std::fmt::Debug for SourceSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Jsonl(path) => write!(f, "Jsonl({})", path.display()),
            Self::Cosmos {
                partition_key_path, ..
            } => write!(f, "Cosmos(partitioned by {partition_key_path})"),
        }
    }
}

impl SourceSpec {
    /// A source reading `batch_size` records per page.
    pub fn open(&self, batch_size: u32) -> Box<dyn LegacySource> {
        match self {
            Self::Jsonl(path) => Box::new(jsonl::JsonlSource::new(path)),
            Self::Cosmos {
                container,
                partition_key_path,
            } => Box::new(cosmos_source::CosmosLegacySource::new(
                container.clone(),
                partition_key_path,
                batch_size,
            )),
        }
    }
}

/// Reads legacy messages from JSON text (one object), for sources.
pub fn parse_legacy(value: Value) -> Result<LegacyMessage, String> {
    serde_json::from_value(value).map_err(|e| e.to_string())
}

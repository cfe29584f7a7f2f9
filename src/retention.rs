//! Retention, off by default: archive sessions untouched for
//! `RETENTION_ARCHIVE_AFTER_DAYS`, delete sessions archived for
//! `RETENTION_DELETE_AFTER_DAYS`. Run by the `RetentionSweep` timer (when
//! enabled) and by `chat-sessions retention`.
//!
//! Every action goes through the ordinary guarded writes of the store
//! (`update_session` / `delete_session` with the version the session was
//! found at): a session a user touches while the sweep runs is left alone,
//! and a delete removes exactly what a `DELETE` would (sealed pages and
//! search entries included). A run stops at its deadline; the next one
//! continues, since it looks for what is still due.

use std::{collections::HashSet, fmt, time::Instant};

use chrono::Duration;
use futures::{StreamExt as _, TryStreamExt as _};
use serde::Serialize;

use crate::{
    domain::{SessionId, SessionPatch, Timestamp},
    store::{Owner, RetentionCandidate, SessionStore, StoreError, StoreResult},
};

/// Longest accepted retention period, in days (100 years).
pub const MAX_DAYS: u32 = 36_500;
/// Candidates acted on between two fresh looks.
const BATCH: usize = 100;

/// The retention rules; `None` turns a rule off.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RetentionPolicy {
    /// Archive sessions untouched (`updated_at`) for this many days.
    pub archive_after_days: Option<u32>,
    /// Delete sessions archived for this many days.
    pub delete_after_days: Option<u32>,
}

impl RetentionPolicy {
    /// True when no rule is set.
    pub fn is_off(&self) -> bool {
        self.archive_after_days.is_none() && self.delete_after_days.is_none()
    }
}

/// What a run did (or, in a dry run, would do).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RetentionReport {
    /// Nothing was changed.
    pub dry_run: bool,
    /// Sessions last changed before this were due for archiving.
    pub archive_cutoff: Option<Timestamp>,
    /// Sessions archived before this were due for deletion.
    pub delete_cutoff: Option<Timestamp>,
    /// Sessions archived (dry run: that would be).
    pub archived: u64,
    /// Sessions deleted (dry run: that would be).
    pub deleted: u64,
    /// Messages in the deleted sessions, of every branch.
    pub messages_deleted: u64,
    /// Sessions left alone because they changed since they were found.
    pub skipped: u64,
    /// Some sessions due for each rule, for the operator to check.
    pub examples: Vec<SessionId>,
    /// False when the run stopped at its deadline with work left.
    pub complete: bool,
}

impl fmt::Display for RetentionReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (archived, deleted) = if self.dry_run {
            ("would archive", "would delete")
        } else {
            ("archived", "deleted")
        };
        match self.archive_cutoff {
            Some(cutoff) => writeln!(
                f,
                "{archived}: {} sessions untouched since before {cutoff}",
                self.archived
            )?,
            None => writeln!(f, "archiving: off (RETENTION_ARCHIVE_AFTER_DAYS unset)")?,
        }
        match self.delete_cutoff {
            Some(cutoff) => writeln!(
                f,
                "{deleted}: {} sessions ({} messages) archived before {cutoff}",
                self.deleted, self.messages_deleted
            )?,
            None => writeln!(f, "deleting: off (RETENTION_DELETE_AFTER_DAYS unset)")?,
        }
        if self.skipped > 0 {
            writeln!(f, "skipped: {} sessions changed meanwhile", self.skipped)?;
        }
        if !self.examples.is_empty() {
            let ids: Vec<&str> = self.examples.iter().map(SessionId::as_str).collect();
            writeln!(f, "for example: {}", ids.join(", "))?;
        }
        if !self.complete {
            writeln!(f, "stopped at the time limit; the next run continues")?;
        }
        Ok(())
    }
}

/// Sessions named in [`RetentionReport::examples`], per rule.
const EXAMPLES: usize = 5;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rule {
    Archive,
    Delete,
}

/// Applies `policy` as of `now` to every user's sessions, until done or
/// `deadline`. With `dry_run`, only counts.
pub async fn run(
    store: &dyn SessionStore,
    policy: RetentionPolicy,
    now: Timestamp,
    dry_run: bool,
    deadline: Instant,
) -> StoreResult<RetentionReport> {
    run_with_progress(store, policy, now, dry_run, deadline, &|_| {}).await
}

/// Something told the report so far after every session acted on (or, in
/// a dry run, found): a progress display.
pub type Progress<'a> = &'a (dyn Fn(&RetentionReport) + Send + Sync);

/// [`run`], telling `progress` as it goes.
pub async fn run_with_progress(
    store: &dyn SessionStore,
    policy: RetentionPolicy,
    now: Timestamp,
    dry_run: bool,
    deadline: Instant,
    progress: Progress<'_>,
) -> StoreResult<RetentionReport> {
    let cutoff =
        |days: u32| Timestamp::from_datetime(now.as_datetime() - Duration::days(days.into()));
    let mut report = RetentionReport {
        dry_run,
        archive_cutoff: policy.archive_after_days.map(cutoff),
        delete_cutoff: policy.delete_after_days.map(cutoff),
        complete: true,
        ..RetentionReport::default()
    };
    for (rule, cutoff) in [
        (Rule::Archive, report.archive_cutoff),
        (Rule::Delete, report.delete_cutoff),
    ] {
        let Some(cutoff) = cutoff else { continue };
        let done = if dry_run {
            count(store, rule, cutoff, &mut report, progress).await?
        } else {
            apply(store, rule, cutoff, &mut report, deadline, progress).await?
        };
        if !done {
            report.complete = false;
            break;
        }
    }
    Ok(report)
}

fn candidates(
    store: &dyn SessionStore,
    rule: Rule,
    cutoff: Timestamp,
) -> crate::store::retention::CandidateStream {
    match rule {
        Rule::Archive => store.untouched_before(cutoff),
        Rule::Delete => store.archived_before(cutoff),
    }
}

/// A dry run of `rule`: one pass over its candidates.
async fn count(
    store: &dyn SessionStore,
    rule: Rule,
    cutoff: Timestamp,
    report: &mut RetentionReport,
    progress: Progress<'_>,
) -> StoreResult<bool> {
    let mut found = candidates(store, rule, cutoff);
    let mut examples = 0;
    while let Some(candidate) = found.try_next().await? {
        record(report, rule, &candidate, &mut examples);
        progress(report);
    }
    Ok(true)
}

/// Applies `rule` a batch at a time, each batch from a fresh look (what was
/// done is no longer due, so nothing is missed however the store pages).
/// `Ok(false)` when the deadline came first.
async fn apply(
    store: &dyn SessionStore,
    rule: Rule,
    cutoff: Timestamp,
    report: &mut RetentionReport,
    deadline: Instant,
    progress: Progress<'_>,
) -> StoreResult<bool> {
    let mut skipped: HashSet<SessionId> = HashSet::new();
    let mut examples = 0;
    loop {
        let batch: Vec<RetentionCandidate> = candidates(store, rule, cutoff)
            .try_filter(|c| futures::future::ready(!skipped.contains(&c.id)))
            .take(BATCH)
            .try_collect()
            .await?;
        if batch.is_empty() {
            return Ok(true);
        }
        for candidate in batch {
            let owner = match &candidate.user_id {
                Some(user) => Owner::User(user.clone()),
                None => Owner::Anonymous,
            };
            let result = match rule {
                Rule::Archive => {
                    let archive = SessionPatch {
                        is_active: Some(false),
                        ..SessionPatch::default()
                    };
                    store
                        .update_session(&owner, &candidate.id, &archive, Some(&candidate.etag))
                        .await
                        .map(drop)
                }
                Rule::Delete => {
                    store
                        .delete_session(&owner, &candidate.id, Some(&candidate.etag))
                        .await
                }
            };
            match result {
                Ok(()) => record(report, rule, &candidate, &mut examples),
                // Touched, restored or deleted since it was found.
                Err(StoreError::PreconditionFailed | StoreError::NotFound) => {
                    report.skipped += 1;
                    skipped.insert(candidate.id);
                }
                Err(e) => return Err(e),
            }
            progress(report);
            if Instant::now() >= deadline {
                return Ok(false);
            }
        }
    }
}

fn record(
    report: &mut RetentionReport,
    rule: Rule,
    candidate: &RetentionCandidate,
    examples: &mut usize,
) {
    match rule {
        Rule::Archive => report.archived += 1,
        Rule::Delete => {
            report.deleted += 1;
            report.messages_deleted += candidate.message_count;
        }
    }
    if *examples < EXAMPLES {
        *examples += 1;
        report.examples.push(candidate.id.clone());
    }
}

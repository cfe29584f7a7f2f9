//! What a run did: the counts, the ids worth a look and the errors, added up
//! batch by batch and printed for operators.

use serde::{Deserialize, Serialize};

/// How many orphan or invalid ids a report lists (all are counted and
/// logged).
pub const REPORT_ID_LIMIT: usize = 1000;

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
    pub(super) fn absorb(&mut self, other: Report) {
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

    pub(super) fn note_orphan(&mut self, id: &str) {
        self.orphan_count += 1;
        if self.orphans.len() < REPORT_ID_LIMIT {
            self.orphans.push(id.to_owned());
        }
    }

    pub(super) fn note_invalid(&mut self, what: String) {
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

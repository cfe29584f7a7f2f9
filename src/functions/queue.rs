//! Messages on the `chat-migration` queue, as serde types (tested against
//! fixture files).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::migration::{DEFAULT_BATCH_SIZE, MAX_BATCH_SIZE};

/// A message on the `chat-migration` queue: run (or continue) a migration.
/// Every member is optional, and the defaults are the safe ones: a message
/// `{}` is a dry run that deletes nothing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MigrationRequest {
    /// Read and report only (default **true**).
    #[serde(default = "yes")]
    pub dry_run: bool,
    /// Delete each old message once its session was written and read back
    /// containing it (default false).
    #[serde(default)]
    pub delete_old: bool,
    /// Legacy messages per batch (default 500, at most 5000).
    #[serde(default = "default_batch_size")]
    pub batch_size: u32,
    /// Names the run; its checkpoint is kept under this name, so redelivered
    /// or continued messages resume it instead of starting over.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
    /// Set on continuation messages: the invocation step that wrote it. A
    /// message older than the run's checkpoint is a stale redelivery.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<u64>,
    /// Dry runs write nothing, so their progress travels in the message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resume: Option<crate::migration::Checkpoint>,
}

fn yes() -> bool {
    true
}

fn default_batch_size() -> u32 {
    DEFAULT_BATCH_SIZE
}

impl Default for MigrationRequest {
    fn default() -> Self {
        Self {
            dry_run: true,
            delete_old: false,
            batch_size: DEFAULT_BATCH_SIZE,
            run_id: None,
            step: None,
            resume: None,
        }
    }
}

impl MigrationRequest {
    /// Checks the values serde cannot.
    pub fn validated(self) -> Result<Self, String> {
        if !(1..=MAX_BATCH_SIZE).contains(&self.batch_size) {
            return Err(format!("batch_size must be between 1 and {MAX_BATCH_SIZE}"));
        }
        if self.dry_run && self.delete_old {
            return Err("delete_old needs dry_run=false: a dry run deletes nothing".into());
        }
        if let Some(run) = &self.run_id
            && (run.is_empty()
                || run.len() > 100
                || !run
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':' | b'-')))
        {
            return Err("run_id must be 1 to 100 characters of [A-Za-z0-9_.:-]".into());
        }
        Ok(self)
    }

    /// The request the straggler sweep enqueues: a real (not dry) run that
    /// deletes nothing, named after the time.
    pub fn sweep(now: DateTime<Utc>) -> Self {
        Self {
            dry_run: false,
            delete_old: false,
            batch_size: DEFAULT_BATCH_SIZE,
            run_id: Some(format!("sweep-{}", now.format("%Y%m%dT%H%M%SZ"))),
            step: None,
            resume: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_message_is_a_safe_dry_run() {
        let r: MigrationRequest = serde_json::from_str("{}").unwrap();
        assert_eq!(r, MigrationRequest::default());
        assert!(r.dry_run && !r.delete_old);
    }

    #[test]
    fn typos_and_bad_values_are_refused() {
        assert!(serde_json::from_str::<MigrationRequest>(r#"{"dryrun":false}"#).is_err());
        assert!(serde_json::from_str::<MigrationRequest>(r#"{"dry_run":"no"}"#).is_err());
        let zero: MigrationRequest = serde_json::from_str(r#"{"batch_size":0}"#).unwrap();
        assert!(zero.validated().is_err());
        let contradictory: MigrationRequest =
            serde_json::from_str(r#"{"delete_old":true}"#).unwrap();
        assert!(contradictory.validated().is_err());
        let bad_run: MigrationRequest = serde_json::from_str(r#"{"run_id":"a b"}"#).unwrap();
        assert!(bad_run.validated().is_err());
    }
}

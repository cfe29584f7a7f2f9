//! What retention needs of a store: the sessions, of every user, that a
//! retention rule applies to. The rules themselves (and the archiving and
//! deleting, through the ordinary guarded writes) are in `crate::retention`.

use futures::stream::BoxStream;

use super::{ETag, StoreResult};
use crate::domain::{SessionId, Timestamp, UserId};

/// A session a retention rule applies to, with the version it was seen at:
/// acting on it is guarded by that version, so a session touched since is
/// left alone.
#[derive(Debug, Clone, PartialEq)]
pub struct RetentionCandidate {
    /// The session.
    pub id: SessionId,
    /// Its owner.
    pub user_id: Option<UserId>,
    /// Its version when it was found.
    pub etag: ETag,
    /// Its messages, every branch's (what deleting it removes).
    pub message_count: u64,
    /// The time the rule measured: `updated_at` for archiving, the time it
    /// was archived for deleting.
    pub since: Timestamp,
}

/// Candidates, read page by page as the stream is polled.
pub type CandidateStream = BoxStream<'static, StoreResult<RetentionCandidate>>;

/// Finding the sessions retention rules apply to, across all users.
pub trait RetentionStore: Send + Sync {
    /// Active sessions last changed (`updated_at`) before `cutoff`.
    fn untouched_before(&self, cutoff: Timestamp) -> CandidateStream;

    /// Archived sessions archived before `cutoff`: by `archived_at`, or for
    /// a session archived before that field existed, by `updated_at` (which
    /// archiving set, so it is never earlier than the archiving).
    fn archived_before(&self, cutoff: Timestamp) -> CandidateStream;
}

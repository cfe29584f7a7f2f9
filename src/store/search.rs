//! Full-text search over one owner's history: the contract every backend
//! fulfils. What matches, the snippet and the order are decided by
//! [`crate::search`], the same for every backend; a backend only finds the
//! candidates and hands them to those rules.

use std::sync::Arc;

use async_trait::async_trait;

use super::{Owner, StoreResult};
use crate::{
    domain::{MessageId, MessageType, SessionId, Timestamp},
    search::{HitKey, SearchTerms},
};

/// A search: its terms and which page of hits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchQuery {
    /// The parsed `q`.
    pub terms: SearchTerms,
    /// Most hits on the page, 1–50.
    pub limit: u32,
    /// Only active (or only archived) sessions.
    pub is_active: Option<bool>,
    /// Only hits after this position (from the previous page's token).
    pub after: Option<HitKey>,
}

/// One hit: a message, or a session whose name matches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchHit {
    /// The session.
    pub session_id: SessionId,
    /// Its name.
    pub session_name: Option<String>,
    /// The message; `None` when the hit is the session's name.
    pub message_id: Option<MessageId>,
    /// Who wrote the message; `None` for a name hit.
    pub message_type: Option<MessageType>,
    /// When the message was written; for a name hit, the session's
    /// `updated_at`.
    pub created_at: Timestamp,
    /// A piece of the message (or the name) around the first match.
    pub snippet: String,
}

impl SearchHit {
    /// Where the hit sorts.
    pub fn key(&self) -> HitKey {
        HitKey::new(self.created_at, &self.session_id, self.message_id.as_ref())
    }
}

/// A page of hits, newest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchPage {
    /// At most `limit` hits. A page may hold fewer (even none) and still
    /// have a continuation: the store stopped after a bounded amount of work.
    pub hits: Vec<SearchHit>,
    /// Where the next page starts; `None` when there are no more hits.
    pub continuation: Option<HitKey>,
}

impl SearchPage {
    /// The page out of `hits` (in any order, all after the query's
    /// position): the first `limit` of them. `stopped_at` is where the store
    /// stopped looking when it did not look at everything: it has found
    /// every hit before that position.
    pub fn from_hits(mut hits: Vec<SearchHit>, limit: u32, stopped_at: Option<HitKey>) -> Self {
        hits.sort_by_key(SearchHit::key);
        let limit = limit as usize;
        let continuation = if hits.len() > limit {
            hits.truncate(limit);
            hits.last().map(SearchHit::key)
        } else {
            stopped_at
        };
        Self { hits, continuation }
    }
}

/// Search over an owner's sessions. A user finds only their own sessions;
/// [`Owner::Anonymous`] searches the sessions without an owner.
#[async_trait]
pub trait SearchStore: Send + Sync + std::fmt::Debug + 'static {
    /// A page of the owner's hits for `query`, newest first: messages whose
    /// content, and sessions whose name, match every term.
    async fn search(&self, owner: &Owner, query: &SearchQuery) -> StoreResult<SearchPage>;
}

/// A shared search handle.
pub type DynSearchStore = Arc<dyn SearchStore>;

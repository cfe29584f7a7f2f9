//! Listing an owner's sessions, newest activity first, and the version that
//! tells a cached listing is still current.

use async_trait::async_trait;

use super::{ETag, Owner, StoreResult};
use crate::domain::SessionSummary;

/// Filters and paging for listing sessions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListQuery {
    /// Page size, 1–200.
    pub limit: u32,
    /// Only active (or only archived) sessions.
    pub is_active: Option<bool>,
    /// Where the previous page ended, as the store returned it.
    pub continuation: Option<String>,
}

/// One page of a session listing, newest activity first.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionPage {
    /// The sessions, without messages.
    pub sessions: Vec<SessionSummary>,
    /// Pass back to get the next page; `None` on the last page.
    pub continuation: Option<String>,
}

/// Listing sessions.
#[async_trait]
pub trait ListStore {
    /// A page of the owner's sessions, most recently updated first.
    async fn list_sessions(&self, owner: &Owner, query: &ListQuery) -> StoreResult<SessionPage>;

    /// A version of all the owner's sessions: it changes whenever any of
    /// them is created, changed or deleted, so a listing read after it was
    /// `v` is current while it is still `v`. `None` when the store keeps no
    /// such version (every listing is then read afresh).
    async fn sessions_version(&self, owner: &Owner) -> StoreResult<Option<ETag>> {
        let _ = owner;
        Ok(None)
    }
}

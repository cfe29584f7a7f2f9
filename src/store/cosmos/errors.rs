//! From the SDK's answers to the store's: error mapping, ETags, and how long
//! and how fast to retry against concurrent writers.

use std::time::Duration;

use azure_core::http::Etag;
use azure_data_cosmos::{CosmosError, models::ItemResponse};

use crate::{
    domain::ValidationError,
    store::{ETag, StoreError, StoreResult},
};

/// How long an append keeps retrying against concurrent writers before it
/// answers "unavailable" (the API then says 503 with Retry-After).
pub(super) const APPEND_DEADLINE: Duration = Duration::from_secs(30);

/// The answer when a write could not get through in time.
pub(super) fn busy() -> StoreError {
    StoreError::Unavailable {
        retry_after: Some(Duration::from_secs(1)),
    }
}

pub(super) fn status(e: &CosmosError) -> u16 {
    u16::from(e.status().status_code())
}

/// Maps an SDK error to the store's. Throttling, timeouts, unavailability
/// (after the SDK's own retries) and failing to get a token are worth
/// retrying later; anything else is internal and its text goes to the log
/// only.
pub(super) fn store_error(e: CosmosError) -> StoreError {
    let s = e.status();
    if s.is_not_found() || status(&e) == 404 {
        StoreError::NotFound
    } else if s.is_conflict() {
        StoreError::Conflict("a session with this id already exists".into())
    } else if s.is_precondition_failed() {
        StoreError::PreconditionFailed
    } else if s.is_throttled()
        || s.is_timeout()
        || s.is_transient()
        || status(&e) == 503
        // No token (the identity endpoint failed): an outage, not a bug.
        || (status(&e) == 401 && !e.is_from_wire())
    {
        tracing::warn!(status = status(&e), "Cosmos DB unavailable: {e}");
        StoreError::Unavailable { retry_after: None }
    } else {
        StoreError::Internal(anyhow::Error::new(e).context("Cosmos DB"))
    }
}

pub(super) fn to_etag(etag: &ETag) -> Etag {
    Etag::from(etag.as_str().to_owned())
}

pub(super) fn invalid_continuation() -> StoreError {
    StoreError::Invalid(ValidationError::new(
        "continuation_token",
        "is not a token this service returned for this query",
    ))
}

/// The ETag of a response; its absence is a fault of the server.
pub(super) fn etag_of(response: &ItemResponse, what: &str) -> StoreResult<ETag> {
    response
        .headers()
        .etag()
        .map(|e| ETag::new(e.to_string()))
        .ok_or_else(|| StoreError::Internal(anyhow::anyhow!("{what}")))
}

/// What a read meets when the session changed after it read the session
/// document: a sealed page or an alternative written (or deleted) by a
/// later version. The read is worth doing again.
#[derive(Debug, thiserror::Error)]
#[error("the session changed while it was being read")]
pub(super) struct Stale;

/// A [`Stale`] read, as a store error.
pub(super) fn stale() -> StoreError {
    StoreError::Internal(anyhow::Error::new(Stale))
}

/// Whether `e` is a [`Stale`] read.
pub(super) fn is_stale(e: &StoreError) -> bool {
    matches!(e, StoreError::Internal(inner) if inner.is::<Stale>())
}

/// Tries a read up to three times while it meets a session changing under
/// it ([`Stale`]); rewrites of pages are rare, so a second try almost always
/// reads one version.
pub(super) async fn again_if_stale<T, F, Fut>(mut read: F) -> StoreResult<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = StoreResult<T>>,
{
    let mut tries = 0;
    loop {
        match read().await {
            Err(e) if is_stale(&e) && tries < 2 => tries += 1,
            other => return other,
        }
    }
}

/// Exponential backoff with full jitter, capped at half a second.
pub(super) fn backoff(attempt: u32) -> Duration {
    let cap_ms = (5u64 << attempt.min(7)).min(500);
    Duration::from_millis(rand::random_range(0..=cap_ms))
}

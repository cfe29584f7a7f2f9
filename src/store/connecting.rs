//! A store that connects in the background. The service serves from its
//! first millisecond whatever the state of the backend: until the backend is
//! reached, every operation answers [`StoreError::Unavailable`] (the API
//! says 503 with `Retry-After`), liveness says "connecting" and why the last
//! attempt failed, and readiness says the same as a 503. Attempts go on with
//! capped, jittered backoff; the first that succeeds puts the real store in
//! place, and from then on every operation goes straight to it.
//!
//! The wrapper is generic over the concrete store, so that any further
//! capability trait of the backends gets its delegation here in a few lines.

use std::{
    future::Future,
    sync::{Mutex, OnceLock},
    time::{Duration, Instant},
};

use async_trait::async_trait;

use futures::{StreamExt as _, stream::BoxStream};

use super::{
    Appended, Cause, ETag, EraseStore, Erased, ExportStore, ImportOutcome, ImportStore, ListQuery,
    MessagePage, MessageQuery, MigrationStore, Owner, RetentionStore, SearchPage, SearchQuery,
    SearchStore, SessionFields, SessionImport, SessionPage, SessionRead, SessionStore, StoreError,
    StoreResult, StoreState, Unready, Versioned, export::SummaryStream, retention::CandidateStream,
};
use crate::domain::{
    ChatSession, NewMessage, NewSession, SessionId, SessionPatch, Timestamp, UserId,
};

/// How long a readiness answer is reused. Readiness is anonymous and may be
/// polled by several monitors; the backend is asked at most this often.
const CHECK_REUSE: Duration = Duration::from_secs(5);

/// Longest a readiness check may take before it counts as failed.
const CHECK_TIMEOUT: Duration = Duration::from_secs(10);

/// Longest one connection attempt may take before it counts as failed.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(60);

/// The wait between connection attempts: doubling from `first` up to `max`,
/// with jitter so that many instances started together do not retry in step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// The wait after the first failure (before jitter).
    pub first: Duration,
    /// The longest wait (before jitter).
    pub max: Duration,
}

impl Default for Backoff {
    /// From ½ s up to 30 s: a few quick retries for a blip, then one attempt
    /// every 15–30 s for as long as it takes (role assignments can need
    /// minutes to propagate after a deployment).
    fn default() -> Self {
        Self {
            first: Duration::from_millis(500),
            max: Duration::from_secs(30),
        }
    }
}

impl Backoff {
    /// The wait after `failures` failed attempts in a row (1 after the
    /// first): the capped exponential step, of which half is fixed and half
    /// random ("equal jitter"), so it is never zero and never over `max`.
    pub fn delay(&self, failures: u32) -> Duration {
        let step = self
            .first
            .saturating_mul(1u32 << failures.saturating_sub(1).min(20))
            .min(self.max);
        let half = step / 2;
        half + half.mul_f64(rand::random::<f64>())
    }
}

/// A store being connected in the background; see the module doc.
pub struct Connecting<S> {
    kind: &'static str,
    backend: &'static str,
    store: OnceLock<S>,
    progress: Mutex<Progress>,
    checked: tokio::sync::Mutex<Option<Checked>>,
}

#[derive(Debug, Default)]
struct Progress {
    attempts: u32,
    last: Option<Unready>,
    /// When the next attempt starts; `None` while one is under way.
    next_attempt: Option<Instant>,
    /// The last readiness answer after connecting, if it was a failure.
    failing: Option<Unready>,
}

#[derive(Debug)]
struct Checked {
    at: Instant,
    result: Result<(), Unready>,
}

impl<S> std::fmt::Debug for Connecting<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connecting")
            .field("kind", &self.kind)
            .field("connected", &self.store.get().is_some())
            .finish_non_exhaustive()
    }
}

impl<S: SessionStore> Connecting<S> {
    /// A store of kind `kind` (as [`SessionStore::kind`] says it) on
    /// `backend` (its name for people, e.g. `Cosmos DB`), not connected yet.
    pub fn new(kind: &'static str, backend: &'static str) -> Self {
        Self {
            kind,
            backend,
            store: OnceLock::new(),
            progress: Mutex::default(),
            checked: tokio::sync::Mutex::const_new(None),
        }
    }

    /// Runs `attempt` until it yields the store, waiting by `backoff` after
    /// each failure (or longer, when the failure says so), and logs every
    /// failure with its cause. Returns once connected; never gives up.
    pub async fn connect<F, Fut>(&self, backoff: Backoff, mut attempt: F)
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<S, Unready>>,
    {
        let started = Instant::now();
        loop {
            let result = match tokio::time::timeout(ATTEMPT_TIMEOUT, attempt()).await {
                Ok(result) => result,
                Err(_) => Err(Unready::new(
                    Cause::Other {
                        reason: format!(
                            "{} did not answer within {} s",
                            self.backend,
                            ATTEMPT_TIMEOUT.as_secs()
                        ),
                    },
                    Duration::ZERO,
                )),
            };
            match result {
                Ok(store) => {
                    let attempts = {
                        let mut progress = self.progress();
                        progress.attempts += 1;
                        progress.last = None;
                        progress.attempts
                    };
                    if self.store.set(store).is_err() {
                        tracing::error!("connected twice to {}; keeping the first", self.backend);
                    }
                    tracing::info!(
                        attempts,
                        seconds = started.elapsed().as_secs_f64(),
                        "connected to {}; serving requests",
                        self.backend
                    );
                    return;
                }
                Err(why) => {
                    let (attempts, wait) = {
                        let mut progress = self.progress();
                        progress.attempts += 1;
                        let wait = backoff.delay(progress.attempts).max(why.retry_after);
                        progress.next_attempt = Some(Instant::now() + wait);
                        progress.last = Some(why.clone());
                        (progress.attempts, wait)
                    };
                    tracing::warn!(
                        attempt = attempts,
                        cause = why.cause.code(),
                        retry_in_seconds = wait.as_secs_f64(),
                        "{} is not reachable yet (data requests answer 503 meanwhile): {why}",
                        self.backend
                    );
                    tokio::time::sleep(wait).await;
                    self.progress().next_attempt = None;
                }
            }
        }
    }

    fn progress(&self) -> std::sync::MutexGuard<'_, Progress> {
        self.progress.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Why it is not connected and when to ask again.
    fn not_connected(&self) -> Unready {
        let progress = self.progress();
        let retry_after = match progress.next_attempt {
            Some(at) => at
                .saturating_duration_since(Instant::now())
                .max(Duration::from_secs(1)),
            // An attempt is under way.
            None => Duration::from_secs(2),
        };
        let cause = progress.last.as_ref().map_or(
            Cause::Starting {
                backend: self.backend,
            },
            |last| last.cause.clone(),
        );
        Unready::new(cause, retry_after)
    }

    /// The store, or "unavailable" while connecting.
    fn ready(&self) -> StoreResult<&S> {
        self.store.get().ok_or_else(|| StoreError::Unavailable {
            retry_after: Some(self.not_connected().retry_after),
        })
    }

    /// The store's stream, or one "unavailable" while connecting.
    fn stream<T: Send + 'static>(
        &self,
        open: impl FnOnce(&S) -> BoxStream<'static, StoreResult<T>>,
    ) -> BoxStream<'static, StoreResult<T>> {
        match self.ready() {
            Ok(store) => open(store),
            Err(e) => futures::stream::once(async move { Err(e) }).boxed(),
        }
    }
}

impl<S: SessionStore> ExportStore for Connecting<S> {
    fn all_sessions(&self, owner: &Owner) -> SummaryStream {
        self.stream(|store| store.all_sessions(owner))
    }
}

#[async_trait]
impl<S: SessionStore> EraseStore for Connecting<S> {
    async fn erase_user(&self, user: &UserId, deadline: Instant) -> StoreResult<Erased> {
        self.ready()?.erase_user(user, deadline).await
    }
}

#[async_trait]
impl<S: SessionStore> ImportStore for Connecting<S> {
    async fn sessions_of_others(
        &self,
        owner: &Owner,
        ids: &[SessionId],
    ) -> StoreResult<Vec<SessionId>> {
        self.ready()?.sessions_of_others(owner, ids).await
    }

    async fn import_session(
        &self,
        fields: SessionFields,
        import: SessionImport,
    ) -> StoreResult<ImportOutcome> {
        self.ready()?.import_session(fields, import).await
    }
}

impl<S: SessionStore> RetentionStore for Connecting<S> {
    fn untouched_before(&self, cutoff: Timestamp) -> CandidateStream {
        self.stream(|store| store.untouched_before(cutoff))
    }

    fn archived_before(&self, cutoff: Timestamp) -> CandidateStream {
        self.stream(|store| store.archived_before(cutoff))
    }
}

#[async_trait]
impl<S: SessionStore + SearchStore> SearchStore for Connecting<S> {
    async fn search(&self, owner: &Owner, query: &SearchQuery) -> StoreResult<SearchPage> {
        self.ready()?.search(owner, query).await
    }
}

#[async_trait]
impl<S: SessionStore> SessionStore for Connecting<S> {
    fn kind(&self) -> &'static str {
        self.kind
    }

    async fn create_session(&self, new: NewSession) -> StoreResult<Versioned<ChatSession>> {
        self.ready()?.create_session(new).await
    }

    async fn get_session_if_changed(
        &self,
        owner: &Owner,
        id: &SessionId,
        known: Option<&ETag>,
    ) -> StoreResult<Option<Versioned<ChatSession>>> {
        self.ready()?.get_session_if_changed(owner, id, known).await
    }

    async fn get_session(
        &self,
        owner: &Owner,
        id: &SessionId,
    ) -> StoreResult<Versioned<ChatSession>> {
        self.ready()?.get_session(owner, id).await
    }

    async fn read_session(
        &self,
        owner: &Owner,
        id: &SessionId,
        known: Option<&ETag>,
    ) -> StoreResult<Option<SessionRead>> {
        self.ready()?.read_session(owner, id, known).await
    }

    async fn get_session_tail(
        &self,
        owner: &Owner,
        id: &SessionId,
        limit: u32,
    ) -> StoreResult<Versioned<ChatSession>> {
        self.ready()?.get_session_tail(owner, id, limit).await
    }

    async fn list_messages(
        &self,
        owner: &Owner,
        id: &SessionId,
        query: MessageQuery,
    ) -> StoreResult<MessagePage> {
        self.ready()?.list_messages(owner, id, query).await
    }

    async fn list_sessions(&self, owner: &Owner, query: &ListQuery) -> StoreResult<SessionPage> {
        self.ready()?.list_sessions(owner, query).await
    }

    async fn sessions_version(&self, owner: &Owner) -> StoreResult<Option<ETag>> {
        self.ready()?.sessions_version(owner).await
    }

    async fn update_session(
        &self,
        owner: &Owner,
        id: &SessionId,
        patch: &SessionPatch,
        if_match: Option<&ETag>,
    ) -> StoreResult<Versioned<ChatSession>> {
        self.ready()?
            .update_session(owner, id, patch, if_match)
            .await
    }

    async fn delete_session(
        &self,
        owner: &Owner,
        id: &SessionId,
        if_match: Option<&ETag>,
    ) -> StoreResult<()> {
        self.ready()?.delete_session(owner, id, if_match).await
    }

    async fn append_message(
        &self,
        owner: &Owner,
        id: &SessionId,
        message: NewMessage,
    ) -> StoreResult<Appended> {
        self.ready()?.append_message(owner, id, message).await
    }

    fn state(&self) -> StoreState {
        let Some(store) = self.store.get() else {
            let progress = self.progress();
            return StoreState::Connecting {
                attempts: progress.attempts,
                last: progress.last.clone(),
            };
        };
        match self.progress().failing.clone() {
            Some(why) => StoreState::Unavailable(why),
            None => store.state(),
        }
    }

    /// Not connected: why, at once. Connected: the store's own check, run
    /// at most once per [`CHECK_REUSE`] however many ask at the same time.
    async fn check_ready(&self) -> Result<(), Unready> {
        let Some(store) = self.store.get() else {
            return Err(self.not_connected());
        };
        let mut checked = self.checked.lock().await;
        if let Some(last) = checked.as_ref()
            && last.at.elapsed() < CHECK_REUSE
        {
            return last.result.clone();
        }
        let result = match tokio::time::timeout(CHECK_TIMEOUT, store.check_ready()).await {
            Ok(result) => result,
            Err(_) => Err(Unready::new(
                Cause::Other {
                    reason: format!(
                        "{} did not answer the readiness check within {} s",
                        self.backend,
                        CHECK_TIMEOUT.as_secs()
                    ),
                },
                Duration::from_secs(5),
            )),
        };
        match &result {
            Ok(()) => {
                if let Some(was) = self.progress().failing.take() {
                    tracing::info!("{} answers again (it was not ready: {was})", self.backend);
                }
            }
            Err(why) => {
                tracing::warn!(
                    cause = why.cause.code(),
                    "{} is not ready: {why}",
                    self.backend
                );
                self.progress().failing = Some(why.clone());
            }
        }
        *checked = Some(Checked {
            at: Instant::now(),
            result: result.clone(),
        });
        result
    }
}

#[async_trait]
impl<S: MigrationStore> MigrationStore for Connecting<S> {
    async fn import_messages(&self, import: SessionImport) -> StoreResult<ImportOutcome> {
        self.ready()?.import_messages(import).await
    }

    async fn load_checkpoint(&self, run_id: &str) -> StoreResult<Option<Versioned<String>>> {
        self.ready()?.load_checkpoint(run_id).await
    }

    async fn save_checkpoint(
        &self,
        run_id: &str,
        state: &str,
        expected: Option<&ETag>,
    ) -> StoreResult<ETag> {
        self.ready()?.save_checkpoint(run_id, state, expected).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_its_cap_and_is_never_zero() {
        let backoff = Backoff::default();
        for failures in 1..40 {
            let step = (Duration::from_millis(500) * 2u32.pow((failures - 1).min(20)))
                .min(Duration::from_secs(30));
            let delay = backoff.delay(failures);
            assert!(delay >= step / 2 && delay <= step, "{failures}: {delay:?}");
        }
    }
}

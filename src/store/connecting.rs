//! A backend reached in the background. The service serves from its first
//! millisecond whatever the state of the backend: until it is reached, every
//! operation of the store that owns the [`Connection`] answers
//! [`StoreError::Unavailable`] (the API says 503 with `Retry-After`),
//! liveness says "connecting" and why the last attempt failed, and readiness
//! says the same as a 503. Attempts go on with capped, jittered backoff; the
//! first that succeeds puts the connected value (Cosmos DB's container) in
//! place, and from then on every operation uses it.
//!
//! The store holds the connection and asks it for the connected value at
//! the start of each operation (`self.container()?`), so an operation added
//! to the store needs no line here.

use std::{
    future::Future,
    sync::{Mutex, OnceLock},
    time::{Duration, Instant},
};

use super::{Cause, StoreError, StoreResult, StoreState, Unready};

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

/// A backend being reached in the background; see the module doc. `T` is
/// what connecting yields (Cosmos DB's container client).
pub struct Connection<T> {
    backend: &'static str,
    connected: OnceLock<T>,
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

impl<T> std::fmt::Debug for Connection<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("backend", &self.backend)
            .field("connected", &self.connected.get().is_some())
            .finish_non_exhaustive()
    }
}

impl<T> Connection<T> {
    /// Not connected yet to `backend` (its name for people, e.g.
    /// `Cosmos DB`); [`connect`](Self::connect) reaches it.
    pub fn new(backend: &'static str) -> Self {
        Self {
            backend,
            connected: OnceLock::new(),
            progress: Mutex::default(),
            checked: tokio::sync::Mutex::const_new(None),
        }
    }

    /// Connected already, to `value` (a store opened before serving).
    pub fn connected(backend: &'static str, value: T) -> Self {
        let connection = Self::new(backend);
        let _ = connection.connected.set(value);
        connection
    }

    /// Runs `attempt` until it connects, waiting by `backoff` after each
    /// failure (or longer, when the failure says so), and logs every failure
    /// with its cause. Returns once connected; never gives up.
    pub async fn connect<F, Fut>(&self, backoff: Backoff, mut attempt: F)
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, Unready>>,
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
                Ok(value) => {
                    let attempts = {
                        let mut progress = self.progress();
                        progress.attempts += 1;
                        progress.last = None;
                        progress.attempts
                    };
                    if self.connected.set(value).is_err() {
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
                Err(why) => self.failed(&backoff, why).await,
            }
        }
    }

    /// An attempt failed: said, and waited for.
    async fn failed(&self, backoff: &Backoff, why: Unready) {
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

    /// The connected value, or "unavailable" while connecting.
    pub fn ready(&self) -> StoreResult<&T> {
        self.connected.get().ok_or_else(|| StoreError::Unavailable {
            retry_after: Some(self.not_connected().retry_after),
        })
    }

    /// As last known, without asking the backend (what liveness reports).
    pub fn state(&self) -> StoreState {
        let progress = self.progress();
        if self.connected.get().is_none() {
            return StoreState::Connecting {
                attempts: progress.attempts,
                last: progress.last.clone(),
            };
        }
        match progress.failing.clone() {
            Some(why) => StoreState::Unavailable(why),
            None => StoreState::Ready,
        }
    }

    /// Not connected: why, at once. Connected: `probe` of the connected
    /// value, run at most once per [`CHECK_REUSE`] however many ask at the
    /// same time.
    pub async fn check_ready<F>(&self, probe: F) -> Result<(), Unready>
    where
        F: AsyncFnOnce(&T) -> Result<(), Unready>,
    {
        let Some(connected) = self.connected.get() else {
            return Err(self.not_connected());
        };
        let mut checked = self.checked.lock().await;
        if let Some(last) = checked.as_ref()
            && last.at.elapsed() < CHECK_REUSE
        {
            return last.result.clone();
        }
        let result = match tokio::time::timeout(CHECK_TIMEOUT, probe(connected)).await {
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
        self.checked_now(&result);
        *checked = Some(Checked {
            at: Instant::now(),
            result: result.clone(),
        });
        result
    }

    /// Says when readiness fails, and when it comes back.
    fn checked_now(&self, result: &Result<(), Unready>) {
        match result {
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

//! Refusals reported: each one counted (`chat_sessions.refused{reason}`),
//! and logged at most once a minute per reason and user, so that a flood
//! of refusals is one line a minute, not one per request. The user is
//! never logged in clear: a line carries a one-way hash of the user id
//! (the first 12 hex digits of its SHA-256), enough to tell one abuser
//! from many and to match a user the operator already knows.

use std::{
    collections::HashMap,
    sync::{Mutex, OnceLock},
    time::{Duration, Instant},
};

use super::Refusal;
use crate::{digest::sha256_hex, telemetry::instruments};

/// How often one reason is logged for one user at most.
const EVERY: Duration = Duration::from_secs(60);
/// Entries kept at most before the old ones are dropped.
const MAX_ENTRIES: usize = 10_000;

/// When each (reason, user hash) was last logged, and how many refusals
/// were not logged since.
type Logged = HashMap<(Refusal, String), (Instant, u64)>;

static LOGGED: OnceLock<Mutex<Logged>> = OnceLock::new();

/// A one-way hash of `user` for the log: 12 hex digits of its SHA-256.
pub fn user_hash(user: &str) -> String {
    sha256_hex(user, 12)
}

/// Counts a refusal for `reason` of a request by `user` (a user id, or
/// `None` when unknown or anonymous), and logs it unless it was logged for
/// this user in the last minute.
pub fn refused(reason: Refusal, user: Option<&str>) {
    instruments::refused(reason.reason());
    let who = user.map_or_else(|| "-".to_owned(), user_hash);
    let now = Instant::now();
    let suppressed = {
        let mut logged = LOGGED
            .get_or_init(Mutex::default)
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if logged.len() >= MAX_ENTRIES {
            logged.retain(|_, (at, _)| now.duration_since(*at) < EVERY);
        }
        match logged.get_mut(&(reason, who.clone())) {
            Some((at, skipped)) if now.duration_since(*at) < EVERY => {
                *skipped += 1;
                return;
            }
            Some((at, skipped)) => {
                *at = now;
                std::mem::take(skipped)
            }
            None => {
                logged.insert((reason, who.clone()), (now, 0));
                0
            }
        }
    };
    tracing::warn!(
        reason = reason.reason(),
        user_hash = %who,
        suppressed,
        "request refused by {} (logged once a minute per user and reason; `suppressed` \
         counts those not logged since the last line)",
        reason.setting()
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hash_is_short_stable_and_not_the_user() {
        let h = user_hash("alice@example.com");
        assert_eq!(h.len(), 12);
        assert_eq!(h, user_hash("alice@example.com"));
        assert_ne!(h, user_hash("bob@example.com"));
        assert!(!h.contains("alice"));
    }
}

//! Appends to one session from this process take turns. Optimistic
//! concurrency alone lets every concurrent writer read, patch and lose with
//! 412 but one, round after round, so under heavy contention a writer can
//! lose until its deadline; in turn, each append is one patch on the version
//! the previous one left, and only other processes' writers still race.
//! Turns are handed out first come, first served.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use tokio::sync::{Mutex as Lane, OwnedMutexGuard};

use super::cache::SessionKey;

type Lanes = Arc<Mutex<HashMap<SessionKey, Arc<Lane<()>>>>>;

/// The waiting lines, one per session being appended to.
#[derive(Debug, Default)]
pub(super) struct Turns {
    lanes: Lanes,
}

/// One writer's turn: the next one in line starts when it is dropped.
pub(super) struct Turn {
    lanes: Lanes,
    key: SessionKey,
    guard: Option<OwnedMutexGuard<()>>,
}

impl Turns {
    /// Waits for this process's turn to append to session `key`, at most
    /// `patience`; `None` when it did not come by then.
    pub(super) async fn take(&self, key: &SessionKey, patience: Duration) -> Option<Turn> {
        let lane = {
            let mut lanes = self.lanes.lock().unwrap_or_else(|e| e.into_inner());
            lanes.entry(key.clone()).or_default().clone()
        };
        let mut turn = Turn {
            lanes: self.lanes.clone(),
            key: key.clone(),
            guard: None,
        };
        // Dropped unfinished, `turn` still tidies the line up.
        turn.guard = Some(
            tokio::time::timeout(patience, lane.lock_owned())
                .await
                .ok()?,
        );
        Some(turn)
    }

    #[cfg(test)]
    fn lines(&self) -> usize {
        self.lanes.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

impl Drop for Turn {
    fn drop(&mut self) {
        let mut lanes = self.lanes.lock().unwrap_or_else(|e| e.into_inner());
        drop(self.guard.take());
        // Nobody else holds or waits for this line (they would hold a clone
        // of it, taken under this lock): it goes.
        if lanes
            .get(&self.key)
            .is_some_and(|lane| Arc::strong_count(lane) == 1)
        {
            lanes.remove(&self.key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::SessionId;

    fn key(id: &str) -> SessionKey {
        (None, SessionId::parse(id).unwrap())
    }

    #[tokio::test]
    async fn one_turn_at_a_time_per_session_in_arrival_order() {
        let turns = Arc::new(Turns::default());
        let order = Arc::new(Mutex::new(Vec::new()));
        let first = turns.take(&key("s"), Duration::from_secs(5)).await.unwrap();
        // Another session is not held up.
        let other = turns.take(&key("t"), Duration::from_millis(10)).await;
        assert!(other.is_some());
        drop(other);
        let mut waiting = Vec::new();
        for i in 0..5 {
            let (turns, order) = (turns.clone(), order.clone());
            waiting.push(tokio::spawn(async move {
                let _turn = turns.take(&key("s"), Duration::from_secs(5)).await.unwrap();
                order.lock().unwrap().push(i);
                tokio::task::yield_now().await;
            }));
            // Let each one queue before the next.
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert!(
            turns
                .take(&key("s"), Duration::from_millis(20))
                .await
                .is_none(),
            "the line is held"
        );
        drop(first);
        for task in waiting {
            task.await.unwrap();
        }
        assert_eq!(*order.lock().unwrap(), vec![0, 1, 2, 3, 4]);
        assert_eq!(turns.lines(), 0, "no line is left behind");
    }
}

//! WAL checkpoints on a thread of their own, beside the writer.
//!
//! SQLite's automatic checkpoint runs on the connection that commits, once
//! the WAL holds 1,000 pages: on the single writer thread, inside a group's
//! commit, it copied the WAL back into the database file and flushed it
//! while every write behind it waited (14 % of the writer's time when
//! appends went to many sessions at once, and a latency spike at each
//! one). Here a second connection runs passive checkpoints, which never
//! block the writer or the readers, every [`BUSY_INTERVAL`] while writes
//! come in. The writer keeps an automatic checkpoint at a far larger
//! size ([`BACKSTOP_PAGES`]) only as a backstop, should this thread ever
//! fall behind.

use std::{
    path::Path,
    sync::{
        Arc,
        mpsc::{self, RecvTimeoutError, Sender},
    },
    thread::JoinHandle,
    time::Duration,
};

use anyhow::Context as _;
use rusqlite::Connection;

use super::{
    Durability,
    schema::open_connection,
    storage::{self, Disk},
};

/// Time between checkpoints while the WAL grows.
const BUSY_INTERVAL: Duration = Duration::from_millis(100);
/// Time between checks once a checkpoint found nothing to copy.
const IDLE_INTERVAL: Duration = Duration::from_secs(1);
/// The writer's own automatic checkpoint, kept as a backstop (pages).
pub(super) const BACKSTOP_PAGES: u32 = 10_000;

/// The checkpoint thread; dropping this stops it (after one last
/// checkpoint) and waits for it.
pub(super) struct Checkpointer {
    stop: Option<Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

/// Starts the checkpoint thread on a connection of its own to `path`. Each
/// time it wakes it also looks whether the database file is still there
/// (see [`Disk`]).
pub(super) fn start(
    path: &Path,
    durability: Durability,
    disk: Arc<Disk>,
) -> anyhow::Result<Checkpointer> {
    let conn = open_connection(path, durability, false)?;
    let (stop, stopped) = mpsc::channel::<()>();
    let thread = std::thread::Builder::new()
        .name("sqlite-checkpoint".into())
        .spawn(move || {
            let mut wait = BUSY_INTERVAL;
            let mut before = None;
            loop {
                let last = matches!(
                    stopped.recv_timeout(wait),
                    Ok(()) | Err(RecvTimeoutError::Disconnected)
                );
                disk.check_file();
                let now = checkpoint(&conn)
                    .inspect_err(|e| storage::log_checkpoint_failure(e, &conn))
                    .ok();
                // The WAL did not change since the last look: no writes.
                wait = if now.is_none() || now == before {
                    IDLE_INTERVAL
                } else {
                    BUSY_INTERVAL
                };
                before = now;
                if last {
                    break;
                }
            }
        })
        .context("starting the SQLite checkpoint thread")?;
    Ok(Checkpointer {
        stop: Some(stop),
        thread: Some(thread),
    })
}

/// One passive checkpoint: copies what no reader still needs from the WAL
/// into the database file (and flushes it). Returns the WAL's pages and
/// how many of them are now in the database file.
fn checkpoint(conn: &Connection) -> rusqlite::Result<(i64, i64)> {
    conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |row| {
        Ok((row.get(1)?, row.get(2)?))
    })
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            tracing::error!("the SQLite checkpoint thread panicked");
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::super::{DB_FILE, Durability, SqliteStore};
    use crate::{
        domain::{JsonObject, NewSession, SessionId, Timestamp, UserId},
        store::SessionStore,
    };

    /// Sessions in the database file alone, without its WAL: what has been
    /// checkpointed (none while not even the tables are).
    fn checkpointed_sessions(dir: &std::path::Path) -> i64 {
        let copy = tempfile::tempdir().unwrap();
        std::fs::copy(dir.join(DB_FILE), copy.path().join(DB_FILE)).unwrap();
        let conn = rusqlite::Connection::open(copy.path().join(DB_FILE)).unwrap();
        conn.query_row("SELECT COUNT(*) FROM sessions", [], |r| r.get(0))
            .unwrap_or(0)
    }

    /// A write reaches the database file without the writer checkpointing
    /// (its own checkpoint waits for thousands of pages): the checkpoint
    /// thread copies it there, within a moment.
    #[tokio::test]
    async fn writes_are_checkpointed_beside_the_writer() {
        for durability in [Durability::Full, Durability::Normal] {
            let dir = tempfile::tempdir().unwrap();
            let store = SqliteStore::open(dir.path(), durability).unwrap();
            let new = NewSession::new(
                Some(SessionId::parse("s1").unwrap()),
                Some(UserId::parse("u").unwrap()),
                None,
                JsonObject::new(),
                Timestamp::now(),
            )
            .unwrap();
            store.create_session(new).await.unwrap();
            let deadline = Instant::now() + Duration::from_secs(10);
            while checkpointed_sessions(dir.path()) == 0 {
                assert!(
                    Instant::now() < deadline,
                    "{durability:?}: never checkpointed"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            assert_eq!(checkpointed_sessions(dir.path()), 1);
        }
    }
}

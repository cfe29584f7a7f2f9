//! WAL checkpoints on a thread of their own, beside the writer.
//!
//! SQLite's automatic checkpoint runs on the connection that commits, once
//! the WAL holds 1,000 pages: on the single writer thread, inside a group's
//! commit, it copied the WAL back into the database file and flushed it
//! while every write behind it waited (14 % of the writer's time when
//! appends went to many sessions at once, and a latency spike at each
//! one). Here a second connection runs passive checkpoints, which never
//! block the writer or the readers, every [`BUSY_INTERVAL`] while writes
//! come in. The writer keeps an automatic checkpoint, at the WAL's bound,
//! only as a backstop.
//!
//! That bound (`SQLITE_WAL_MAX_BYTES`, 16 MiB): the WAL file never shrinks
//! by itself (SQLite writes it over from the start once a checkpoint has
//! caught up, and only while no write came in since), so under steady
//! appends it grew to the backstop's size, and a burst left it at its
//! largest for good (28 MB for 4.5 MB of messages). Now three things hold
//! it: the writer's backstop checkpoint fires at the bound (the passive
//! ones never catch up while writes keep coming; the writer's own,
//! between two groups, always does, so the next group starts the WAL
//! over), the writer cuts the file back to the bound when it starts it
//! over (SQLite's `journal_size_limit`), and this thread truncates it once
//! writes stop. Measured with `scripts/bench.sh`, the backstop at 16 MiB
//! instead of 40 costs the appends nothing that shows through the noise
//! (docs/testing.md).

use std::{
    path::{Path, PathBuf},
    sync::{
        Arc,
        mpsc::{self, Receiver, RecvTimeoutError, Sender},
    },
    thread::JoinHandle,
    time::Duration,
};

use anyhow::Context as _;
use rusqlite::Connection;

use super::{
    Durability,
    connection::open_connection,
    storage::{self, Disk},
};

/// Time between checkpoints while the WAL grows.
const BUSY_INTERVAL: Duration = Duration::from_millis(100);
/// Time between checks once a checkpoint found nothing to copy.
const IDLE_INTERVAL: Duration = Duration::from_secs(1);
/// The fewest pages the writer's own checkpoint waits for (SQLite's own
/// default), whatever the bound.
const MIN_BACKSTOP_PAGES: i64 = 1_000;
/// Bytes a WAL frame adds to its page.
const FRAME_HEADER: i64 = 24;

/// The checkpoint thread; dropping this stops it (after one last
/// checkpoint) and waits for it.
pub(super) struct Checkpointer {
    stop: Option<Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

/// Sets up the writer's side of the WAL: its own automatic checkpoint, as
/// a backstop, once the WAL holds `wal_max_bytes`, and the size the file
/// is cut back to when a write starts it over (`journal_size_limit`).
pub(super) fn configure_writer(conn: &Connection, wal_max_bytes: u64) -> anyhow::Result<()> {
    let limit = i64::try_from(wal_max_bytes).unwrap_or(i64::MAX);
    let configure = || -> rusqlite::Result<()> {
        let page: i64 = conn.query_row("PRAGMA page_size", [], |row| row.get(0))?;
        let backstop = (limit / (page + FRAME_HEADER)).max(MIN_BACKSTOP_PAGES);
        conn.pragma_update(None, "wal_autocheckpoint", backstop)?;
        conn.pragma_update(None, "journal_size_limit", limit)
    };
    configure().context("configuring the SQLite writer")
}

/// Starts the checkpoint thread on a connection of its own to `path`; it
/// also cuts the WAL file back to `wal_max_bytes` once the writes stop.
pub(super) fn start(
    path: &Path,
    durability: Durability,
    wal_max_bytes: u64,
    disk: Arc<Disk>,
) -> anyhow::Result<Checkpointer> {
    let conn = open_connection(path, durability, false)?;
    // A truncating checkpoint waits for no one: if a reader or the writer
    // is in its way, it is tried again at the next quiet look.
    conn.busy_timeout(Duration::ZERO)
        .context("configuring the SQLite checkpoint connection")?;
    let mut wal = path.as_os_str().to_owned();
    wal.push("-wal");
    let wal = Wal {
        path: wal.into(),
        max_bytes: wal_max_bytes,
    };
    let (stop, stopped) = mpsc::channel::<()>();
    let thread = std::thread::Builder::new()
        .name("sqlite-checkpoint".into())
        .spawn(move || run(&conn, &stopped, &wal, &disk))
        .context("starting the SQLite checkpoint thread")?;
    Ok(Checkpointer {
        stop: Some(stop),
        thread: Some(thread),
    })
}

/// The WAL file, and the most of the disk it may keep once writes stop.
struct Wal {
    path: PathBuf,
    max_bytes: u64,
}

/// The checkpoint thread: a passive checkpoint every [`BUSY_INTERVAL`]
/// while the WAL grows, every [`IDLE_INTERVAL`] once it does not; at the
/// first quiet look, the WAL cut back to its bound. Ends after one last
/// checkpoint once `stopped` says so. Each time it also looks whether the
/// database file is still there (see [`Disk`]).
fn run(conn: &Connection, stopped: &Receiver<()>, wal: &Wal, disk: &Disk) {
    let mut wait = BUSY_INTERVAL;
    let mut before = None;
    loop {
        let last = matches!(
            stopped.recv_timeout(wait),
            Ok(()) | Err(RecvTimeoutError::Disconnected)
        );
        disk.check_file();
        let now = checkpoint(conn)
            .inspect_err(|e| storage::log_checkpoint_failure(e, conn))
            .ok();
        // The WAL did not change since the last look: no writes.
        let quiet = now.is_none() || now == before;
        if quiet && now.is_some() && !last {
            trim(conn, wal);
        }
        wait = if quiet { IDLE_INTERVAL } else { BUSY_INTERVAL };
        before = now;
        if last {
            break;
        }
    }
}

/// Cuts the WAL file back to nothing when it keeps more of the disk than
/// its bound (a truncating checkpoint: everything in it is copied into the
/// database file first). Run only when no writes come in, so the writer
/// seldom meets the lock it takes, and then for a moment only.
fn trim(conn: &Connection, wal: &Wal) {
    let size = std::fs::metadata(&wal.path).map_or(0, |m| m.len());
    if size <= wal.max_bytes {
        return;
    }
    let truncated = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |row| {
        row.get::<_, i64>(0)
    });
    match truncated {
        Ok(0) => tracing::debug!(bytes = size, "SQLite WAL truncated"),
        // Busy: a reader still needs the WAL; the next quiet look tries again.
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "truncating the SQLite WAL failed"),
    }
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
        store::prelude::*,
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

//! The single writer: every write runs on one thread (SQLite has one writer
//! anyway), which commits waiting writes together, one fsync for many.
//!
//! With [`Durability::Full`] the fsync is not part of the commit: the writer
//! commits with `synchronous=NORMAL` (the commit is written to the WAL but
//! not flushed) and hands the group's answers to a second thread, which
//! flushes the WAL file (`fdatasync`) and only then answers. Meanwhile the
//! writer already runs the next group, so the disk's flush time and the
//! writes' CPU time overlap instead of adding up, and a flush covers every
//! group committed before it began. That is SQLite's `synchronous=FULL`
//! (NORMAL plus a flush of the WAL at each commit; checkpoints flush as
//! before), moved off the writer's path: no write is answered before it is
//! on disk, and as the WAL replays as a prefix, a later group never
//! survives a power loss that an earlier one does not. One difference:
//! another reader can see a group in the moment between its commit and its
//! flush; a power loss then can take back what it saw, which was never
//! acknowledged to its writer (who retries it, idempotently, by message id).

use std::{
    collections::VecDeque,
    fs::File,
    path::Path,
    sync::{
        Arc,
        mpsc::{self, Receiver, Sender},
    },
    thread::JoinHandle,
    time::{Instant, SystemTime},
};

use anyhow::Context as _;
use rusqlite::{Connection, TransactionBehavior};
use tokio::sync::oneshot;

use super::{
    Durability, SqliteSettings, SqliteStore,
    storage::{self, Disk, Failure},
    wal,
    writer_load::{GroupClock, WriterLoad},
};
use crate::{
    store::{StoreError, StoreResult},
    telemetry::{
        cost, instruments,
        spans::{self, Child},
    },
};

/// Most writes committed together in one transaction.
const MAX_GROUP: usize = 256;

/// A write to run on the writer thread. It returns whether it succeeded and
/// how to answer its caller once the group's outcome is known.
pub(super) type Job = Box<dyn FnOnce(&Connection) -> (bool, Reply) + Send>;
/// Answers a caller, once its group has ended.
type Reply = Box<dyn FnOnce(&End) + Send>;
/// A committed group's answers and how it ended, on their way to be
/// answered once the WAL is flushed.
type Committed = (Vec<Reply>, End);

/// How a group of writes ended.
#[derive(Debug, Clone)]
pub(super) enum End {
    /// Committed: every write stands as its job said.
    Committed,
    /// The commit (or the flush after it) failed: nothing is acknowledged.
    Failed(Failure),
    /// Rolled back whole because one write failed after it had changed
    /// something: the others are asked to try again.
    Undone,
}

/// Starts the writer thread on `conn` (and, with [`Durability::Full`], the
/// flushing thread, and the checkpoint thread); returns where to send it
/// jobs.
pub(super) fn start(
    conn: Connection,
    path: &Path,
    settings: SqliteSettings,
    disk: Arc<Disk>,
) -> anyhow::Result<(Sender<Job>, JoinHandle<()>)> {
    let SqliteSettings {
        durability,
        wal_max_bytes,
    } = settings;
    let flush = match durability {
        Durability::Normal => None,
        Durability::Full => Some(start_flusher(&conn, path)?),
    };
    // Checkpoints run beside the writer (see `wal`); its own are
    // only a backstop.
    wal::configure_writer(&conn, wal_max_bytes)?;
    let checkpointer = wal::start(path, durability, wal_max_bytes, disk)?;
    let (jobs, queue) = mpsc::channel();
    let writer = std::thread::Builder::new()
        .name("sqlite-writer".into())
        .spawn(move || {
            write_loop(conn, queue, flush);
            drop(checkpointer);
        })
        .context("starting the SQLite writer thread")?;
    Ok((jobs, writer))
}

/// Switches `conn` to commits without flush and starts the thread that
/// flushes the WAL file for them.
fn start_flusher(
    conn: &Connection,
    path: &Path,
) -> anyhow::Result<(Sender<Committed>, JoinHandle<()>)> {
    // The WAL file exists from the first transaction in WAL mode (the schema
    // set-up ran one), and is never removed while a connection (this one)
    // stays open, so this handle stays the WAL for the life of the store.
    let mut wal_path = path.as_os_str().to_owned();
    wal_path.push("-wal");
    // Writable: flushing needs write access on some systems (Windows).
    let wal = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&wal_path)
        .with_context(|| format!("opening {} to flush it", Path::new(&wal_path).display()))?;
    conn.execute_batch("PRAGMA synchronous = NORMAL")
        .context("configuring the SQLite writer")?;
    let (committed, flush_queue) = mpsc::channel();
    let flusher = std::thread::Builder::new()
        .name("sqlite-flush".into())
        .spawn(move || flush_loop(wal, flush_queue))
        .context("starting the SQLite flush thread")?;
    Ok((committed, flusher))
}

impl SqliteStore {
    /// Runs `f` on the writer thread inside a transaction, and answers once
    /// that transaction is committed (durably, with `Durability::Full`).
    /// The disk learns from the answer whether it has room (see [`Disk`]).
    pub(super) async fn write<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
    {
        let _timer = cost::StoreTimer::start();
        let submitted = SystemTime::now();
        // The answer, whether the write changed rows, and when the writer
        // began it.
        let (answer, answered) = oneshot::channel::<(StoreResult<T>, bool, Instant)>();
        let job: Job = Box::new(move |conn| {
            let began = Instant::now();
            let before = conn.total_changes();
            let result = f(conn).map_err(|e| storage::refine(e, conn));
            let wrote = conn.total_changes() != before;
            let ok = result.is_ok();
            let reply: Reply = Box::new(move |end| {
                let result = match end {
                    End::Committed => result,
                    End::Failed(failure) => Err(failure.error()),
                    // A failed write's own answer stands (none of it was
                    // kept); a successful one was undone with the group.
                    End::Undone => result.and_then(|_| {
                        Err(StoreError::Unavailable {
                            retry_after: Some(std::time::Duration::from_secs(1)),
                        })
                    }),
                };
                let _ = answer.send((result, wrote, began));
            });
            (ok, reply)
        });
        if let Some(refused) = self.inner.disk.refusal() {
            return Err(refused);
        }
        let gone = || StoreError::Internal(anyhow::anyhow!("the SQLite writer thread stopped"));
        self.inner.jobs.send(job).map_err(|_| gone())?;
        let (result, wrote, began) = answered.await.map_err(|_| gone())?;
        self.inner.disk.note(&result, wrote);
        if spans::recording() {
            trace_write(submitted, began, result.is_err());
        }
        result
    }
}

/// Two spans for one write: its wait for the writer (the groups before
/// its own), then its group's run, commit and flush.
fn trace_write(submitted: SystemTime, began: Instant, failed: bool) {
    let now = SystemTime::now();
    let commit = began.elapsed();
    let began = now.checked_sub(commit).unwrap_or(now).max(submitted);
    spans::record(
        Child::Internal,
        "sqlite.writer.wait".into(),
        submitted,
        began,
        Vec::new(),
        false,
    );
    spans::record(
        Child::Internal,
        "sqlite.writer.commit".into(),
        began,
        now,
        Vec::new(),
        failed,
    );
}

/// The writer thread: group commit. It takes every write waiting (up to
/// [`MAX_GROUP`]), runs them one after the other in one transaction,
/// commits once, and only then answers the callers (through `flush` when
/// the commit still has to reach the disk). Under load one fsync covers many
/// writes; alone, a write commits at once.
///
/// No savepoint per write: FTS5 writes its pending index data out at every
/// savepoint, which made an append's index upkeep one segment per write
/// instead of one per group (a third of the writer's time). A write that
/// fails without having changed anything (the usual case: a conflict or a
/// missing session is found by reading) needs no rollback; one that fails
/// after changing rows (an internal error, a panic), or whose failure made
/// SQLite roll the transaction back itself (a full disk), undoes the whole
/// group: the writes before it are answered "try again" (503), the ones
/// after it run in the next group.
fn write_loop(
    mut conn: Connection,
    queue: Receiver<Job>,
    flusher: Option<(Sender<Committed>, JoinHandle<()>)>,
) {
    let (flush, flush_thread) = flusher.unzip();
    let mut carried: VecDeque<Job> = VecDeque::new();
    let mut load = WriterLoad::new(Instant::now());
    loop {
        let mut group: VecDeque<Job> = std::mem::take(&mut carried);
        if group.is_empty() {
            match queue.recv() {
                Ok(first) => group.push_back(first),
                Err(_) => break,
            }
        }
        while group.len() < MAX_GROUP {
            match queue.try_recv() {
                Ok(job) => group.push_back(job),
                Err(_) => break,
            }
        }
        let mut replies = Vec::with_capacity(group.len());
        let mut undone = false;
        let mut clock = GroupClock::start();
        let outcome = (|| -> rusqlite::Result<()> {
            // IMMEDIATE takes the write lock up front, so another process (a
            // migration beside the server) waits instead of failing midway.
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            while let Some(job) = group.pop_front() {
                let before = tx.total_changes();
                let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job(&tx)));
                let changed = tx.total_changes() != before;
                let ok = match run {
                    Ok((ok, reply)) => {
                        replies.push(reply);
                        ok
                    }
                    Err(_) => {
                        // The caller's answer channel was dropped with the
                        // job; it sees the writer as gone for this call only.
                        tracing::error!("a store write panicked");
                        false
                    }
                };
                // On some errors (a full disk) SQLite rolls the whole
                // transaction back itself: what ran before is gone, and
                // what ran after would run outside any transaction.
                let ended = tx.is_autocommit();
                if !ok && (changed || ended) {
                    if ended {
                        // The failed write says why, to its caller.
                        tracing::debug!(undone = replies.len(), "SQLite rolled a group back");
                    } else {
                        tracing::warn!(
                            undone = replies.len(),
                            "a store write failed after changing rows; rolling its group back"
                        );
                    }
                    undone = true;
                    return tx.rollback();
                }
            }
            // The search index's share of the group, in one go (see
            // `search_queue`): a failure here fails the whole commit.
            clock.index();
            super::search_queue::apply(&tx)?;
            clock.commit();
            tx.commit()
        })();
        let times = clock.stop();
        instruments::writer_group(replies.len(), times.busy);
        load.record(replies.len(), times);
        if let Some(report) = load.report_if_due(Instant::now()) {
            report.log();
        }
        if undone {
            // Nothing was committed: no flush to wait for.
            carried = group;
            answer(replies, &End::Undone);
            continue;
        }
        let end = match outcome {
            Ok(()) => End::Committed,
            Err(e) => {
                let failure = Failure::of_commit(&e, &conn);
                failure.log(replies.len());
                End::Failed(failure)
            }
        };
        // Jobs never run (the transaction failed to start) drop their
        // answer channel: the caller gets an error, nothing was written.
        drop(group);
        match &flush {
            Some(flush) => {
                // Only fails once the flush thread is gone; the dropped
                // answers then tell the callers the writer is gone.
                let _ = flush.send((replies, end));
            }
            None => answer(replies, &end),
        }
    }
    // The queue closed (the store is closing): the last groups are flushed
    // and answered before this thread, which the close waits for, ends.
    drop(flush);
    if let Some(thread) = flush_thread
        && thread.join().is_err()
    {
        tracing::error!("the SQLite flush thread panicked");
    }
}

/// The flush thread: waits for committed groups, flushes the WAL once for
/// all that are waiting, then answers them.
fn flush_loop(wal: File, committed: Receiver<Committed>) {
    while let Ok(first) = committed.recv() {
        let mut ready = vec![first];
        ready.extend(committed.try_iter());
        let flushed = wal.sync_data().map_err(|e| Failure::of_flush(&e));
        if let Err(failure) = &flushed {
            failure.log(ready.iter().map(|(replies, _)| replies.len()).sum());
        }
        for (replies, end) in ready {
            let end = match (end, &flushed) {
                (End::Committed, Err(e)) => End::Failed(e.clone()),
                (end, _) => end,
            };
            answer(replies, &end);
        }
    }
}

fn answer(replies: Vec<Reply>, end: &End) {
    for reply in replies {
        reply(end);
    }
}

/// Keeps the writer thread busy for 300 ms from about 100 ms after the
/// call, so that writes sent meanwhile queue into one group (tests).
#[cfg(test)]
impl SqliteStore {
    pub(super) async fn hold_writer(&self) -> tokio::task::JoinHandle<StoreResult<()>> {
        let store = self.clone();
        let hold = tokio::spawn(async move {
            store
                .write(|_| {
                    std::thread::sleep(std::time::Duration::from_millis(300));
                    Ok(())
                })
                .await
        });
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        hold
    }
}

#[cfg(test)]
mod tests {

    use super::super::{Durability, SqliteStore};
    use crate::store::StoreError;

    fn insert(conn: &rusqlite::Connection, run: &str) {
        conn.execute(
            "INSERT INTO migration_checkpoints (run_id, state, etag, updated_at) \
             VALUES (?1, '{}', 'e', 'now')",
            [run],
        )
        .unwrap();
    }

    fn runs(store: &SqliteStore) -> Vec<String> {
        let conn = rusqlite::Connection::open(&store.inner.path).unwrap();
        let mut stmt = conn
            .prepare("SELECT run_id FROM migration_checkpoints ORDER BY run_id")
            .unwrap();
        stmt.query_map([], |r| r.get(0))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap()
    }

    /// Writes share one transaction without savepoints: a write that fails
    /// without changing anything leaves the others alone; one that fails
    /// after changing rows undoes its group (the writes before it answer
    /// "try again", the ones after it run in the next group), so no failed
    /// write ever leaves anything behind.
    #[tokio::test]
    async fn a_write_failing_after_changes_undoes_its_group_and_nothing_else() {
        for durability in [Durability::Normal, Durability::Full] {
            let dir = tempfile::tempdir().unwrap();
            let store = SqliteStore::open(dir.path(), durability).unwrap();
            // Hold the writer so that the next writes queue into one group.
            let hold = store.hold_writer().await;
            let before = store.write(|c| {
                insert(c, "before");
                Ok(())
            });
            let failing = store.write(|c| -> Result<(), StoreError> {
                insert(c, "failing");
                Err(StoreError::Conflict("after a change".into()))
            });
            let after = store.write(|c| {
                insert(c, "after");
                Ok(())
            });
            let refused = store.write(|_| -> Result<(), StoreError> { Err(StoreError::NotFound) });
            let (hold, before, failing, after, refused) =
                tokio::join!(hold, before, failing, after, refused);
            hold.unwrap().unwrap();
            assert!(
                matches!(
                    before,
                    Err(StoreError::Unavailable {
                        retry_after: Some(_)
                    })
                ),
                "{before:?}"
            );
            assert!(
                matches!(failing, Err(StoreError::Conflict(_))),
                "{failing:?}"
            );
            after.unwrap();
            assert!(matches!(refused, Err(StoreError::NotFound)), "{refused:?}");
            assert_eq!(runs(&store), ["after"], "{durability:?}");

            // A panic after a change is undone the same way.
            let panicking = store.write(|c| -> Result<(), StoreError> {
                insert(c, "panicking");
                panic!("a bug in a write")
            });
            assert!(panicking.await.is_err());
            store
                .write(|c| {
                    insert(c, "later");
                    Ok(())
                })
                .await
                .unwrap();
            assert_eq!(runs(&store), ["after", "later"]);
        }
    }

    /// Caps the file at its present size (`max_page_count`), so that a
    /// write needing one more page fails as on a full disk; `false` lifts it.
    fn cap(conn: &rusqlite::Connection, capped: bool) {
        let pages: i64 = if capped {
            conn.query_row("PRAGMA page_count", [], |r| r.get(0))
                .unwrap()
        } else {
            1_073_741_823
        };
        conn.pragma_update(None, "max_page_count", pages).unwrap();
    }

    /// A write that finds no room is answered "storage full" and leaves
    /// nothing; the writes grouped with it are answered done exactly when
    /// they are stored (SQLite may roll the whole transaction back on
    /// SQLITE_FULL), and the writer goes on.
    #[tokio::test]
    async fn a_write_finding_no_room_is_named_and_the_writer_goes_on() {
        for durability in [Durability::Normal, Durability::Full] {
            let dir = tempfile::tempdir().unwrap();
            let store = SqliteStore::open(dir.path(), durability).unwrap();
            let hold = store.hold_writer().await;
            let capped = store.write(|c| {
                cap(c, true);
                Ok(())
            });
            let before = store.write(|c| {
                insert(c, "before");
                Ok(())
            });
            let big = store.write(|c| {
                c.execute(
                    "INSERT INTO migration_checkpoints (run_id, state, etag, updated_at) \
                     VALUES ('big', ?1, 'e', 'now')",
                    ["x".repeat(256 * 1024)],
                )
                .map_err(super::super::rows::internal)
            });
            let after = store.write(|c| {
                insert(c, "after");
                Ok(())
            });
            let (hold, capped, before, big, after) = tokio::join!(hold, capped, before, big, after);
            hold.unwrap().unwrap();
            assert!(matches!(big, Err(StoreError::StorageFull)), "{big:?}");
            store
                .write(|c| {
                    cap(c, false);
                    Ok(())
                })
                .await
                .unwrap();
            let stored = runs(&store);
            for (run, answer) in [("before", &before), ("after", &after)] {
                assert_eq!(
                    answer.is_ok(),
                    stored.iter().any(|r| r == run),
                    "{durability:?} {run}: answered {answer:?}, stored {stored:?} ({capped:?})"
                );
            }
            assert!(!stored.iter().any(|r| r == "big"), "{stored:?}");
            store
                .write(|c| {
                    insert(c, "later");
                    Ok(())
                })
                .await
                .unwrap();
            assert!(runs(&store).iter().any(|r| r == "later"));
        }
    }
}

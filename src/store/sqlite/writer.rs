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
    fs::File,
    path::Path,
    sync::mpsc::{self, Receiver, Sender},
    thread::JoinHandle,
};

use anyhow::Context as _;
use rusqlite::{Connection, TransactionBehavior};
use tokio::sync::oneshot;

use super::{Durability, SqliteStore};
use crate::store::{StoreError, StoreResult};

/// Most writes committed together in one transaction.
const MAX_GROUP: usize = 256;

/// A write to run on the writer thread. It returns whether it succeeded (a
/// failed one is rolled back to its savepoint) and how to answer its caller
/// once the group's commit outcome is known.
pub(super) type Job = Box<dyn FnOnce(&Connection) -> (bool, Reply) + Send>;
/// Answers a caller; gets the commit error, if the commit failed.
type Reply = Box<dyn FnOnce(Option<&str>) + Send>;
/// A committed group's answers and its commit error, on their way to be
/// answered once the WAL is flushed.
type Committed = (Vec<Reply>, Option<String>);

/// Starts the writer thread on `conn` (and, with [`Durability::Full`], the
/// flushing thread); returns where to send it jobs.
pub(super) fn start(
    conn: Connection,
    path: &Path,
    durability: Durability,
) -> anyhow::Result<(Sender<Job>, JoinHandle<()>)> {
    let flush = match durability {
        Durability::Normal => None,
        Durability::Full => Some(start_flusher(&conn, path)?),
    };
    let (jobs, queue) = mpsc::channel();
    let writer = std::thread::Builder::new()
        .name("sqlite-writer".into())
        .spawn(move || write_loop(conn, queue, flush))
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
    let wal = File::open(&wal_path)
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
    pub(super) async fn write<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
    {
        let (answer, answered) = oneshot::channel::<StoreResult<T>>();
        let job: Job = Box::new(move |conn| {
            let result = f(conn);
            let ok = result.is_ok();
            let reply: Reply = Box::new(move |commit_error| {
                let result = match commit_error {
                    None => result,
                    Some(e) => Err(StoreError::Internal(anyhow::anyhow!("SQLite commit: {e}"))),
                };
                let _ = answer.send(result);
            });
            (ok, reply)
        });
        let gone = || StoreError::Internal(anyhow::anyhow!("the SQLite writer thread stopped"));
        self.inner.jobs.send(job).map_err(|_| gone())?;
        answered.await.map_err(|_| gone())?
    }
}

/// The writer thread: group commit. It takes every write waiting (up to
/// [`MAX_GROUP`]), runs each in its own savepoint inside one transaction,
/// commits once, and only then answers the callers (through `flush` when
/// the commit still has to reach the disk). Under load one fsync covers many
/// writes; alone, a write commits at once.
fn write_loop(
    mut conn: Connection,
    queue: Receiver<Job>,
    flusher: Option<(Sender<Committed>, JoinHandle<()>)>,
) {
    let (flush, flush_thread) = flusher.unzip();
    while let Ok(first) = queue.recv() {
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            match queue.try_recv() {
                Ok(job) => group.push(job),
                Err(_) => break,
            }
        }
        let mut replies = Vec::with_capacity(group.len());
        let outcome = (|| -> rusqlite::Result<()> {
            // IMMEDIATE takes the write lock up front, so another process (a
            // migration beside the server) waits instead of failing midway.
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            for job in group.drain(..) {
                // Cached statements: parsing these is a visible share of a
                // small write.
                let savepoint = |sql| tx.prepare_cached(sql).and_then(|mut s| s.execute([]));
                savepoint("SAVEPOINT job")?;
                let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job(&tx)));
                match run {
                    Ok((true, reply)) => {
                        savepoint("RELEASE job")?;
                        replies.push(reply);
                    }
                    Ok((false, reply)) => {
                        savepoint("ROLLBACK TO job")?;
                        savepoint("RELEASE job")?;
                        replies.push(reply);
                    }
                    Err(_) => {
                        // The caller's answer channel was dropped with the
                        // job; it sees the writer as gone for this call only.
                        tracing::error!("a store write panicked; rolled back");
                        savepoint("ROLLBACK TO job")?;
                        savepoint("RELEASE job")?;
                    }
                }
            }
            tx.commit()
        })();
        let error = outcome.err().map(|e| e.to_string());
        if let Some(e) = &error {
            tracing::error!(error = %e, writes = replies.len(), "SQLite group commit failed");
        }
        // Jobs never run (the transaction failed to start) drop their
        // answer channel: the caller gets an error, nothing was written.
        drop(group);
        match &flush {
            Some(flush) => {
                // Only fails once the flush thread is gone; the dropped
                // answers then tell the callers the writer is gone.
                let _ = flush.send((replies, error));
            }
            None => answer(replies, error.as_deref()),
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
        let flushed = wal
            .sync_data()
            .map_err(|e| format!("flushing the WAL: {e}"));
        if let Err(e) = &flushed {
            tracing::error!(error = %e, "SQLite WAL flush failed");
        }
        for (replies, commit_error) in ready {
            let error = commit_error.or_else(|| flushed.clone().err());
            answer(replies, error.as_deref());
        }
    }
}

fn answer(replies: Vec<Reply>, error: Option<&str>) {
    for reply in replies {
        reply(error);
    }
}

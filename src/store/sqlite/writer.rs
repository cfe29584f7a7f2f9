//! The single writer: every write runs on one thread (SQLite has one writer
//! anyway), which commits waiting writes together, one fsync for many.

use std::sync::mpsc;

use rusqlite::{Connection, TransactionBehavior};
use tokio::sync::oneshot;

use super::SqliteStore;
use crate::store::{StoreError, StoreResult};

/// Most writes committed together in one transaction.
const MAX_GROUP: usize = 256;

/// A write to run on the writer thread. It returns whether it succeeded (a
/// failed one is rolled back to its savepoint) and how to answer its caller
/// once the group's commit outcome is known.
pub(super) type Job = Box<dyn FnOnce(&Connection) -> (bool, Reply) + Send>;
/// Answers a caller; gets the commit error, if the commit failed.
type Reply = Box<dyn FnOnce(Option<&str>) + Send>;

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
/// commits once, and only then answers the callers. Under load one fsync
/// covers many writes; alone, a write commits at once.
pub(super) fn write_loop(mut conn: Connection, queue: mpsc::Receiver<Job>) {
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
                tx.execute_batch("SAVEPOINT job")?;
                let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job(&tx)));
                match run {
                    Ok((true, reply)) => {
                        tx.execute_batch("RELEASE job")?;
                        replies.push(reply);
                    }
                    Ok((false, reply)) => {
                        tx.execute_batch("ROLLBACK TO job; RELEASE job")?;
                        replies.push(reply);
                    }
                    Err(_) => {
                        // The caller's answer channel was dropped with the
                        // job; it sees the writer as gone for this call only.
                        tracing::error!("a store write panicked; rolled back");
                        tx.execute_batch("ROLLBACK TO job; RELEASE job")?;
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
        for reply in replies {
            reply(error.as_deref());
        }
    }
}

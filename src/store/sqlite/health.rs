//! Readiness of the embedded store, and closing it cleanly.

use std::time::Duration;

use async_trait::async_trait;

use super::{Inner, SqliteStore, rows::internal, storage::GONE};
use crate::store::{Cause, HealthStore, StoreError, StoreResult, Unready, health::innermost};

#[async_trait]
impl HealthStore for SqliteStore {
    fn kind(&self) -> &'static str {
        "sqlite"
    }

    /// A look at the database file (still there?), one read on a pooled
    /// connection and one write through the writer thread: both paths a
    /// request takes. The write is real (the file header's `user_version`,
    /// rewritten as it is), so that a disk that takes no page at all, or
    /// has turned read-only, is found before a request is refused. Not
    /// ready either while writes are refused for want of space and the
    /// disk shows no room yet (see `storage::Disk`).
    async fn check_ready(&self) -> Result<(), Unready> {
        let unready = |e| Err(Unready::new(self.cause(e), Duration::from_secs(5)));
        if !self.inner.disk.check_file() {
            return unready(StoreError::StorageUnavailable(GONE.to_owned()));
        }
        let read = self
            .read(|conn| {
                conn.query_row("SELECT count(*) FROM sqlite_master", [], |_| Ok(()))
                    .map_err(internal)
            })
            .await;
        let written = match read {
            Ok(()) => self.write(rewrite_header).await,
            Err(e) => Err(e),
        };
        if let Err(e) = written {
            return unready(e);
        }
        if self.inner.disk.is_full() {
            return unready(StoreError::StorageFull);
        }
        Ok(())
    }
}

impl SqliteStore {
    /// Why the store cannot serve, in an operator's words.
    fn cause(&self, e: StoreError) -> Cause {
        let dir = || {
            let dir = self.inner.path.parent().unwrap_or(&self.inner.path);
            dir.display().to_string()
        };
        match e {
            StoreError::StorageFull => Cause::StorageFull { dir: dir() },
            StoreError::StorageUnavailable(reason) => {
                Cause::StorageUnavailable { dir: dir(), reason }
            }
            e => Cause::Other {
                reason: format!(
                    "the embedded store {} cannot be used: {}",
                    self.inner.path.display(),
                    innermost(&e)
                ),
            },
        }
    }
}

/// Rewrites the file header's `user_version` with the value it has: a page
/// written to the WAL, and nothing else changed.
fn rewrite_header(tx: &rusqlite::Connection) -> StoreResult<()> {
    let version: i64 = tx
        .query_row("PRAGMA user_version", [], |row| row.get(0))
        .map_err(internal)?;
    tx.pragma_update(None, "user_version", version)
        .map_err(internal)
}

/// Closing: when the last handle goes, the writer thread is told to stop
/// (its queue closes), commits whatever is still queued, and closes its
/// connection; this waits for that, so that a process that drops its store
/// before exiting leaves a closed database (WAL checkpointed) behind.
impl Drop for Inner {
    fn drop(&mut self) {
        let (closed, _) = std::sync::mpsc::channel();
        drop(std::mem::replace(&mut self.jobs, closed));
        let writer = self
            .writer
            .get_mut()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(writer) = writer
            && writer.thread().id() != std::thread::current().id()
            && writer.join().is_err()
        {
            tracing::error!("the SQLite writer thread panicked");
        }
    }
}

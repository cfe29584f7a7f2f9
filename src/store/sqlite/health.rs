//! Readiness of the embedded store, and closing it cleanly.

use std::time::Duration;

use super::{Inner, SqliteStore};
use crate::store::{Cause, Unready, health::innermost};

impl SqliteStore {
    /// One read on a pooled connection and one empty transaction through
    /// the writer thread: both paths a request takes.
    pub(super) async fn probe(&self) -> Result<(), Unready> {
        let read = self
            .read(|conn| {
                conn.query_row("SELECT count(*) FROM sqlite_master", [], |_| Ok(()))
                    .map_err(super::rows::internal)
            })
            .await;
        let result = match read {
            Ok(()) => self.write(|_| Ok(())).await,
            Err(e) => Err(e),
        };
        result.map_err(|e| {
            Unready::new(
                Cause::Other {
                    reason: format!(
                        "the embedded store {} cannot be used: {}",
                        self.inner.path.display(),
                        innermost(&e)
                    ),
                },
                Duration::from_secs(5),
            )
        })
    }
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

//! The reader pool: reads run on a small pool of connections on Tokio's
//! blocking pool, which WAL lets run beside the writer; a read of one
//! indexed row can run inline on an idle connection that never waits.

use rusqlite::Connection;

use super::{SqliteStore, connection::open_connection};
use crate::{
    store::{StoreError, StoreResult},
    telemetry::cost,
};

impl SqliteStore {
    /// Runs `f` on a pooled reader connection. Reads that need several
    /// statements to agree open a transaction on it themselves.
    pub(super) async fn read<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> StoreResult<T> + Send + 'static,
    {
        let _timer = cost::StoreTimer::start();
        // Held until the read is done (or its caller gone).
        let _slot = self
            .inner
            .read_slots
            .acquire()
            .await
            .map_err(|e| StoreError::Internal(e.into()))?;
        let inner = self.inner.clone();
        blocking(move || {
            let pooled = inner
                .readers
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .pop();
            let mut conn = match pooled {
                Some(conn) => conn,
                None => open_connection(&inner.path, inner.durability, false)
                    .map_err(StoreError::Internal)?,
            };
            let out = f(&mut conn);
            let mut readers = inner.readers.lock().unwrap_or_else(|e| e.into_inner());
            if readers.len() < super::READERS {
                readers.push(conn);
            }
            out
        })
        .await
    }

    /// Runs `f` on the calling thread, on an idle connection that never
    /// waits for a lock (one indexed row read, cheaper than a hop to the
    /// blocking pool); `None` when none is idle.
    pub(super) fn inline<T>(&self, f: impl FnOnce(&Connection) -> T) -> Option<T> {
        let _timer = cost::StoreTimer::start();
        let readers = || {
            self.inner
                .inline_readers
                .lock()
                .unwrap_or_else(|e| e.into_inner())
        };
        let conn = readers().pop()?;
        let out = f(&conn);
        readers().push(conn);
        Some(out)
    }
}

async fn blocking<T, F>(f: F) -> StoreResult<T>
where
    T: Send + 'static,
    F: FnOnce() -> StoreResult<T> + Send + 'static,
{
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| StoreError::Internal(anyhow::anyhow!("store task failed: {e}")))?
}

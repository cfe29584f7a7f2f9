//! Faults of the storage under the embedded store: a full disk, and a data
//! directory that cannot be written (read-only, or gone). They become named
//! store errors ([`StoreError::StorageFull`],
//! [`StoreError::StorageUnavailable`]) instead of internal ones, so that the
//! API answers 507 and readiness says what to do; every other error SQLite
//! reports keeps its meaning.

use std::io::ErrorKind;

use rusqlite::{Connection, ErrorCode};

use crate::store::StoreError;

/// The named store error `e` stands for, if it is a storage fault.
///
/// `errno` is the operating system's error under an `SQLITE_IOERR` (see
/// [`system_errno`]): SQLite itself reports a write that found no space as
/// `SQLITE_FULL`, but an fsync, a truncation or the growth of the
/// shared-memory file that fails for want of space is an I/O error, told
/// apart from a broken disk only by its errno.
pub(super) fn fault(e: &rusqlite::Error, errno: Option<i32>) -> Option<StoreError> {
    let rusqlite::Error::SqliteFailure(failure, message) = e else {
        return None;
    };
    match failure.code {
        ErrorCode::DiskFull => Some(StoreError::StorageFull),
        ErrorCode::ReadOnly | ErrorCode::CannotOpen => Some(StoreError::StorageUnavailable(
            message.clone().unwrap_or_else(|| failure.to_string()),
        )),
        ErrorCode::SystemIoFailure => {
            errno.and_then(|errno| io_fault(&std::io::Error::from_raw_os_error(errno)))
        }
        _ => None,
    }
}

/// The named store error an operating system error stands for, if it is a
/// storage fault: no space (or quota) left, or a read-only file system.
pub(super) fn io_fault(e: &std::io::Error) -> Option<StoreError> {
    match e.kind() {
        ErrorKind::StorageFull | ErrorKind::QuotaExceeded => Some(StoreError::StorageFull),
        ErrorKind::ReadOnlyFilesystem => Some(StoreError::StorageUnavailable(e.to_string())),
        _ => None,
    }
}

/// The errno of the operating system call behind `conn`'s last failure (0
/// when there was none): what SQLite keeps of it, since its own error codes
/// fold ENOSPC under a failed fsync into a plain I/O error.
pub(super) fn system_errno(conn: &Connection) -> i32 {
    // SAFETY: the handle is valid while `conn` is borrowed, on this thread
    // (a `Connection` is not `Sync`), and `sqlite3_system_errno` only reads
    // a field of it.
    unsafe { rusqlite::ffi::sqlite3_system_errno(conn.handle()) }
}

/// `e`, with a storage fault named if it is one: for an internal error
/// holding SQLite's own, as [`fault`] says with `conn`'s errno. Called on
/// the connection the error came from, before it does anything else.
pub(super) fn refine(e: StoreError, conn: &Connection) -> StoreError {
    let StoreError::Internal(inner) = &e else {
        return e;
    };
    match inner.downcast_ref::<rusqlite::Error>() {
        Some(sqlite) => fault(sqlite, Some(system_errno(conn))).unwrap_or(e),
        None => e,
    }
}

/// Logs a failed checkpoint: a storage fault at debug level only (the
/// writes that fail for it say so), anything else as a warning.
pub(super) fn log_checkpoint_failure(e: &rusqlite::Error, conn: &Connection) {
    if fault(e, Some(system_errno(conn))).is_some() {
        tracing::debug!(error = %e, "SQLite WAL checkpoint failed");
    } else {
        tracing::warn!(error = %e, "SQLite WAL checkpoint failed");
    }
}

/// Why a group of writes was not kept, as each of its writers is told.
#[derive(Debug, Clone)]
pub(super) enum Failure {
    /// The disk is full.
    Full,
    /// The data directory cannot be written; what the system said.
    Unavailable(String),
    /// Anything else, in SQLite's (or the system's) words.
    Other(String),
}

impl Failure {
    /// The failure of a commit on `conn`.
    pub(super) fn of_commit(e: &rusqlite::Error, conn: &Connection) -> Self {
        Self::named(fault(e, Some(system_errno(conn))), e.to_string())
    }

    /// The failure of flushing the WAL after a commit.
    pub(super) fn of_flush(e: &std::io::Error) -> Self {
        Self::named(io_fault(e), format!("flushing the WAL: {e}"))
    }

    fn named(fault: Option<StoreError>, text: String) -> Self {
        match fault {
            Some(StoreError::StorageFull) => Self::Full,
            Some(StoreError::StorageUnavailable(reason)) => Self::Unavailable(reason),
            _ => Self::Other(text),
        }
    }

    /// Logs the failure: a storage fault at debug level only, since each
    /// write it fails is answered with it by name (507, or the command
    /// line's one line) and says it there, once per caller.
    pub(super) fn log(&self, writes: usize) {
        match self {
            Self::Other(text) => {
                tracing::error!(error = %text, writes, "SQLite group commit failed")
            }
            named => tracing::debug!(error = %named, writes, "SQLite group commit failed"),
        }
    }

    /// The answer of each write of the group.
    pub(super) fn error(&self) -> StoreError {
        match self {
            Self::Full => StoreError::StorageFull,
            Self::Unavailable(reason) => StoreError::StorageUnavailable(reason.clone()),
            Self::Other(text) => StoreError::Internal(anyhow::anyhow!("SQLite commit: {text}")),
        }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Other(text) => f.write_str(text),
            named => named.error().fmt(f),
        }
    }
}

#[cfg(test)]
mod tests {
    use rusqlite::ffi;

    use super::*;

    fn sqlite(code: i32) -> rusqlite::Error {
        rusqlite::Error::SqliteFailure(ffi::Error::new(code), None)
    }

    const ENOSPC: i32 = 28;
    const EDQUOT: i32 = 122;
    const EROFS: i32 = 30;
    const EIO: i32 = 5;

    /// Exactly the codes of a full disk and of a directory that cannot be
    /// written are named; everything else (a broken disk included) stays
    /// what it was.
    #[test]
    fn storage_faults_are_named_and_nothing_else() {
        let full = |e: Option<StoreError>| matches!(e, Some(StoreError::StorageFull));
        let unavailable =
            |e: Option<StoreError>| matches!(e, Some(StoreError::StorageUnavailable(_)));
        assert!(full(fault(&sqlite(ffi::SQLITE_FULL), None)));
        assert!(full(fault(&sqlite(ffi::SQLITE_IOERR_FSYNC), Some(ENOSPC))));
        assert!(full(fault(
            &sqlite(ffi::SQLITE_IOERR_SHMSIZE),
            Some(ENOSPC)
        )));
        assert!(full(fault(&sqlite(ffi::SQLITE_IOERR_WRITE), Some(EDQUOT))));
        assert!(unavailable(fault(&sqlite(ffi::SQLITE_READONLY), None)));
        assert!(unavailable(fault(
            &sqlite(ffi::SQLITE_READONLY_DBMOVED),
            None
        )));
        assert!(unavailable(fault(&sqlite(ffi::SQLITE_CANTOPEN), None)));
        assert!(unavailable(fault(
            &sqlite(ffi::SQLITE_IOERR_WRITE),
            Some(EROFS)
        )));
        for (code, errno) in [
            (ffi::SQLITE_IOERR_WRITE, Some(EIO)),
            (ffi::SQLITE_IOERR_FSYNC, Some(0)),
            // An I/O error whose errno is not known yet is not guessed at.
            (ffi::SQLITE_IOERR_FSYNC, None),
            (ffi::SQLITE_BUSY, Some(ENOSPC)),
            (ffi::SQLITE_CONSTRAINT_UNIQUE, None),
            (ffi::SQLITE_CORRUPT, None),
            (ffi::SQLITE_NOMEM, None),
        ] {
            assert!(fault(&sqlite(code), errno).is_none(), "{code} {errno:?}");
        }
        assert!(fault(&rusqlite::Error::QueryReturnedNoRows, Some(ENOSPC)).is_none());
    }

    #[test]
    fn a_failed_flush_is_named_by_its_errno() {
        let flush = |errno| Failure::of_flush(&std::io::Error::from_raw_os_error(errno));
        assert!(matches!(flush(ENOSPC).error(), StoreError::StorageFull));
        assert!(matches!(
            flush(EROFS).error(),
            StoreError::StorageUnavailable(_)
        ));
        assert!(matches!(flush(EIO).error(), StoreError::Internal(_)));
    }

    /// An internal error holding an I/O error is named once the errno of
    /// its connection says ENOSPC; other internal errors are left alone.
    #[test]
    fn refine_reads_the_errno_only_of_internal_sqlite_errors() {
        let conn = Connection::open_in_memory().unwrap();
        let internal = || super::super::rows::internal(sqlite(ffi::SQLITE_IOERR_FSYNC));
        // A fresh connection has no system error: the error stays internal.
        assert!(matches!(refine(internal(), &conn), StoreError::Internal(_)));
        let other = StoreError::Internal(anyhow::anyhow!("not SQLite"));
        assert!(matches!(refine(other, &conn), StoreError::Internal(_)));
        assert!(matches!(
            refine(StoreError::NotFound, &conn),
            StoreError::NotFound
        ));
    }
}

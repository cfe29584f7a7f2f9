//! Faults of the storage under the embedded store: a full disk, and a data
//! directory that cannot be written (read-only, or gone). They become named
//! store errors ([`StoreError::StorageFull`],
//! [`StoreError::StorageUnavailable`]) instead of internal ones, so that the
//! API answers 507 and readiness says what to do; every other error SQLite
//! reports keeps its meaning. And what the store knows of its disk
//! ([`Disk`]): whether its file is still there, and whether writes are
//! being refused for want of space.

use std::{
    io::ErrorKind,
    path::{Path, PathBuf},
    sync::atomic::{AtomicBool, Ordering},
};

use rusqlite::{Connection, ErrorCode};

use crate::store::{StoreError, StoreResult};

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

/// A failure to open or set up the store's file, as the error to stop
/// with: a storage fault by name alone (the command line's one line says
/// what to do), anything else with `what` was being done. `conn` is the
/// connection it happened on, if it was opened.
pub(super) fn opening(
    e: rusqlite::Error,
    conn: Option<&Connection>,
    what: impl FnOnce() -> String,
) -> anyhow::Error {
    match fault(&e, conn.map(system_errno)) {
        Some(fault) => fault.into(),
        None => anyhow::Error::new(e).context(what()),
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

/// What the store knows of the disk under it: whether its file is still
/// the one it opened, and whether writes are being refused for want of
/// space.
///
/// The file: SQLite in WAL mode goes on writing into a file that was
/// deleted (with its directory) or moved away, without a word, and every
/// write it then acknowledges is lost when the process ends; this notices,
/// so that writes are refused instead.
///
/// The space: a full disk is known by a write refused for it, not by a
/// probe of its own (a small write fits in what a larger failed one left
/// allocated), and it is over when a write succeeds again, or when the
/// disk shows room for many writes.
#[derive(Debug)]
pub(super) struct Disk {
    path: PathBuf,
    identity: Option<(u64, u64)>,
    gone: AtomicBool,
    full: AtomicBool,
}

/// Free space that counts as room again after a full disk: dozens of
/// appends (one writes about 80 KiB, see docs/testing.md).
const ROOM_BYTES: u64 = 1024 * 1024;

impl Disk {
    /// Watches the database file at `path`, as it is now.
    pub(super) fn new(path: &Path) -> std::io::Result<Self> {
        Ok(Self {
            path: path.to_owned(),
            identity: identity(&std::fs::metadata(path)?),
            gone: AtomicBool::new(false),
            full: AtomicBool::new(false),
        })
    }

    /// Looks at the path again: whether the file there is still the one
    /// opened. Says so in the log when that changes.
    pub(super) fn check_file(&self) -> bool {
        let here = std::fs::metadata(&self.path).is_ok_and(|now| identity(&now) == self.identity);
        if self.gone.swap(!here, Ordering::Relaxed) == here {
            if here {
                tracing::info!(path = %self.path.display(), "the store's file is back");
            } else {
                tracing::error!(
                    path = %self.path.display(),
                    "the store's file is gone (deleted or moved away): refusing writes"
                );
            }
        }
        here
    }

    /// The answer to a write while the last look found the file gone.
    pub(super) fn refusal(&self) -> Option<StoreError> {
        self.gone
            .load(Ordering::Relaxed)
            .then(|| StoreError::StorageUnavailable(GONE.to_owned()))
    }

    /// Takes note of a write's answer: refused for want of space, or done
    /// and `wrote` rows (which took room on the disk).
    pub(super) fn note<T>(&self, answer: &StoreResult<T>, wrote: bool) {
        match answer {
            Err(StoreError::StorageFull) => self.full.store(true, Ordering::Relaxed),
            Ok(_) if wrote && self.full.load(Ordering::Relaxed) => {
                self.full.store(false, Ordering::Relaxed)
            }
            _ => {}
        }
    }

    /// Whether writes are being refused for want of space: the last one
    /// that needed room was, and the disk shows no room yet.
    pub(super) fn is_full(&self) -> bool {
        if !self.full.load(Ordering::Relaxed) {
            return false;
        }
        let dir = self.path.parent().unwrap_or(&self.path);
        if free_bytes(dir).is_some_and(|free| free >= ROOM_BYTES) {
            self.full.store(false, Ordering::Relaxed);
            return false;
        }
        true
    }
}

/// The bytes this process may still write on the file system of `dir`.
#[cfg(unix)]
fn free_bytes(dir: &Path) -> Option<u64> {
    let stat = rustix::fs::statvfs(dir).ok()?;
    Some(stat.f_bavail.saturating_mul(stat.f_frsize))
}

#[cfg(not(unix))]
fn free_bytes(_: &Path) -> Option<u64> {
    None
}

/// Why writes are refused when the store's file is gone.
pub(super) const GONE: &str = "the store's file is no longer in it (deleted, or moved away)";

/// Which file this is (device and inode), where the system says.
#[cfg(unix)]
fn identity(metadata: &std::fs::Metadata) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt as _;
    Some((metadata.dev(), metadata.ino()))
}

#[cfg(not(unix))]
fn identity(_: &std::fs::Metadata) -> Option<(u64, u64)> {
    None
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

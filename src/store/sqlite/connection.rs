//! How every connection to the database file is opened and configured.

use std::path::Path;

use anyhow::Context as _;
use rusqlite::{Connection, OpenFlags};

use super::{Durability, search_index, storage};

/// A connection to the file at `path` in WAL mode with `durability`, foreign
/// keys on, and the search index's functions registered (its triggers call
/// them); `create` makes the file if it is missing.
pub(super) fn open_connection(
    path: &Path,
    durability: Durability,
    create: bool,
) -> anyhow::Result<Connection> {
    let mut flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    if create {
        flags |= OpenFlags::SQLITE_OPEN_CREATE;
    }
    let conn = Connection::open_with_flags(path, flags)
        .map_err(|e| storage::opening(e, None, || format!("opening {}", path.display())))?;
    let sync = match durability {
        Durability::Full => "FULL",
        Durability::Normal => "NORMAL",
    };
    conn.execute_batch(&format!(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = {sync}; PRAGMA foreign_keys = ON;"
    ))
    .map_err(|e| storage::opening(e, Some(&conn), || "configuring SQLite".into()))?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    search_index::register_functions(&conn).context("registering the search functions")?;
    Ok(conn)
}

/// Whether `table` has `column` (for upgrade steps that add columns only
/// where a file lacks them).
pub(super) fn has_column(conn: &Connection, table: &str, column: &str) -> rusqlite::Result<bool> {
    conn.query_row(
        "SELECT count(*) > 0 FROM pragma_table_info(?1) WHERE name = ?2",
        [table, column],
        |row| row.get(0),
    )
}

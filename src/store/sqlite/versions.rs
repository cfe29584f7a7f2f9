//! A version per owner that every change to one of their sessions bumps,
//! kept by triggers inside the writing transaction (whichever process
//! writes the file), so a listing rendered at version `v` is current for as
//! long as the owner's version is still `v`. The API caches rendered
//! listings on it: a listing that did not change is one indexed row read.

use rusqlite::{Connection, OptionalExtension as _};

use super::rows::internal;
use crate::store::{ETag, Owner, StoreResult};

/// The table and its triggers (an upgrade step: older files get them on
/// open). Sessions without an owner count under `''`, which no user id can
/// be.
const SQL: &str = "
CREATE TABLE IF NOT EXISTS owner_versions (
    owner   TEXT PRIMARY KEY,
    version INTEGER NOT NULL
) STRICT, WITHOUT ROWID;
CREATE TRIGGER IF NOT EXISTS owner_version_insert AFTER INSERT ON sessions BEGIN
    INSERT INTO owner_versions (owner, version) VALUES (COALESCE(new.user_id, ''), 1)
        ON CONFLICT (owner) DO UPDATE SET version = version + 1;
END;
CREATE TRIGGER IF NOT EXISTS owner_version_update AFTER UPDATE ON sessions BEGIN
    INSERT INTO owner_versions (owner, version) VALUES (COALESCE(new.user_id, ''), 1)
        ON CONFLICT (owner) DO UPDATE SET version = version + 1;
    INSERT INTO owner_versions (owner, version)
        SELECT COALESCE(old.user_id, ''), 1 WHERE old.user_id IS NOT new.user_id
        ON CONFLICT (owner) DO UPDATE SET version = version + 1;
END;
CREATE TRIGGER IF NOT EXISTS owner_version_delete AFTER DELETE ON sessions BEGIN
    INSERT INTO owner_versions (owner, version) VALUES (COALESCE(old.user_id, ''), 1)
        ON CONFLICT (owner) DO UPDATE SET version = version + 1;
END;
";

/// Creates the table and triggers.
pub(super) fn create(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute_batch(SQL)
}

pub(super) fn read_version(conn: &Connection, owner: &Owner) -> StoreResult<ETag> {
    let version: Option<i64> = conn
        .prepare_cached("SELECT version FROM owner_versions WHERE owner = ?1")
        .and_then(|mut stmt| {
            stmt.query_row([owner.user_id().map_or("", |u| u.as_str())], |row| {
                row.get(0)
            })
            .optional()
        })
        .map_err(internal)?;
    Ok(ETag::new(format!("v{}", version.unwrap_or(0))))
}

//! The database file's schema, and the steps that bring a file made by an
//! earlier version up to date.

use anyhow::Context as _;
use rusqlite::Connection;

use super::{branch, connection::has_column, search_index, search_queue, storage, versions};

const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS sessions (
    id              TEXT PRIMARY KEY,
    user_id         TEXT,
    session_name    TEXT,
    is_active       INTEGER NOT NULL,
    context         TEXT NOT NULL,
    message_count   INTEGER NOT NULL,
    last_message_at TEXT,
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL,
    etag            TEXT NOT NULL,
    archived_at     TEXT
) STRICT;
CREATE INDEX IF NOT EXISTS sessions_by_owner
    ON sessions (user_id, updated_at DESC, id DESC);
CREATE INDEX IF NOT EXISTS sessions_by_owner_created
    ON sessions (user_id, created_at, id);
CREATE TABLE IF NOT EXISTS messages (
    session_id   TEXT NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    seq          INTEGER NOT NULL,
    id           TEXT NOT NULL,
    content      TEXT NOT NULL,
    message_type TEXT NOT NULL,
    user_id      TEXT,
    metadata     TEXT NOT NULL,
    created_at   TEXT NOT NULL,
    tool         TEXT,
    PRIMARY KEY (session_id, seq),
    UNIQUE (session_id, id)
) STRICT, WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS migration_checkpoints (
    run_id     TEXT PRIMARY KEY,
    state      TEXT NOT NULL,
    etag       TEXT NOT NULL,
    updated_at TEXT NOT NULL
) STRICT;
"#;

/// Steps that bring a database file made by an earlier version up to date,
/// in order. The file's `user_version` counts the steps it has had; each
/// step runs once, in one transaction with that count.
const UPGRADES: &[(&str, UpgradeStep)] = &[
    ("search index", search_index::create),
    ("owner versions", versions::create),
    ("search index by owner", search_index::rebuild),
    (
        "search index changes queued per group",
        search_queue::create,
    ),
    (
        "search queue without an index by document",
        search_queue::drop_queue_index,
    ),
    (
        "search index merged per group",
        search_queue::merge_per_group,
    ),
    ("messages with tool parts", add_tool_column),
    (
        "search of tool calls' function names",
        search_queue::index_tool_calls,
    ),
    ("conversations as trees", branch::create),
];

/// Gives `messages` its `tool` column (NULL: no tool parts), unless the
/// file was created with it.
fn add_tool_column(conn: &Connection) -> rusqlite::Result<()> {
    if !has_column(conn, "messages", "tool")? {
        conn.execute_batch("ALTER TABLE messages ADD COLUMN tool TEXT")?;
    }
    Ok(())
}

/// The `user_version` of a file brought up to date: the number of
/// [`UPGRADES`] steps.
pub const SCHEMA_VERSION: i64 = UPGRADES.len() as i64;

/// One upgrade step, run inside the upgrade's transaction.
type UpgradeStep = fn(&Connection) -> rusqlite::Result<()>;

/// Runs the upgrade steps the file has not had yet. The count is read
/// inside the step's write transaction, so two processes opening the file
/// at once never run a step twice.
fn upgrade(conn: &Connection) -> anyhow::Result<()> {
    loop {
        conn.execute_batch("BEGIN IMMEDIATE")
            .context("upgrading the SQLite schema")?;
        let run = || -> rusqlite::Result<Option<&str>> {
            let done: i64 = conn.query_row("PRAGMA user_version", [], |row| row.get(0))?;
            let Some((name, step)) = UPGRADES.get(done.max(0) as usize) else {
                return Ok(None);
            };
            tracing::info!(step = name, "upgrading the SQLite schema");
            step(conn)?;
            conn.execute_batch(&format!("PRAGMA user_version = {}", done + 1))?;
            Ok(Some(name))
        };
        match run() {
            Ok(ran) => {
                conn.execute_batch("COMMIT")
                    .context("upgrading the SQLite schema")?;
                if ran.is_none() {
                    return Ok(());
                }
            }
            Err(e) => {
                let _ = conn.execute_batch("ROLLBACK");
                return Err(anyhow::Error::new(e).context("upgrading the SQLite schema"));
            }
        }
    }
}

/// Columns added after the first release, each with its type: a file
/// written by an older version gets them on open (as NULL, which reads as
/// "not set").
const ADDED_COLUMNS: &[(&str, &str, &str)] = &[("sessions", "archived_at", "TEXT")];

/// Adds the [`ADDED_COLUMNS`] a file lacks. The column list comes from the
/// constants above, never from input.
fn add_missing_columns(conn: &Connection) -> anyhow::Result<()> {
    for (table, column, kind) in ADDED_COLUMNS {
        if !has_column(conn, table, column)? {
            conn.execute_batch(&format!("ALTER TABLE {table} ADD COLUMN {column} {kind}"))
                .with_context(|| format!("adding column {table}.{column}"))?;
            tracing::info!(table, column, "added a column to the SQLite schema");
        }
    }
    Ok(())
}

/// Brings the file behind `conn` (the writer's connection) to today's
/// schema: the tables, the columns added since, and the upgrade steps.
pub(super) fn prepare(conn: &Connection) -> anyhow::Result<()> {
    conn.execute_batch(SCHEMA)
        .map_err(|e| storage::opening(e, Some(conn), || "creating the SQLite schema".into()))?;
    add_missing_columns(conn)?;
    upgrade(conn)
}

//! The embedded store: SQLite in WAL mode, one file under the data directory.
//!
//! Sessions and messages are separate tables so that an append is one small
//! insert and one update in a single transaction, whatever the session's size.
//! Writes go to one writer thread (SQLite has one writer anyway) that commits
//! them in groups; reads use a small pool of connections on Tokio's blocking
//! pool, which WAL lets run beside the writer.
//!
//! The files of this module. Each capability of the store contract is
//! implemented in the file of its name (see [`crate::store`]): `read`,
//! `list`, `write`, `append`, `context`, `branch`, `export`, `import`,
//! `erase`, `retention`, `search`, `health` (readiness too, and closing the
//! file cleanly) and `migration` (the [`MigrationStore`](super::MigrationStore)
//! side). Under them: `connection` (how every connection is opened),
//! `schema` (the tables and their upgrades), `open` (opening the store),
//! `readers` (the reader pool), `writer` (the writer thread and its group
//! commit), `writer_load` (its load, reported at debug level), `wal` (WAL
//! checkpoints beside the writer, and the WAL's bound), `storage` (a full
//! disk or a data directory that cannot be written, as named errors),
//! `rows` (row decoding and the shared queries), `versions` (each owner's
//! listing version), and `search_index` and `search_queue` (the search
//! index kept in the writing transaction).

use std::{
    path::PathBuf,
    sync::{Arc, Mutex, mpsc},
};

use rusqlite::Connection;

mod append;
mod branch;
mod connection;
mod context;
mod erase;
mod export;
mod health;
mod import;
mod list;
mod migration;
mod open;
mod read;
mod readers;
mod retention;
mod rows;
mod schema;
mod search;
mod search_index;
mod search_queue;
mod storage;
mod versions;
mod wal;
mod write;
mod writer;
mod writer_load;

pub use schema::SCHEMA_VERSION;
pub use search_index::register_functions;

/// How hard SQLite works to keep a commit on power loss.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// `synchronous=FULL`: an acknowledged write survives power loss.
    #[default]
    Full,
    /// `synchronous=NORMAL`: survives a process crash, may lose the last
    /// commits on power loss. Faster; for throwaway local data.
    Normal,
}

/// How the embedded store keeps its files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SqliteSettings {
    /// `SQLITE_SYNCHRONOUS`.
    pub durability: Durability,
    /// The most of the disk the WAL file keeps once checkpoints catch up
    /// (`SQLITE_WAL_MAX_BYTES`).
    pub wal_max_bytes: u64,
}

/// [`SqliteSettings::wal_max_bytes`] by default: 16 MiB.
pub const DEFAULT_WAL_MAX_BYTES: u64 = 16 * 1024 * 1024;

impl From<Durability> for SqliteSettings {
    fn from(durability: Durability) -> Self {
        Self {
            durability,
            wal_max_bytes: DEFAULT_WAL_MAX_BYTES,
        }
    }
}

/// The embedded SQLite store.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    path: PathBuf,
    durability: Durability,
    jobs: mpsc::Sender<writer::Job>,
    /// The writer thread, joined when the store closes.
    writer: Mutex<Option<std::thread::JoinHandle<()>>>,
    /// Idle reader connections, at most [`READERS`].
    readers: Mutex<Vec<Connection>>,
    /// One permit per reader connection: a read waits here for a free one
    /// instead of opening a connection of its own (which costs more than a
    /// whole listing) or piling blocking threads onto the cores.
    read_slots: tokio::sync::Semaphore,
    /// Connections with no busy timeout, for reads on async threads.
    inline_readers: Mutex<Vec<Connection>>,
    /// The disk under the store: its file still there? room to write?
    disk: Arc<storage::Disk>,
}

/// Reads that run at once, each on its own connection.
const READERS: usize = 8;

/// The file name of the database inside the data directory.
pub const DB_FILE: &str = "chat-sessions.sqlite3";

/// A plain connection to the store's file at `path` for tools that edit it
/// directly (tests, repairs): the search index's triggers call functions
/// that live in this program, so a connection without them cannot write
/// sessions or messages.
pub fn tool_connection(path: &std::path::Path) -> rusqlite::Result<rusqlite::Connection> {
    let conn = rusqlite::Connection::open(path)?;
    search_index::register_functions(&conn)?;
    Ok(conn)
}

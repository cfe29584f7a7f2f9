//! The embedded store: SQLite in WAL mode, one file under the data directory.
//!
//! Sessions and messages are separate tables so that an append is one small
//! insert and one update in a single transaction, whatever the session's size.
//! Writes go to one writer thread (SQLite has one writer anyway) that commits
//! them in groups; reads use a small pool of connections on Tokio's blocking
//! pool, which WAL lets run beside the writer.
//!
//! The files of this module: `connection` (how every connection is opened),
//! `schema` (the tables and their upgrades), `open` (opening the store),
//! `writer` (the writer thread and its group commit), `writer_load` (its
//! load, reported at debug level), `wal` (WAL checkpoints beside
//! the writer, and the WAL's bound), `storage` (a full disk or a data
//! directory that cannot be written, as named errors), `rows` (row decoding
//! and the shared queries), `read` and `write` (the [`SessionStore`]
//! operations), `import` (the [`MigrationStore`] side), `export`, `erase`
//! and `retention` (those capabilities) and `health` (readiness, and
//! closing the file cleanly). The trait impls below only delegate to them.

use std::{
    path::PathBuf,
    sync::{Arc, Mutex, mpsc},
};

use async_trait::async_trait;
use rusqlite::Connection;

use super::{
    Appended, ContextSink, ETag, ImportOutcome, ListQuery, MessagePage, MessageQuery,
    MigrationStore, Owner, SessionImport, SessionPage, SessionRead, SessionStore, StoreResult,
    Unready, Versioned,
};
use crate::domain::{ChatSession, NewMessage, NewSession, SessionId, SessionPatch};

mod branch;
mod connection;
mod context;
mod erase;
mod export;
mod health;
mod import;
mod open;
mod read;
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

#[async_trait]
impl SessionStore for SqliteStore {
    fn kind(&self) -> &'static str {
        "sqlite"
    }

    async fn create_session(&self, new: NewSession) -> StoreResult<Versioned<ChatSession>> {
        self.create(new).await
    }

    async fn get_session_if_changed(
        &self,
        owner: &Owner,
        id: &SessionId,
        known: Option<&ETag>,
    ) -> StoreResult<Option<Versioned<ChatSession>>> {
        self.get_if_changed(owner, id, known).await
    }

    async fn read_session(
        &self,
        owner: &Owner,
        id: &SessionId,
        known: Option<&ETag>,
    ) -> StoreResult<Option<SessionRead>> {
        self.read_streamed(owner, id, known).await
    }

    async fn get_session_tail(
        &self,
        owner: &Owner,
        id: &SessionId,
        limit: u32,
    ) -> StoreResult<Versioned<ChatSession>> {
        self.tail(owner, id, limit).await
    }

    async fn list_messages(
        &self,
        owner: &Owner,
        id: &SessionId,
        query: MessageQuery,
    ) -> StoreResult<MessagePage> {
        self.message_page(owner, id, query).await
    }

    async fn read_context(
        &self,
        owner: &Owner,
        id: &SessionId,
        sink: &mut (dyn ContextSink + Send),
    ) -> StoreResult<()> {
        self.context(owner, id, sink).await
    }

    async fn list_sessions(&self, owner: &Owner, query: &ListQuery) -> StoreResult<SessionPage> {
        self.session_page(owner, query).await
    }

    async fn sessions_version(&self, owner: &Owner) -> StoreResult<Option<ETag>> {
        self.owner_version(owner).await.map(Some)
    }

    async fn update_session(
        &self,
        owner: &Owner,
        id: &SessionId,
        patch: &SessionPatch,
        if_match: Option<&ETag>,
    ) -> StoreResult<Versioned<ChatSession>> {
        self.update(owner, id, patch, if_match).await
    }

    async fn delete_session(
        &self,
        owner: &Owner,
        id: &SessionId,
        if_match: Option<&ETag>,
    ) -> StoreResult<()> {
        self.delete(owner, id, if_match).await
    }

    async fn append_message(
        &self,
        owner: &Owner,
        id: &SessionId,
        message: NewMessage,
    ) -> StoreResult<Appended> {
        self.append(owner, id, message).await
    }

    async fn check_ready(&self) -> Result<(), Unready> {
        self.probe().await
    }
}

#[async_trait]
impl MigrationStore for SqliteStore {
    async fn import_messages(&self, import: SessionImport) -> StoreResult<ImportOutcome> {
        self.import(import).await
    }

    async fn load_checkpoint(&self, run_id: &str) -> StoreResult<Option<Versioned<String>>> {
        self.read_checkpoint(run_id).await
    }

    async fn save_checkpoint(
        &self,
        run_id: &str,
        state: &str,
        expected: Option<&ETag>,
    ) -> StoreResult<ETag> {
        self.write_checkpoint(run_id, state, expected).await
    }
}

//! The embedded store: SQLite in WAL mode, one file under the data directory.
//!
//! Sessions and messages are separate tables so that an append is one small
//! insert and one update in a single transaction, whatever the session's size.
//! Writes go to one writer thread (SQLite has one writer anyway) that commits
//! them in groups; reads use a small pool of connections on Tokio's blocking
//! pool, which WAL lets run beside the writer.

use std::{
    path::{Path, PathBuf},
    sync::{Arc, Mutex, mpsc},
};

use anyhow::Context as _;
use async_trait::async_trait;
use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use rusqlite::{Connection, OpenFlags, OptionalExtension, Row, TransactionBehavior, params};
use tokio::sync::oneshot;

use super::{
    Appended, ETag, ImportOutcome, ListQuery, MessagePage, MessageQuery, MigrationStore, Owner,
    SessionImport, SessionPage, SessionStore, StoreError, StoreResult, Versioned,
};
use crate::domain::{
    ChatMessage, ChatSession, JsonObject, MessageId, MessageType, NewMessage, NewSession,
    SessionId, SessionPatch, SessionSummary, Timestamp, UserId, ValidationError,
};

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
    etag            TEXT NOT NULL
) STRICT;
CREATE INDEX IF NOT EXISTS sessions_by_owner
    ON sessions (user_id, updated_at DESC, id DESC);
CREATE TABLE IF NOT EXISTS messages (
    session_id   TEXT NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    seq          INTEGER NOT NULL,
    id           TEXT NOT NULL,
    content      TEXT NOT NULL,
    message_type TEXT NOT NULL,
    user_id      TEXT,
    metadata     TEXT NOT NULL,
    created_at   TEXT NOT NULL,
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

const SESSION_COLUMNS: &str = "id, user_id, session_name, is_active, context, message_count, \
                               last_message_at, created_at, updated_at, etag";

/// The embedded SQLite store.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    path: PathBuf,
    durability: Durability,
    jobs: mpsc::Sender<Job>,
    readers: Mutex<Vec<Connection>>,
    /// Connections with no busy timeout, for reads on async threads.
    inline_readers: Mutex<Vec<Connection>>,
}

/// The file name of the database inside the data directory.
pub const DB_FILE: &str = "chat-sessions.sqlite3";

/// Most writes committed together in one transaction.
const MAX_GROUP: usize = 256;

/// A write to run on the writer thread. It returns whether it succeeded (a
/// failed one is rolled back to its savepoint) and how to answer its caller
/// once the group's commit outcome is known.
type Job = Box<dyn FnOnce(&Connection) -> (bool, Reply) + Send>;
/// Answers a caller; gets the commit error, if the commit failed.
type Reply = Box<dyn FnOnce(Option<&str>) + Send>;

impl SqliteStore {
    /// Opens (creating if needed) the store in `data_dir`.
    pub fn open(data_dir: &Path, durability: Durability) -> anyhow::Result<Self> {
        std::fs::create_dir_all(data_dir)
            .with_context(|| format!("creating data directory {}", data_dir.display()))?;
        let path = data_dir.join(DB_FILE);
        let writer = open_connection(&path, durability, true)?;
        writer
            .execute_batch(SCHEMA)
            .context("creating the SQLite schema")?;
        let inline_readers = (0..4)
            .map(|_| {
                let conn = open_connection(&path, durability, false)?;
                conn.busy_timeout(std::time::Duration::ZERO)?;
                Ok(conn)
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let (jobs, queue) = mpsc::channel();
        std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || write_loop(writer, queue))
            .context("starting the SQLite writer thread")?;
        Ok(Self {
            inner: Arc::new(Inner {
                path,
                durability,
                jobs,
                readers: Mutex::new(Vec::new()),
                inline_readers: Mutex::new(inline_readers),
            }),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Runs `f` on the writer thread inside a transaction, and answers once
    /// that transaction is committed (durably, with `Durability::Full`).
    async fn write<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
    {
        let (answer, answered) = oneshot::channel::<StoreResult<T>>();
        let job: Job = Box::new(move |conn| {
            let result = f(conn);
            let ok = result.is_ok();
            let reply: Reply = Box::new(move |commit_error| {
                let result = match commit_error {
                    None => result,
                    Some(e) => Err(StoreError::Internal(anyhow::anyhow!("SQLite commit: {e}"))),
                };
                let _ = answer.send(result);
            });
            (ok, reply)
        });
        let gone = || StoreError::Internal(anyhow::anyhow!("the SQLite writer thread stopped"));
        self.inner.jobs.send(job).map_err(|_| gone())?;
        answered.await.map_err(|_| gone())?
    }

    /// Runs `f` on a pooled reader connection. Reads that need several
    /// statements to agree open a transaction on it themselves.
    async fn read<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> StoreResult<T> + Send + 'static,
    {
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
            if readers.len() < 8 {
                readers.push(conn);
            }
            out
        })
        .await
    }
}

/// The import, inside the writer's transaction.
fn import_into(tx: &Connection, import: SessionImport) -> StoreResult<ImportOutcome> {
    let Some(last) = import.messages.last().map(|m| m.created_at) else {
        return Ok(ImportOutcome::default());
    };
    let first = import.messages[0].created_at;
    let existing = find_session(tx, &Owner::Anonymous, &import.id);
    let (mut outcome, session) = match existing {
        Ok((session, _)) if session.user_id != import.user_id => {
            return Err(StoreError::Conflict(format!(
                "session {} exists with another owner",
                import.id
            )));
        }
        Ok((session, _)) => (ImportOutcome::default(), session),
        Err(StoreError::NotFound) => {
            tx.execute(
                "INSERT INTO sessions (id, user_id, session_name, is_active, context, \
                 message_count, last_message_at, created_at, updated_at, etag) \
                 VALUES (?1, ?2, NULL, 1, '{}', 0, NULL, ?3, ?3, ?4)",
                params![
                    import.id.as_str(),
                    import.user_id.as_ref().map(UserId::as_str),
                    first.to_string(),
                    new_etag(),
                ],
            )
            .map_err(internal)?;
            let (session, _) = find_session(tx, &Owner::Anonymous, &import.id)?;
            (
                ImportOutcome {
                    created: true,
                    ..ImportOutcome::default()
                },
                session,
            )
        }
        Err(e) => return Err(e),
    };
    let mut insert = tx
        .prepare_cached(
            "INSERT INTO messages (session_id, seq, id, content, message_type, user_id, \
             metadata, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) \
             ON CONFLICT (session_id, id) DO NOTHING",
        )
        .map_err(internal)?;
    // New rows go after the existing ones first; the renumbering below puts
    // every message in (created_at, id) order.
    let mut seq = session.message_count as i64;
    for message in &import.messages {
        let inserted = insert
            .execute(params![
                import.id.as_str(),
                seq + 1,
                message.id.as_str(),
                message.content,
                message.message_type.as_str(),
                message.user_id.as_ref().map(UserId::as_str),
                to_json(&message.metadata)?,
                message.created_at.to_string(),
            ])
            .map_err(internal)?;
        if inserted == 1 {
            seq += 1;
            outcome.added += 1;
        } else {
            outcome.already_present += 1;
        }
    }
    if outcome.added == 0 {
        return Ok(outcome);
    }
    let order: Vec<(String, String)> = tx
        .prepare_cached("SELECT id, created_at FROM messages WHERE session_id = ?1")
        .and_then(|mut stmt| {
            stmt.query_map([import.id.as_str()], |row| Ok((row.get(0)?, row.get(1)?)))
                .and_then(|rows| rows.collect())
        })
        .map_err(internal)?;
    let mut order = order;
    order.sort_by(|a, b| (&a.1, &a.0).cmp(&(&b.1, &b.0)));
    // Two steps so that no intermediate state collides on (session_id, seq).
    tx.execute(
        "UPDATE messages SET seq = -seq WHERE session_id = ?1",
        [import.id.as_str()],
    )
    .map_err(internal)?;
    let mut renumber = tx
        .prepare_cached("UPDATE messages SET seq = ?3 WHERE session_id = ?1 AND id = ?2")
        .map_err(internal)?;
    for (position, (id, _)) in order.iter().enumerate() {
        renumber
            .execute(params![import.id.as_str(), id, position as i64 + 1])
            .map_err(internal)?;
    }
    let newest = order
        .last()
        .map(|(_, t)| t.clone())
        .unwrap_or_else(|| last.to_string());
    tx.execute(
        "UPDATE sessions SET message_count = ?2, last_message_at = ?3, \
         updated_at = MAX(updated_at, ?3), etag = ?4 WHERE id = ?1",
        params![import.id.as_str(), order.len() as i64, newest, new_etag()],
    )
    .map_err(internal)?;
    Ok(outcome)
}

impl SqliteStore {
    /// Revalidates a known version on the calling thread: one indexed row
    /// read on a connection that never waits for a lock. `None` when that is
    /// not possible right now (no idle connection, or SQLite busy), so the
    /// caller takes the ordinary path.
    fn revalidate_inline(
        &self,
        owner: &Owner,
        id: &SessionId,
        known: &ETag,
    ) -> Option<StoreResult<Option<Versioned<ChatSession>>>> {
        let conn = self
            .inner
            .inline_readers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pop()?;
        let result = find_session(&conn, owner, id);
        self.inner
            .inline_readers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(conn);
        match result {
            Ok((_, etag)) if ETag::new(etag.as_str()) == *known => Some(Ok(None)),
            Err(StoreError::NotFound) => Some(Err(StoreError::NotFound)),
            _ => None,
        }
    }
}

/// The writer thread: group commit. It takes every write waiting (up to
/// [`MAX_GROUP`]), runs each in its own savepoint inside one transaction,
/// commits once, and only then answers the callers. Under load one fsync
/// covers many writes; alone, a write commits at once.
fn write_loop(mut conn: Connection, queue: mpsc::Receiver<Job>) {
    while let Ok(first) = queue.recv() {
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            match queue.try_recv() {
                Ok(job) => group.push(job),
                Err(_) => break,
            }
        }
        let mut replies = Vec::with_capacity(group.len());
        let outcome = (|| -> rusqlite::Result<()> {
            // IMMEDIATE takes the write lock up front, so another process (a
            // migration beside the server) waits instead of failing midway.
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            for job in group.drain(..) {
                tx.execute_batch("SAVEPOINT job")?;
                let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job(&tx)));
                match run {
                    Ok((true, reply)) => {
                        tx.execute_batch("RELEASE job")?;
                        replies.push(reply);
                    }
                    Ok((false, reply)) => {
                        tx.execute_batch("ROLLBACK TO job; RELEASE job")?;
                        replies.push(reply);
                    }
                    Err(_) => {
                        // The caller's answer channel was dropped with the
                        // job; it sees the writer as gone for this call only.
                        tracing::error!("a store write panicked; rolled back");
                        tx.execute_batch("ROLLBACK TO job; RELEASE job")?;
                    }
                }
            }
            tx.commit()
        })();
        let error = outcome.err().map(|e| e.to_string());
        if let Some(e) = &error {
            tracing::error!(error = %e, writes = replies.len(), "SQLite group commit failed");
        }
        // Jobs never run (the transaction failed to start) drop their
        // answer channel: the caller gets an error, nothing was written.
        drop(group);
        for reply in replies {
            reply(error.as_deref());
        }
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

fn open_connection(
    path: &Path,
    durability: Durability,
    create: bool,
) -> anyhow::Result<Connection> {
    let mut flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    if create {
        flags |= OpenFlags::SQLITE_OPEN_CREATE;
    }
    let conn = Connection::open_with_flags(path, flags)
        .with_context(|| format!("opening {}", path.display()))?;
    let sync = match durability {
        Durability::Full => "FULL",
        Durability::Normal => "NORMAL",
    };
    conn.execute_batch(&format!(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = {sync}; PRAGMA foreign_keys = ON;"
    ))
    .context("configuring SQLite")?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    Ok(conn)
}

fn internal(e: rusqlite::Error) -> StoreError {
    StoreError::Internal(anyhow::Error::new(e).context("SQLite"))
}

fn new_etag() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// Maps a stored text back to a domain value; a failure means the file was
/// changed outside this program.
fn decode<T, E: std::fmt::Display>(column: &str, value: Result<T, E>) -> rusqlite::Result<T> {
    value.map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(
            0,
            rusqlite::types::Type::Text,
            format!("column {column}: {e}").into(),
        )
    })
}

fn json_object(column: &str, text: String) -> rusqlite::Result<JsonObject> {
    decode(column, serde_json::from_str::<JsonObject>(&text))
}

fn timestamp(column: &str, text: String) -> rusqlite::Result<Timestamp> {
    decode(column, Timestamp::parse(&text))
}

fn optional_user(column: &str, text: Option<String>) -> rusqlite::Result<Option<UserId>> {
    text.map(|t| decode(column, UserId::parse(t))).transpose()
}

/// A session row: the session without messages, plus its etag.
fn session_row(row: &Row<'_>) -> rusqlite::Result<(SessionSummary, String)> {
    let summary = SessionSummary {
        id: decode("id", SessionId::parse(row.get::<_, String>(0)?))?,
        user_id: optional_user("user_id", row.get(1)?)?,
        session_name: row.get(2)?,
        is_active: row.get(3)?,
        context: json_object("context", row.get(4)?)?,
        message_count: row.get(5)?,
        last_message_at: row
            .get::<_, Option<String>>(6)?
            .map(|t| timestamp("last_message_at", t))
            .transpose()?,
        created_at: timestamp("created_at", row.get(7)?)?,
        updated_at: timestamp("updated_at", row.get(8)?)?,
    };
    Ok((summary, row.get(9)?))
}

fn message_row(row: &Row<'_>) -> rusqlite::Result<ChatMessage> {
    Ok(ChatMessage {
        id: decode("id", MessageId::parse(row.get::<_, String>(0)?))?,
        content: row.get(1)?,
        message_type: decode(
            "message_type",
            MessageType::parse(&row.get::<_, String>(2)?),
        )?,
        user_id: optional_user("user_id", row.get(3)?)?,
        metadata: json_object("metadata", row.get(4)?)?,
        created_at: timestamp("created_at", row.get(5)?)?,
    })
}

/// The session row if it exists and `owner` may see it.
fn find_session(
    conn: &Connection,
    owner: &Owner,
    id: &SessionId,
) -> StoreResult<(SessionSummary, String)> {
    let found = conn
        .prepare_cached(&format!(
            "SELECT {SESSION_COLUMNS} FROM sessions WHERE id = ?1"
        ))
        .and_then(|mut stmt| stmt.query_row([id.as_str()], session_row).optional())
        .map_err(internal)?;
    match found {
        Some((summary, etag)) if owner.can_see(summary.user_id.as_ref()) => Ok((summary, etag)),
        _ => Err(StoreError::NotFound),
    }
}

fn load_messages(conn: &Connection, id: &SessionId) -> StoreResult<Vec<ChatMessage>> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT id, content, message_type, user_id, metadata, created_at \
             FROM messages WHERE session_id = ?1 ORDER BY seq",
        )
        .map_err(internal)?;
    stmt.query_map([id.as_str()], message_row)
        .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
        .map_err(internal)
}

/// Up to `limit` messages with `seq < below`, newest first.
fn messages_before(
    conn: &Connection,
    id: &SessionId,
    below: i64,
    limit: u32,
) -> StoreResult<Vec<ChatMessage>> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT id, content, message_type, user_id, metadata, created_at \
             FROM messages WHERE session_id = ?1 AND seq < ?2 ORDER BY seq DESC LIMIT ?3",
        )
        .map_err(internal)?;
    stmt.query_map(params![id.as_str(), below, limit], message_row)
        .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
        .map_err(internal)
}

fn load_session(
    conn: &Connection,
    owner: &Owner,
    id: &SessionId,
) -> StoreResult<Versioned<ChatSession>> {
    let (summary, etag) = find_session(conn, owner, id)?;
    let messages = load_messages(conn, id)?;
    Ok(Versioned {
        value: ChatSession::from_parts(summary, messages),
        etag: ETag::new(etag),
    })
}

fn check_etag(stored: &str, if_match: Option<&ETag>) -> StoreResult<()> {
    match if_match {
        Some(expected) if ETag::new(stored) != *expected => Err(StoreError::PreconditionFailed),
        _ => Ok(()),
    }
}

fn to_json(value: &JsonObject) -> StoreResult<String> {
    serde_json::to_string(value).map_err(|e| StoreError::Internal(e.into()))
}

/// Continuation tokens are the keyset of the last row of a page.
fn encode_cursor(last: &SessionSummary) -> String {
    URL_SAFE_NO_PAD.encode(format!("v1\n{}\n{}", last.updated_at, last.id))
}

fn decode_cursor(token: &str) -> StoreResult<(String, String)> {
    let invalid = || {
        StoreError::Invalid(ValidationError::new(
            "continuation_token",
            "is not a token this service returned",
        ))
    };
    let bytes = URL_SAFE_NO_PAD.decode(token).map_err(|_| invalid())?;
    let text = String::from_utf8(bytes).map_err(|_| invalid())?;
    let mut parts = text.split('\n');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some("v1"), Some(updated), Some(id), None)
            if Timestamp::parse(updated).is_ok() && SessionId::parse(id).is_ok() =>
        {
            Ok((updated.to_owned(), id.to_owned()))
        }
        _ => Err(invalid()),
    }
}

#[async_trait]
impl SessionStore for SqliteStore {
    fn kind(&self) -> &'static str {
        "sqlite"
    }

    async fn create_session(&self, new: NewSession) -> StoreResult<Versioned<ChatSession>> {
        self.write(move |tx| {
            let now = Timestamp::now();
            let etag = new_etag();
            let inserted = tx
                .execute(
                    "INSERT INTO sessions (id, user_id, session_name, is_active, context, \
                     message_count, last_message_at, created_at, updated_at, etag) \
                     VALUES (?1, ?2, ?3, 1, ?4, 0, NULL, ?5, ?5, ?6) ON CONFLICT (id) DO NOTHING",
                    params![
                        new.id.as_str(),
                        new.user_id.as_ref().map(UserId::as_str),
                        new.session_name,
                        to_json(&new.context)?,
                        now.to_string(),
                        etag,
                    ],
                )
                .map_err(internal)?;
            if inserted == 0 {
                return Err(StoreError::Conflict(format!(
                    "a session with id {} already exists",
                    new.id
                )));
            }
            Ok(Versioned {
                value: new.into_session(now),
                etag: ETag::new(etag),
            })
        })
        .await
    }

    async fn get_session_if_changed(
        &self,
        owner: &Owner,
        id: &SessionId,
        known: Option<&ETag>,
    ) -> StoreResult<Option<Versioned<ChatSession>>> {
        if let Some(known) = known
            && let Some(unchanged) = self.revalidate_inline(owner, id, known)
        {
            return unchanged;
        }
        let (owner, id, known) = (owner.clone(), id.clone(), known.cloned());
        self.read(move |conn| {
            // Revalidation is one indexed row read, without a transaction.
            if let Some(known) = &known {
                let (_, etag) = find_session(conn, &owner, &id)?;
                if ETag::new(etag) == *known {
                    return Ok(None);
                }
            }
            // The session row and its messages from one snapshot.
            let tx = conn.transaction().map_err(internal)?;
            let (summary, etag) = find_session(&tx, &owner, &id)?;
            let messages = load_messages(&tx, &id)?;
            tx.finish().map_err(internal)?;
            Ok(Some(Versioned {
                value: ChatSession::from_parts(summary, messages),
                etag: ETag::new(etag),
            }))
        })
        .await
    }

    async fn get_session_tail(
        &self,
        owner: &Owner,
        id: &SessionId,
        limit: u32,
    ) -> StoreResult<Versioned<ChatSession>> {
        let (owner, id) = (owner.clone(), id.clone());
        self.read(move |conn| {
            let tx = conn.transaction().map_err(internal)?;
            let (summary, etag) = find_session(&tx, &owner, &id)?;
            let mut messages = messages_before(&tx, &id, i64::MAX, limit)?;
            messages.reverse();
            tx.finish().map_err(internal)?;
            Ok(Versioned {
                value: ChatSession::from_parts(summary, messages),
                etag: ETag::new(etag),
            })
        })
        .await
    }

    async fn list_messages(
        &self,
        owner: &Owner,
        id: &SessionId,
        query: MessageQuery,
    ) -> StoreResult<MessagePage> {
        let (owner, id) = (owner.clone(), id.clone());
        self.read(move |conn| {
            let tx = conn.transaction().map_err(internal)?;
            let (summary, _) = find_session(&tx, &owner, &id)?;
            // Position p (0-based) is seq p + 1, and seqs run 1..=count.
            let end = query
                .before
                .map_or(summary.message_count, |b| b.min(summary.message_count));
            let start = end.saturating_sub(u64::from(query.limit));
            let messages = messages_before(&tx, &id, end as i64 + 1, (end - start) as u32)?;
            tx.finish().map_err(internal)?;
            Ok(MessagePage {
                messages,
                next_before: (start > 0).then_some(start),
            })
        })
        .await
    }

    async fn list_sessions(&self, owner: &Owner, query: &ListQuery) -> StoreResult<SessionPage> {
        let after = query
            .continuation
            .as_deref()
            .map(decode_cursor)
            .transpose()?;
        let owner = owner.clone();
        let query = query.clone();
        self.read(move |tx| {
            let limit = query.limit.clamp(1, 200);
            let (after_updated, after_id) = after.unzip();
            let sql = format!(
                "SELECT {SESSION_COLUMNS} FROM sessions WHERE user_id IS ?1 \
                 AND (?2 IS NULL OR is_active = ?2) \
                 AND (?3 IS NULL OR (updated_at, id) < (?3, ?4)) \
                 ORDER BY updated_at DESC, id DESC LIMIT ?5"
            );
            let mut stmt = tx.prepare_cached(&sql).map_err(internal)?;
            let mut sessions = stmt
                .query_map(
                    params![
                        owner.user_id().map(UserId::as_str),
                        query.is_active,
                        after_updated,
                        after_id,
                        i64::from(limit) + 1,
                    ],
                    |row| session_row(row).map(|(summary, _)| summary),
                )
                .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
                .map_err(internal)?;
            let continuation = if sessions.len() > limit as usize {
                sessions.truncate(limit as usize);
                sessions.last().map(encode_cursor)
            } else {
                None
            };
            Ok(SessionPage {
                sessions,
                continuation,
            })
        })
        .await
    }

    async fn update_session(
        &self,
        owner: &Owner,
        id: &SessionId,
        patch: &SessionPatch,
        if_match: Option<&ETag>,
    ) -> StoreResult<Versioned<ChatSession>> {
        let (owner, id, patch, if_match) =
            (owner.clone(), id.clone(), patch.clone(), if_match.cloned());
        self.write(move |tx| {
            let Versioned { mut value, etag } = load_session(tx, &owner, &id)?;
            check_etag(etag.as_str(), if_match.as_ref())?;
            patch.apply_to(&mut value, Timestamp::now());
            let etag = new_etag();
            tx.execute(
                "UPDATE sessions SET session_name = ?2, is_active = ?3, context = ?4, \
                 updated_at = ?5, etag = ?6 WHERE id = ?1",
                params![
                    id.as_str(),
                    value.session_name,
                    value.is_active,
                    to_json(&value.context)?,
                    value.updated_at.to_string(),
                    etag,
                ],
            )
            .map_err(internal)?;
            Ok(Versioned {
                value,
                etag: ETag::new(etag),
            })
        })
        .await
    }

    async fn delete_session(
        &self,
        owner: &Owner,
        id: &SessionId,
        if_match: Option<&ETag>,
    ) -> StoreResult<()> {
        let (owner, id, if_match) = (owner.clone(), id.clone(), if_match.cloned());
        self.write(move |tx| {
            let (_, etag) = find_session(tx, &owner, &id)?;
            check_etag(&etag, if_match.as_ref())?;
            tx.execute("DELETE FROM sessions WHERE id = ?1", [id.as_str()])
                .map_err(internal)?;
            Ok(())
        })
        .await
    }

    async fn append_message(
        &self,
        owner: &Owner,
        id: &SessionId,
        message: NewMessage,
    ) -> StoreResult<Appended> {
        let (owner, id) = (owner.clone(), id.clone());
        self.write(move |tx| {
            let (session, etag) = find_session(tx, &owner, &id)?;
            let existing = tx
                .prepare_cached(
                    "SELECT id, content, message_type, user_id, metadata, created_at \
                     FROM messages WHERE session_id = ?1 AND id = ?2",
                )
                .and_then(|mut stmt| {
                    stmt.query_row([id.as_str(), message.id.as_str()], message_row)
                        .optional()
                })
                .map_err(internal)?;
            if let Some(stored) = existing {
                return Appended::replay(stored, &message, ETag::new(etag));
            }
            // Never let the clock run backwards inside a session: the array
            // order and the timestamps must agree.
            let now = session
                .last_message_at
                .map_or_else(Timestamp::now, |last| Timestamp::now().max(last));
            let stored = ChatMessage {
                id: message.id,
                content: message.content,
                message_type: message.message_type,
                user_id: message.user_id.or(session.user_id),
                metadata: message.metadata,
                created_at: now,
            };
            let metadata = to_json(&stored.metadata)?;
            let etag = new_etag();
            // Messages are never removed one by one, so the count is the
            // last position; a diverged count fails on the primary key
            // rather than overwrite anything.
            let seq = session.message_count + 1;
            tx.prepare_cached(
                "INSERT INTO messages (session_id, seq, id, content, message_type, user_id, \
                 metadata, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )
            .and_then(|mut stmt| {
                stmt.execute(params![
                    id.as_str(),
                    seq,
                    stored.id.as_str(),
                    stored.content,
                    stored.message_type.as_str(),
                    stored.user_id.as_ref().map(UserId::as_str),
                    metadata,
                    now.to_string(),
                ])
            })
            .map_err(internal)?;
            tx.prepare_cached(
                "UPDATE sessions SET message_count = message_count + 1, last_message_at = ?2, \
                 updated_at = MAX(updated_at, ?2), etag = ?3 WHERE id = ?1",
            )
            .and_then(|mut stmt| stmt.execute(params![id.as_str(), now.to_string(), etag]))
            .map_err(internal)?;
            Ok(Appended {
                message: stored,
                created: true,
                etag: ETag::new(etag),
            })
        })
        .await
    }
}

#[async_trait]
impl MigrationStore for SqliteStore {
    async fn import_messages(&self, import: SessionImport) -> StoreResult<ImportOutcome> {
        self.write(move |tx| import_into(tx, import)).await
    }

    async fn load_checkpoint(&self, run_id: &str) -> StoreResult<Option<Versioned<String>>> {
        let run_id = run_id.to_owned();
        self.read(move |conn| {
            conn.query_row(
                "SELECT state, etag FROM migration_checkpoints WHERE run_id = ?1",
                [run_id],
                |row| Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?)),
            )
            .optional()
            .map_err(internal)
            .map(|found| {
                found.map(|(state, etag)| Versioned {
                    value: state,
                    etag: ETag::new(etag),
                })
            })
        })
        .await
    }

    async fn save_checkpoint(
        &self,
        run_id: &str,
        state: &str,
        expected: Option<&ETag>,
    ) -> StoreResult<ETag> {
        let (run_id, state, expected) = (run_id.to_owned(), state.to_owned(), expected.cloned());
        self.write(move |tx| {
            let current: Option<String> = tx
                .query_row(
                    "SELECT etag FROM migration_checkpoints WHERE run_id = ?1",
                    [&run_id],
                    |row| row.get(0),
                )
                .optional()
                .map_err(internal)?;
            if current.map(ETag::new) != expected {
                return Err(StoreError::PreconditionFailed);
            }
            let etag = new_etag();
            tx.execute(
                "INSERT INTO migration_checkpoints (run_id, state, etag, updated_at) \
                 VALUES (?1, ?2, ?3, ?4) ON CONFLICT (run_id) DO UPDATE SET \
                 state = excluded.state, etag = excluded.etag, updated_at = excluded.updated_at",
                params![run_id, state, etag, Timestamp::now().to_string()],
            )
            .map_err(internal)?;
            Ok(ETag::new(etag))
        })
        .await
    }
}

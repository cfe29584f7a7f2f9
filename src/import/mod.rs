//! Import: a user's history brought in from a file, recognised from its
//! content: this service's own export (NDJSON, `crate::export`) or ChatGPT's
//! `conversations.json`. No HTTP here; the API and the CLI both call [`run`].
//!
//! All or nothing per request: the whole file is read and checked (every
//! line or conversation, and every session id against the store) before the
//! first write, and a fault is reported with where it is (`line 7`,
//! `conversation 3`). Validate in one pass, write in a second: the file is
//! on disk (the HTTP side spools the upload to an unnamed temporary file),
//! and each pass reads it as a stream through a 64 KiB buffer, one unit (a
//! session with its messages, a ChatGPT conversation: serde_json's reader
//! over the array, element by element) in memory at a time. The first pass
//! keeps only the session ids; the second hands units over a bounded
//! channel to the writes, at most 16 MiB of them waiting or being written.
//! A unit larger than [`MAX_UNIT_BYTES`] is refused (422, nothing written)
//! as it is read. So an import's memory is bounded whatever the file's
//! size: about 64 MB at most, and far less for ordinary files.
//!
//! Idempotent: a session that exists gets only the messages it lacks, so the
//! same file imported again adds nothing — which also makes a request cut
//! off by a store failure safe to repeat.
//!
//! A session id that another user has (an export given to a colleague, or
//! brought to a new account) is imported as the importer's own copy, under
//! an id derived from the importer and the original ([`copy_id`]): the same
//! importer gets the same copy again, the owner their own session.
//!
//! The files of this module: `ndjson` (our export format) and `chatgpt`
//! (ChatGPT's); this file checks and runs the import.

use std::{
    collections::{HashMap, HashSet},
    fmt,
    fs::File,
    sync::Arc,
};

use futures::{StreamExt as _, TryStreamExt as _};
use serde::Serialize;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::{
    digest::sha256_hex,
    domain::{MAX_ID_LEN, MessageId, SessionId},
    store::{ImportStore, Owner, SessionFields, SessionImport, StoreError},
};

mod chatgpt;
mod file;
mod ndjson;

pub use file::MAX_UNIT_BYTES;

/// Sessions written side by side: the stores group concurrent writes
/// (SQLite commits, overlapping Cosmos round trips).
const CONCURRENCY: usize = 8;
/// The most bytes of units read and waiting to be written, or being
/// written (by [`weight`]).
const IN_FLIGHT_BYTES: u64 = 16 * 1024 * 1024;

/// Where in a file something is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    /// A line of an NDJSON file, counting from 1.
    Line(u64),
    /// An element of ChatGPT's array of conversations, counting from 0.
    Conversation(usize),
}

impl fmt::Display for Place {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Line(n) => write!(f, "line {n}"),
            Self::Conversation(i) => write!(f, "conversation {i}"),
        }
    }
}

/// Why an import was refused or stopped.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The file is not JSON where it must be, or not a format this service
    /// knows. Nothing was written.
    #[error("{0}")]
    Malformed(String),
    /// Well-formed, but a value is invalid. Nothing was written.
    #[error("{0}")]
    Invalid(String),
    /// A session in the file exists under another owner. Nothing was
    /// written.
    #[error("{0}")]
    Conflict(String),
    /// The store failed while writing; the sessions before were imported,
    /// and importing the same file again completes the import.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl ImportError {
    fn invalid(place: Place, message: impl fmt::Display) -> Self {
        Self::Invalid(format!("{place}: {message}"))
    }
}

/// What an import did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ImportReport {
    /// Sessions that did not exist and were created.
    pub sessions_created: u64,
    /// Sessions that existed and got messages they lacked.
    pub sessions_updated: u64,
    /// Messages stored.
    pub messages_added: u64,
    /// Messages whose ids their session held already (left as they were).
    pub messages_skipped: u64,
}

/// How far an import is, after each session written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Progress {
    /// Sessions written so far.
    pub sessions_done: u64,
    /// Sessions in the file.
    pub sessions_total: u64,
    /// Messages of the sessions written so far.
    pub messages_done: u64,
    /// Messages in the file.
    pub messages_total: u64,
}

/// One session as the file gives it, ready to write.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Unit {
    /// Where it starts in the file.
    pub(crate) place: Place,
    /// Its own fields, for when it is created.
    pub(crate) fields: SessionFields,
    /// Its id, owner and messages, oldest first.
    pub(crate) import: SessionImport,
}

/// serde_json's message without its " at line L column C", which counts
/// within the piece parsed (a line, a conversation), not the file.
fn without_position(e: &serde_json::Error) -> String {
    let text = e.to_string();
    match text.rfind(" at line ") {
        Some(i) => text[..i].to_owned(),
        None => text,
    }
}

/// The formats [`run`] recognises.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// This service's export: NDJSON session and message lines.
    Export,
    /// ChatGPT's `conversations.json`: a JSON array of conversations.
    ChatGpt,
    /// An empty file: nothing to import.
    Empty,
}

/// The format of `body`, from its first character: `{` is our NDJSON
/// export, `[` ChatGPT's array.
pub fn detect(body: &[u8]) -> Result<Format, ImportError> {
    match body
        .strip_prefix(b"\xEF\xBB\xBF")
        .unwrap_or(body)
        .trim_ascii_start()
        .first()
    {
        None => Ok(Format::Empty),
        Some(b'{') => Ok(Format::Export),
        Some(b'[') => Ok(Format::ChatGpt),
        Some(_) => Err(ImportError::Malformed(
            "the file is neither this service's export (NDJSON, one JSON object per line) \
             nor ChatGPT's conversations.json (a JSON array)"
                .into(),
        )),
    }
}

/// Reads the units of `file` from its start one at a time, handing each to
/// `each` before the next is read; the file's format. With `checking`, a
/// fault of ChatGPT's JSON further on is reported rather than one found
/// before it (see `chatgpt::read`).
fn read_units(
    file: &File,
    owner: &Owner,
    checking: bool,
    each: &mut dyn FnMut(Unit) -> Result<(), ImportError>,
) -> Result<Format, ImportError> {
    let (reader, meter, format) = file::open(file)?;
    match format {
        Format::Empty => {}
        Format::Export => {
            for unit in ndjson::Units::new(reader, &meter, owner) {
                each(unit?)?;
            }
        }
        Format::ChatGpt => chatgpt::read(reader, &meter, owner, checking, each)?,
    }
    Ok(format)
}

/// What the first pass learnt: the sessions, where they start, and how
/// many messages there are.
struct Checked {
    format: Format,
    sessions: Vec<(SessionId, Place)>,
    messages: u64,
}

/// The first pass: every unit parsed and checked, nothing kept but ids.
fn check(file: &File, owner: &Owner) -> Result<Checked, ImportError> {
    let mut seen = HashSet::new();
    let mut sessions = Vec::new();
    let mut messages = 0;
    let format = read_units(file, owner, true, &mut |unit| {
        if !seen.insert(unit.import.id.clone()) {
            return Err(ImportError::invalid(
                unit.place,
                format_args!("session {} comes a second time in the file", unit.import.id),
            ));
        }
        let mut ids: HashSet<&MessageId> = HashSet::with_capacity(unit.import.messages.len());
        if let Some(twice) = unit.import.messages.iter().find(|m| !ids.insert(&m.id)) {
            return Err(ImportError::invalid(
                unit.place,
                format_args!(
                    "message id {} comes twice in session {}",
                    twice.id, unit.import.id
                ),
            ));
        }
        messages += unit.import.messages.len() as u64;
        sessions.push((unit.import.id, unit.place));
        Ok(())
    })?;
    Ok(Checked {
        format,
        sessions,
        messages,
    })
}

/// Checks `file` without writing: the format, every line or conversation,
/// nothing about the store. What [`run`] does first.
pub fn validate(file: &File, owner: &Owner) -> Result<Format, ImportError> {
    check(file, owner).map(|checked| checked.format)
}

/// Imports `file` for `owner` into `store`: checks it whole (see the module
/// documentation), then writes it session by session, calling `progress`
/// after each. The file is read twice, as a stream each time, on the
/// blocking pool.
pub async fn run(
    store: &dyn ImportStore,
    owner: &Owner,
    file: File,
    progress: &mut (dyn FnMut(Progress) + Send),
) -> Result<ImportReport, ImportError> {
    let file = Arc::new(file);
    let checked = {
        let (file, owner) = (file.clone(), owner.clone());
        tokio::task::spawn_blocking(move || check(&file, &owner))
            .await
            .map_err(|e| internal(format_args!("the import's check failed: {e}")))??
    };
    let copies = own_ids(store, owner, &checked.sessions).await?;
    let done = Progress {
        sessions_total: checked.sessions.len() as u64,
        messages_total: checked.messages,
        ..Progress::default()
    };
    drop(checked);
    progress(done);
    write(store, owner, file, copies, done, progress).await
}

/// Digits of the digest in [`copy_id`]: 64 bits, so that ids of copies
/// never meet by chance.
const COPY_DIGEST: usize = 16;

/// The id of `owner`'s copy of session `original` (one another user has):
/// the original id, cut to leave room, `_` and 16 hex digits of a digest of
/// the owner and the original id. The same for the same importer each
/// time, so a second import finds the copy the first one made; another for
/// each importer.
pub fn copy_id(owner: &Owner, original: &SessionId) -> SessionId {
    // User ids hold no control characters, so the newline separates.
    let user = owner.user_id().map_or("", |u| u.as_str());
    let digest = sha256_hex(&format!("{user}\n{}", original.as_str()), COPY_DIGEST);
    let room = MAX_ID_LEN - 1 - COPY_DIGEST;
    // Ids are ASCII: any cut is at a character boundary.
    let kept = &original.as_str()[..original.as_str().len().min(room)];
    SessionId::parse(format!("{kept}_{digest}")).expect("a valid id and hex digits are a valid id")
}

/// Where each session of the file goes, when not to its own id: the ids
/// the file names that another user has become `owner`'s copies
/// ([`copy_id`]). A session the importer has, or a copy they have, is
/// imported into (so a repeat adds nothing); a free id is taken as it is.
/// Only when the copy's id is another user's too is the import refused.
async fn own_ids(
    store: &dyn ImportStore,
    owner: &Owner,
    sessions: &[(SessionId, Place)],
) -> Result<HashMap<SessionId, SessionId>, ImportError> {
    // Each id and its copy's, in one look-up: who has each of them.
    let asked: Vec<SessionId> = sessions
        .iter()
        .flat_map(|(id, _)| [id.clone(), copy_id(owner, id)])
        .collect();
    let owners = store.session_owners(&asked).await?;
    drop(asked);
    let existing: HashSet<&SessionId> = owners.iter().map(|(id, _)| id).collect();
    let others: HashSet<&SessionId> = owners
        .iter()
        .filter(|(_, user)| user.as_ref() != owner.user_id())
        .map(|(id, _)| id)
        .collect();
    let mut targets = HashMap::new();
    let mut taken = HashSet::with_capacity(sessions.len());
    for (id, place) in sessions {
        let target = if existing.contains(id) && !others.contains(id) {
            id.clone()
        } else {
            let copy = copy_id(owner, id);
            let copy_exists = existing.contains(&copy);
            if copy_exists && !others.contains(&copy) {
                copy
            } else if !existing.contains(id) {
                id.clone()
            } else if !copy_exists {
                copy
            } else {
                return Err(ImportError::Conflict(format!(
                    "{place}: session {id} belongs to another user, and so does {copy}, the id \
                     a copy of it would take; nothing was imported"
                )));
            }
        };
        if !taken.insert(target.clone()) {
            return Err(ImportError::invalid(
                *place,
                format_args!(
                    "session {id} would be imported as {target}, which another session of the \
                     file is imported as too"
                ),
            ));
        }
        if target != *id {
            targets.insert(id.clone(), target);
        }
    }
    Ok(targets)
}

/// The second pass: the units read again on the blocking pool and handed
/// over a bounded channel, written [`CONCURRENCY`] at a time, with at most
/// [`IN_FLIGHT_BYTES`] of them read and not yet written.
async fn write(
    store: &dyn ImportStore,
    owner: &Owner,
    file: Arc<File>,
    copies: HashMap<SessionId, SessionId>,
    mut done: Progress,
    progress: &mut (dyn FnMut(Progress) + Send),
) -> Result<ImportReport, ImportError> {
    let (units, mut received) = tokio::sync::mpsc::channel(CONCURRENCY);
    let budget = Arc::new(Semaphore::new(IN_FLIGHT_BYTES as usize));
    let reading = {
        let (owner, runtime) = (owner.clone(), tokio::runtime::Handle::current());
        tokio::task::spawn_blocking(move || {
            read_units(&file, &owner, false, &mut |unit| {
                let weight = weight(&unit).clamp(1, IN_FLIGHT_BYTES) as u32;
                let permit = runtime
                    .block_on(budget.clone().acquire_many_owned(weight))
                    .map_err(|_| internal("the import's budget closed"))?;
                units
                    .blocking_send((unit, permit))
                    .map_err(|_| internal("the import's writes stopped"))
            })
        })
    };
    let units = futures::stream::poll_fn(move |cx| received.poll_recv(cx));
    let copies = &copies;
    let mut writes = units
        .map(
            |(mut unit, permit): (Unit, OwnedSemaphorePermit)| async move {
                if let Some(copy) = copies.get(&unit.import.id) {
                    unit.import.id = copy.clone();
                }
                let messages = unit.import.messages.len() as u64;
                let outcome = store.import_session(unit.fields, unit.import).await;
                drop(permit);
                outcome.map(|outcome| (outcome, messages))
            },
        )
        .buffered(CONCURRENCY);
    let mut report = ImportReport::default();
    while let Some((outcome, messages)) = writes.try_next().await? {
        if outcome.created {
            report.sessions_created += 1;
        } else if outcome.added > 0 {
            report.sessions_updated += 1;
        }
        report.messages_added += outcome.added;
        report.messages_skipped += outcome.already_present;
        done.sessions_done += 1;
        done.messages_done += messages;
        progress(done);
    }
    // The first pass read the same bytes without fault: a fault now is ours.
    reading
        .await
        .map_err(|e| internal(format_args!("the import's reader failed: {e}")))?
        .map_err(|e| internal(format_args!("a checked file failed to read: {e}")))?;
    Ok(report)
}

/// About what a unit costs in memory while it waits to be written: its
/// messages' text and tool calls' arguments (code, from ChatGPT), and a
/// little for each message's fields.
fn weight(unit: &Unit) -> u64 {
    unit.import
        .messages
        .iter()
        .map(|m| {
            let arguments: usize = m
                .tool_calls
                .iter()
                .flatten()
                .map(|call| call.function.arguments.len())
                .sum();
            (m.content.len() + arguments) as u64 + 256
        })
        .sum::<u64>()
        + 1024
}

fn internal(what: impl fmt::Display) -> ImportError {
    ImportError::Store(StoreError::Internal(anyhow::anyhow!("{what}")))
}

#[cfg(test)]
mod tests {
    use std::io::{Seek as _, Write as _};

    use super::*;

    fn file_of(bytes: &[u8]) -> File {
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(bytes).unwrap();
        // Where the file is left does not matter: each pass reads from 0.
        file.seek(std::io::SeekFrom::Start(3)).unwrap();
        file
    }

    #[test]
    fn a_unit_over_the_bound_is_refused_as_it_is_read() {
        let owner = Owner::Anonymous;
        let big = "x".repeat(MAX_UNIT_BYTES as usize + 256 * 1024);
        // ChatGPT: one conversation too large, after a good start.
        let conversation = format!(r#"[{{"id":"c1","title":"{big}"}}]"#);
        let e = validate(&file_of(conversation.as_bytes()), &owner).unwrap_err();
        assert!(
            matches!(&e, ImportError::Invalid(d) if d.starts_with("conversation 0: larger than")),
            "{e}"
        );
        // NDJSON: one line too large.
        let line = format!("{{\"type\":\"session\",\"id\":\"{big}\"}}\n");
        let e = validate(&file_of(line.as_bytes()), &owner).unwrap_err();
        assert!(
            matches!(&e, ImportError::Invalid(d) if d.starts_with("line 1: the line is larger")),
            "{e}"
        );
    }

    #[test]
    fn a_copy_has_an_id_of_its_importer_and_original() {
        use crate::domain::UserId;
        let bob = Owner::User(UserId::parse("bob").unwrap());
        let carol = Owner::User(UserId::parse("carol").unwrap());
        let id = SessionId::parse("session_3f9a1c0b7d2e_20240101_120000").unwrap();
        let copy = copy_id(&bob, &id);
        assert_eq!(copy, copy_id(&bob, &id), "the same each time");
        assert!(
            copy.as_str()
                .starts_with("session_3f9a1c0b7d2e_20240101_120000_")
        );
        assert_eq!(copy.as_str().len(), id.as_str().len() + 1 + COPY_DIGEST);
        assert_ne!(copy, copy_id(&carol, &id));
        assert_ne!(copy, copy_id(&Owner::Anonymous, &id));
        // The longest id still leaves a valid one, distinct per original.
        let long = SessionId::parse("x".repeat(MAX_ID_LEN)).unwrap();
        let longer = SessionId::parse(format!("{}y", "x".repeat(MAX_ID_LEN - 1))).unwrap();
        assert_eq!(copy_id(&bob, &long).as_str().len(), MAX_ID_LEN);
        assert_ne!(copy_id(&bob, &long), copy_id(&bob, &longer));
    }

    #[test]
    fn the_format_is_told_after_a_bom_and_blanks_and_empty_is_empty() {
        let owner = Owner::Anonymous;
        assert_eq!(
            validate(&file_of(b"\xEF\xBB\xBF \n [ ]"), &owner).unwrap(),
            Format::ChatGpt
        );
        assert_eq!(validate(&file_of(b" \n\t"), &owner).unwrap(), Format::Empty);
        assert!(matches!(
            validate(&file_of(b"  hello"), &owner),
            Err(ImportError::Malformed(_))
        ));
        // Broken JSON further on beats an invalid conversation before it.
        let e = validate(&file_of(br#"[{"id":"c1"}, {"#), &owner).unwrap_err();
        assert!(matches!(e, ImportError::Malformed(_)), "{e}");
    }
}

//! Import: a user's history brought in from a file, recognised from its
//! content: this service's own export (NDJSON, `crate::export`) or ChatGPT's
//! `conversations.json`. No HTTP here; the API and the CLI both call [`run`].
//!
//! All or nothing per request: the whole file is read and checked (every
//! line or conversation, and every session id against the store) before the
//! first write, and a fault is reported with where it is (`line 7`,
//! `conversation 3`). Memory stays light: the first pass keeps only ids, the
//! second parses the file again and writes one session at a time.
//!
//! Idempotent: a session that exists gets only the messages it lacks, so the
//! same file imported again adds nothing — which also makes a request cut
//! off by a store failure safe to repeat.
//!
//! The files of this module: `ndjson` (our export format) and `chatgpt`
//! (ChatGPT's); this file checks and runs the import.

use std::{collections::HashSet, fmt};

use futures::{StreamExt as _, TryStreamExt as _};
use serde::Serialize;

use crate::{
    domain::{MessageId, SessionId},
    store::{ImportStore, Owner, SessionFields, SessionImport, StoreError},
};

mod chatgpt;
mod ndjson;

/// Sessions written side by side: the stores group concurrent writes
/// (SQLite commits, overlapping Cosmos round trips).
const CONCURRENCY: usize = 8;

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

/// The sessions of a file one at a time, parsed as they are asked for.
type Units<'a> = Box<dyn Iterator<Item = Result<Unit, ImportError>> + Send + 'a>;

/// A file, recognised and split into its units (lines, conversations).
struct Source<'a> {
    body: &'a [u8],
    format: Format,
    conversations: Vec<&'a serde_json::value::RawValue>,
}

impl<'a> Source<'a> {
    fn open(body: &'a [u8]) -> Result<Self, ImportError> {
        let body = body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body);
        let format = detect(body)?;
        let conversations = match format {
            Format::ChatGpt => chatgpt::split(body)?,
            Format::Export | Format::Empty => Vec::new(),
        };
        Ok(Self {
            body,
            format,
            conversations,
        })
    }

    fn units(&self, owner: &'a Owner) -> Units<'_> {
        match self.format {
            Format::Empty => Box::new(std::iter::empty()),
            Format::Export => Box::new(ndjson::Units::new(self.body, owner)),
            Format::ChatGpt => Box::new(
                self.conversations
                    .iter()
                    .enumerate()
                    .map(move |(i, raw)| chatgpt::unit(i, raw, owner)),
            ),
        }
    }
}

/// What the first pass learnt: the sessions, where they start, and how
/// many messages there are.
struct Checked {
    sessions: Vec<(SessionId, Place)>,
    messages: u64,
}

/// The first pass: every unit parsed and checked, nothing kept but ids.
fn check(source: &Source<'_>, owner: &Owner) -> Result<Checked, ImportError> {
    let mut seen = HashSet::new();
    let mut checked = Checked {
        sessions: Vec::new(),
        messages: 0,
    };
    for unit in source.units(owner) {
        let unit = unit?;
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
        checked.messages += unit.import.messages.len() as u64;
        checked.sessions.push((unit.import.id, unit.place));
    }
    Ok(checked)
}

/// Checks `body` without writing: the format, every line or conversation,
/// nothing about the store. What [`run`] does first.
pub fn validate(body: &[u8], owner: &Owner) -> Result<Format, ImportError> {
    let source = Source::open(body)?;
    check(&source, owner)?;
    Ok(source.format)
}

/// Imports `body` for `owner` into `store`: checks it whole (see the module
/// documentation), then writes it session by session, calling `progress`
/// after each.
pub async fn run(
    store: &dyn ImportStore,
    owner: &Owner,
    body: &[u8],
    progress: &mut (dyn FnMut(Progress) + Send),
) -> Result<ImportReport, ImportError> {
    let source = Source::open(body)?;
    let checked = check(&source, owner)?;
    let ids: Vec<SessionId> = checked.sessions.iter().map(|(id, _)| id.clone()).collect();
    let taken = store.sessions_of_others(owner, &ids).await?;
    if let Some((id, place)) = checked.sessions.iter().find(|(id, _)| taken.contains(id)) {
        return Err(ImportError::Conflict(format!(
            "{place}: session {id} belongs to another user; nothing was imported"
        )));
    }
    let mut done = Progress {
        sessions_total: checked.sessions.len() as u64,
        messages_total: checked.messages,
        ..Progress::default()
    };
    progress(done);
    let mut report = ImportReport::default();
    let mut writes = futures::stream::iter(source.units(owner))
        .map(|unit| async move {
            // The first pass parsed the same bytes without fault.
            let unit = unit.map_err(|e| {
                StoreError::Internal(anyhow::anyhow!("a checked file failed to parse: {e}"))
            })?;
            let messages = unit.import.messages.len() as u64;
            store
                .import_session(unit.fields, unit.import)
                .await
                .map(|outcome| (outcome, messages))
        })
        .buffered(CONCURRENCY);
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
    Ok(report)
}

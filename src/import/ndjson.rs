//! This service's own export read back: NDJSON lines as `crate::export`
//! writes them, a session line followed by its messages, read one session
//! at a time.

use super::{ImportError, Place, Unit, without_position};
use crate::{
    domain::{ChatMessage, SessionSummary, check_session_name},
    export::ExportLine,
    store::{Owner, SessionFields, SessionImport},
};

/// The sessions of an export, each with its messages, in file order.
pub(super) struct Units<'a> {
    body: &'a [u8],
    /// Where the next line starts.
    at: usize,
    /// The number of the line last read.
    line: u64,
    /// A session line read while collecting the session before it.
    pending: Option<(Place, SessionSummary)>,
    owner: &'a Owner,
    done: bool,
}

impl<'a> Units<'a> {
    pub(super) fn new(body: &'a [u8], owner: &'a Owner) -> Self {
        Self {
            body,
            at: 0,
            line: 0,
            pending: None,
            owner,
            done: false,
        }
    }

    /// The next line that is not blank, with its number.
    fn next_line(&mut self) -> Option<(u64, &'a [u8])> {
        while self.at < self.body.len() {
            let rest = &self.body[self.at..];
            let end = rest.iter().position(|&b| b == b'\n').unwrap_or(rest.len());
            self.at += end + 1;
            self.line += 1;
            let line = rest[..end].trim_ascii();
            if !line.is_empty() {
                return Some((self.line, line));
            }
        }
        None
    }

    /// The next session with its messages.
    fn read_unit(&mut self) -> Result<Option<Unit>, ImportError> {
        let (place, summary) = match self.pending.take() {
            Some(pending) => pending,
            None => match self.next_line() {
                None => return Ok(None),
                Some((n, line)) => match parse(n, line)? {
                    ExportLine::Session(summary) => (Place::Line(n), summary),
                    ExportLine::Message(_) => {
                        return Err(ImportError::invalid(
                            Place::Line(n),
                            "a message line before any session line",
                        ));
                    }
                },
            },
        };
        let mut messages = Vec::new();
        while let Some((n, line)) = self.next_line() {
            match parse(n, line)? {
                ExportLine::Session(next) => {
                    self.pending = Some((Place::Line(n), next));
                    break;
                }
                ExportLine::Message(m) => {
                    if m.session_id != summary.id {
                        return Err(ImportError::invalid(
                            Place::Line(n),
                            format_args!(
                                "a message of session {} among the messages of session {} \
                                 (each session's messages follow its session line)",
                                m.session_id, summary.id
                            ),
                        ));
                    }
                    if m.message.content.trim().is_empty() {
                        return Err(ImportError::invalid(
                            Place::Line(n),
                            "content: must not be empty",
                        ));
                    }
                    messages.push(m.message);
                }
            }
        }
        self.unit(place, summary, messages).map(Some)
    }

    fn unit(
        &self,
        place: Place,
        summary: SessionSummary,
        mut messages: Vec<ChatMessage>,
    ) -> Result<Unit, ImportError> {
        if let Some(name) = &summary.session_name {
            check_session_name(name).map_err(|e| ImportError::invalid(place, e))?;
        }
        if summary.message_count != messages.len() as u64 {
            return Err(ImportError::invalid(
                place,
                format_args!(
                    "session {} has message_count {}, but {} of its messages follow it \
                     (is the file cut short?)",
                    summary.id,
                    summary.message_count,
                    messages.len()
                ),
            ));
        }
        // The caller owns what they import, whoever the file names.
        let user = self.owner.user_id().cloned();
        for message in &mut messages {
            message.user_id = user.clone();
        }
        // Stable: messages of the same instant keep the file's order.
        messages.sort_by_key(|m| m.created_at);
        Ok(Unit {
            place,
            fields: SessionFields {
                session_name: summary.session_name,
                context: summary.context,
                is_active: summary.is_active,
                archived_at: summary.archived_at,
                created_at: summary.created_at,
                updated_at: summary.updated_at,
            },
            import: SessionImport {
                id: summary.id,
                user_id: user,
                messages,
            },
        })
    }
}

impl Iterator for Units<'_> {
    type Item = Result<Unit, ImportError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let unit = self.read_unit().transpose();
        self.done = !matches!(unit, Some(Ok(_)));
        unit
    }
}

/// One line: a syntax error is [`ImportError::Malformed`], a line of the
/// wrong shape [`ImportError::Invalid`].
fn parse(n: u64, line: &[u8]) -> Result<ExportLine, ImportError> {
    serde_json::from_slice(line).map_err(|e| {
        use serde_json::error::Category;
        let place = format!("line {n}, column {}", e.column());
        let what = without_position(&e);
        match e.classify() {
            Category::Data => ImportError::Invalid(format!("{place}: {what}")),
            Category::Syntax | Category::Eof | Category::Io => {
                ImportError::Malformed(format!("{place}: not valid JSON: {what}"))
            }
        }
    })
}

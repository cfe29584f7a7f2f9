//! This service's own export read back: NDJSON lines as `crate::export`
//! writes them, a session line followed by its messages, read one session
//! at a time, from a stream: one line, and one session's lines, in memory
//! at a time, neither larger than [`MAX_UNIT_BYTES`].

use std::io::BufRead;

use super::{
    ImportError, Place, Unit,
    file::{MAX_UNIT_BYTES, Meter, read_failed},
    without_position,
};
use crate::{
    domain::{ChatMessage, SessionSummary, check_message, check_session_name},
    export::ExportLine,
    store::{Owner, SessionFields, SessionImport},
};

/// The sessions of an export, each with its messages, in file order.
pub(super) struct Units<'a, R> {
    reader: R,
    meter: &'a Meter,
    /// The bytes of the lines of the session being read.
    unit_bytes: u64,
    /// The number of the line last read.
    line: u64,
    /// A session line read while collecting the session before it.
    pending: Option<(Place, SessionSummary)>,
    owner: &'a Owner,
    done: bool,
}

impl<'a, R: BufRead> Units<'a, R> {
    pub(super) fn new(reader: R, meter: &'a Meter, owner: &'a Owner) -> Self {
        Self {
            reader,
            meter,
            unit_bytes: 0,
            line: 0,
            pending: None,
            owner,
            done: false,
        }
    }

    /// The next line that is not blank, with its number; a line larger
    /// than [`MAX_UNIT_BYTES`] is refused before more of it is read.
    fn next_line(&mut self) -> Result<Option<(u64, Vec<u8>)>, ImportError> {
        loop {
            let mut line = Vec::new();
            self.meter.start();
            let n = <&mut R as std::io::Read>::take(&mut self.reader, MAX_UNIT_BYTES + 1)
                .read_until(b'\n', &mut line)
                .map_err(read_failed)?;
            if n == 0 {
                return Ok(None);
            }
            self.line += 1;
            if line.len() as u64 > MAX_UNIT_BYTES {
                return Err(ImportError::invalid(
                    Place::Line(self.line),
                    format_args!("the line is larger than {MAX_UNIT_BYTES} bytes"),
                ));
            }
            self.unit_bytes += line.len() as u64;
            if !line.trim_ascii().is_empty() {
                return Ok(Some((self.line, line)));
            }
        }
    }

    /// The bytes the session being read took so far, refused past
    /// [`MAX_UNIT_BYTES`].
    fn check_size(&self, place: Place, id: &crate::domain::SessionId) -> Result<(), ImportError> {
        if self.unit_bytes > MAX_UNIT_BYTES {
            return Err(ImportError::invalid(
                place,
                format_args!(
                    "session {id} is larger than {MAX_UNIT_BYTES} bytes with its messages, the \
                     most one session may be in an import"
                ),
            ));
        }
        Ok(())
    }

    /// The next session with its messages.
    fn read_unit(&mut self) -> Result<Option<Unit>, ImportError> {
        let (place, summary) = match self.pending.take() {
            Some(pending) => pending,
            None => match self.next_line()? {
                None => return Ok(None),
                Some((n, line)) => match parse(n, line.trim_ascii())? {
                    // The current branch is read with trees; a chain's
                    // ends at its last message anyway.
                    ExportLine::Session(session) => (Place::Line(n), session.summary),
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
        while let Some((n, line)) = self.next_line()? {
            match parse(n, line.trim_ascii())? {
                ExportLine::Session(next) => {
                    self.pending = Some((Place::Line(n), next.summary));
                    // The next session's line is the next session's.
                    self.unit_bytes = line.len() as u64;
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
                    // As a post is: an assistant message that calls tools
                    // may have no content (the export writes it so).
                    let message = &m.message;
                    check_message(
                        &message.content,
                        message.message_type,
                        &message.tool_parts(),
                    )
                    .map_err(|e| ImportError::invalid(Place::Line(n), e))?;
                    self.check_size(place, &summary.id)?;
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

impl<R: BufRead> Iterator for Units<'_, R> {
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

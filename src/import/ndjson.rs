//! This service's own export read back: NDJSON lines as `crate::export`
//! writes them, a session line followed by its messages, read one session
//! at a time, from a stream: one line, and one session's lines, in memory
//! at a time, neither larger than [`MAX_UNIT_BYTES`].
//!
//! A session whose line names `current_message_id`, or whose messages name
//! parents, is a tree: its messages go to the store in creation order
//! (the file's, unless a child comes before its parent), each parent one
//! of the session's messages in the file. Any other session (a file from
//! before trees) is a chain in time order, as it always was.

use std::{
    cmp::Reverse,
    collections::{BinaryHeap, HashMap},
    io::BufRead,
};

use super::{
    ImportError, Place, Unit,
    file::{MAX_UNIT_BYTES, Meter, read_failed},
    without_position,
};
use crate::{
    domain::{ChatMessage, MessageId, SessionId, check_message, check_session_name},
    export::{ExportLine, SessionLine},
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
    pending: Option<(Place, SessionLine)>,
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
    fn check_size(&self, place: Place, id: &SessionId) -> Result<(), ImportError> {
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
        let (place, session) = match self.pending.take() {
            Some(pending) => pending,
            None => match self.next_line()? {
                None => return Ok(None),
                Some((n, line)) => match parse(n, line.trim_ascii())? {
                    ExportLine::Session(session) => (Place::Line(n), session),
                    ExportLine::Message(_) => {
                        return Err(ImportError::invalid(
                            Place::Line(n),
                            "a message line before any session line",
                        ));
                    }
                },
            },
        };
        let id = session.summary.id.clone();
        let mut messages = Vec::new();
        while let Some((n, line)) = self.next_line()? {
            match parse(n, line.trim_ascii())? {
                ExportLine::Session(next) => {
                    self.pending = Some((Place::Line(n), next));
                    // The next session's line is the next session's.
                    self.unit_bytes = line.len() as u64;
                    break;
                }
                ExportLine::Message(m) => {
                    if m.session_id != id {
                        return Err(ImportError::invalid(
                            Place::Line(n),
                            format_args!(
                                "a message of session {} among the messages of session {} \
                                 (each session's messages follow its session line)",
                                m.session_id, id
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
                    self.check_size(place, &id)?;
                    messages.push((n, m.message));
                }
            }
        }
        self.unit(place, session, messages).map(Some)
    }

    /// The session of the line at `place` with its `messages` (each with
    /// the number of its line), checked and in the order to store them.
    fn unit(
        &self,
        place: Place,
        session: SessionLine,
        messages: Vec<(u64, ChatMessage)>,
    ) -> Result<Unit, ImportError> {
        let SessionLine {
            summary,
            current_message_id,
        } = session;
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
        let tree =
            current_message_id.is_some() || messages.iter().any(|(_, m)| m.parent_id.is_some());
        let (mut messages, current_message_id) = if tree {
            in_creation_order(place, &summary.id, messages, current_message_id)?
        } else {
            let mut messages: Vec<ChatMessage> = messages.into_iter().map(|(_, m)| m).collect();
            // Stable: messages of the same instant keep the file's order.
            messages.sort_by_key(|m| m.created_at);
            (messages, None)
        };
        // The caller owns what they import, whoever the file names.
        let user = self.owner.user_id().cloned();
        for message in &mut messages {
            message.user_id = user.clone();
        }
        Ok(Unit {
            place,
            fields: SessionFields {
                session_name: summary.session_name,
                context: summary.context,
                is_active: summary.is_active,
                archived_at: summary.archived_at,
                created_at: summary.created_at,
                updated_at: summary.updated_at,
                current_message_id,
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

/// The messages of session `id` (line `place`) as a tree: each parent one
/// of them (a fault names the line of the message naming it), in the
/// file's order unless a child comes before its parent (then the first
/// message, by that order, whose parent has come is next), with the end of
/// the current branch (`current`, which must be one of them; when the file
/// does not say, the last message). Ids the session holds twice are left
/// as they are, for the check that names them.
fn in_creation_order(
    place: Place,
    id: &SessionId,
    messages: Vec<(u64, ChatMessage)>,
    current: Option<MessageId>,
) -> Result<(Vec<ChatMessage>, Option<MessageId>), ImportError> {
    let mut index: HashMap<&MessageId, usize> = HashMap::with_capacity(messages.len());
    for (i, (_, m)) in messages.iter().enumerate() {
        if index.insert(&m.id, i).is_some() {
            let messages = messages.into_iter().map(|(_, m)| m).collect();
            return Ok((messages, current));
        }
    }
    if let Some(current) = &current
        && !index.contains_key(current)
    {
        return Err(ImportError::invalid(
            place,
            format_args!(
                "current_message_id {current} is not one of the messages of session {id} \
                 in the file"
            ),
        ));
    }
    let mut children: Vec<Vec<usize>> = vec![Vec::new(); messages.len()];
    let mut ready = BinaryHeap::new();
    for (i, (line, m)) in messages.iter().enumerate() {
        match &m.parent_id {
            None => ready.push(Reverse(i)),
            Some(parent) => match index.get(parent) {
                Some(&p) => children[p].push(i),
                None => {
                    return Err(ImportError::invalid(
                        Place::Line(*line),
                        format_args!(
                            "message {} follows message {parent} (its parent_id), which is not \
                             one of the messages of session {id} in the file",
                            m.id
                        ),
                    ));
                }
            },
        }
    }
    let mut order = Vec::with_capacity(messages.len());
    while let Some(Reverse(i)) = ready.pop() {
        order.push(i);
        ready.extend(children[i].iter().map(|&c| Reverse(c)));
    }
    if order.len() < messages.len() {
        // What no first message leads to: parents that go round in a circle.
        let mut placed = vec![false; messages.len()];
        for &i in &order {
            placed[i] = true;
        }
        let first = placed.iter().position(|p| !p).unwrap_or(0);
        let (line, m) = &messages[first];
        return Err(ImportError::invalid(
            Place::Line(*line),
            format_args!("the parents of message {} go round in a circle", m.id),
        ));
    }
    let mut slots: Vec<Option<ChatMessage>> = messages.into_iter().map(|(_, m)| Some(m)).collect();
    let ordered: Vec<ChatMessage> = order.into_iter().filter_map(|i| slots[i].take()).collect();
    let current = current.or_else(|| ordered.last().map(|m| m.id.clone()));
    Ok((ordered, current))
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

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;
    use crate::domain::UserId;

    fn session(current: Option<&str>, count: usize) -> Value {
        let mut line = json!({
            "type": "session", "id": "s1", "user_id": "u1", "session_name": null,
            "is_active": true, "archived_at": null, "context": {}, "message_count": count,
            "last_message_at": null, "created_at": "2024-01-01T00:00:00.000000Z",
            "updated_at": "2024-01-01T00:00:00.000000Z",
        });
        if let Some(current) = current {
            line["current_message_id"] = json!(current);
        }
        line
    }

    fn message(id: &str, parent: Option<&str>, second: u32) -> Value {
        let mut line = json!({
            "type": "message", "session_id": "s1", "id": id, "content": format!("text {id}"),
            "message_type": "user", "user_id": "u1", "metadata": {},
            "created_at": format!("2024-01-01T00:00:{second:02}.000000Z"),
        });
        if let Some(parent) = parent {
            line["parent_id"] = json!(parent);
        }
        line
    }

    /// The units of `lines` as an NDJSON file, for user `u2`.
    fn units(lines: &[Value]) -> Result<Vec<Unit>, ImportError> {
        let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
        let meter = Meter::default();
        let owner = Owner::User(UserId::parse("u2").unwrap());
        Units::new(text.as_bytes(), &meter, &owner).collect()
    }

    fn order(unit: &Unit) -> Vec<(&str, Option<&str>)> {
        unit.import
            .messages
            .iter()
            .map(|m| (m.id.as_str(), m.parent_id.as_ref().map(MessageId::as_str)))
            .collect()
    }

    fn fault(lines: &[Value]) -> String {
        match units(lines) {
            Err(ImportError::Invalid(detail)) => detail,
            other => panic!("refused as invalid, not {other:?}"),
        }
    }

    #[test]
    fn a_tree_keeps_its_parents_and_branch_and_comes_parents_first() {
        // b2 (an edit of b) comes before its parent in the file, a second
        // root r after everything; times say nothing of the order.
        let lines = [
            session(Some("c2"), 6),
            message("a", None, 9),
            message("c2", Some("b2"), 1),
            message("b", Some("a"), 2),
            message("b2", Some("a"), 5),
            message("c", Some("b"), 3),
            message("r", None, 0),
        ];
        let read = units(&lines).unwrap();
        let unit = &read[0];
        assert_eq!(
            order(unit),
            [
                ("a", None),
                ("b", Some("a")),
                ("b2", Some("a")),
                ("c2", Some("b2")),
                ("c", Some("b")),
                ("r", None),
            ]
        );
        assert_eq!(
            unit.fields
                .current_message_id
                .as_ref()
                .map(MessageId::as_str),
            Some("c2")
        );
        assert!(
            unit.import
                .messages
                .iter()
                .all(|m| m.user_id == unit.import.user_id)
        );
        // Named parents without a current message: the branch ends at the
        // last message.
        let mut lines = lines.to_vec();
        lines[0] = session(None, 6);
        let read = units(&lines).unwrap();
        assert_eq!(
            read[0]
                .fields
                .current_message_id
                .as_ref()
                .map(MessageId::as_str),
            Some("r")
        );
    }

    #[test]
    fn a_file_from_before_trees_is_a_chain_in_time_order() {
        let lines = [
            session(None, 3),
            message("m1", None, 1),
            message("m3", None, 3),
            message("m2", None, 2),
        ];
        let units = units(&lines).unwrap();
        assert_eq!(order(&units[0]), [("m1", None), ("m2", None), ("m3", None)]);
        assert_eq!(units[0].fields.current_message_id, None);
    }

    #[test]
    fn parents_and_the_branch_must_be_the_sessions_own() {
        let detail = fault(&[
            session(Some("b"), 2),
            message("a", None, 1),
            message("b", Some("elsewhere"), 2),
        ]);
        assert!(detail.starts_with("line 3: "), "{detail}");
        assert!(
            detail.contains("elsewhere") && detail.contains("s1"),
            "{detail}"
        );
        let detail = fault(&[
            session(Some("b"), 3),
            message("a", None, 1),
            message("b", Some("c"), 2),
            message("c", Some("b"), 3),
        ]);
        assert!(detail.starts_with("line 3: "), "{detail}");
        assert!(detail.contains("circle"), "{detail}");
        let detail = fault(&[session(Some("zz"), 1), message("a", None, 1)]);
        assert!(detail.starts_with("line 1: "), "{detail}");
        assert!(detail.contains("current_message_id zz"), "{detail}");
        let detail = fault(&[session(Some("a"), 1), message("a", Some("a"), 1)]);
        assert!(
            detail.starts_with("line 2: ") && detail.contains("circle"),
            "{detail}"
        );
    }
}

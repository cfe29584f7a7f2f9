//! The export format, shared by export (writing) and import (reading): NDJSON,
//! one JSON object per line, each with a `type`:
//!
//! ```text
//! {"type":"session","id":"s1","user_id":"u","session_name":"Trip","is_active":true,"archived_at":null,"context":{},"message_count":3,…,"current_message_id":"m3"}
//! {"type":"message","session_id":"s1","id":"m1","content":"Hello","message_type":"user",…,"parent_id":null}
//! {"type":"message","session_id":"s1","id":"m2",…,"parent_id":"m1"}
//! {"type":"message","session_id":"s1","id":"m3",…,"parent_id":"m1"}
//! {"type":"session","id":"s2",…}
//! ```
//!
//! A session line carries the session's fields without `messages`, and
//! `current_message_id`, the last message of its current branch; its
//! messages follow it, every message of every branch, in the order they
//! were created (a parent before its children), each naming its session
//! and its `parent_id`. In the file, `message_count` (and
//! `total_message_count`) count the message lines that follow, so that a
//! file cut short is told apart, and so that an importer older than
//! conversation trees, which ignores both ids, reads every message as one
//! chain rather than refusing the file. A file written before trees has no
//! `current_message_id` and no parent ids: each message follows the one
//! before it. Nothing here knows about HTTP or a store.

use serde::{Deserialize, Serialize};

use crate::domain::{ChatMessage, MessageId, SessionId, SessionSummary};

/// The media type of the export stream.
pub const NDJSON: &str = "application/x-ndjson";

/// One line of the export stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ExportLine {
    /// `{"type":"session", …}`: a session without its messages.
    Session(SessionLine),
    /// `{"type":"message","session_id":…, …}`: one message of the session
    /// named.
    Message(MessageLine),
}

/// A session line: the session's fields and the end of its current branch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionLine {
    /// The session without messages; `message_count` and
    /// `total_message_count` count the message lines that follow it.
    #[serde(flatten)]
    pub summary: SessionSummary,
    /// The last message of the current branch; `None` for a session without
    /// messages, and in a file written before conversations were trees.
    #[serde(default)]
    pub current_message_id: Option<MessageId>,
}

/// A message line: the message's fields plus the session it belongs to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MessageLine {
    /// The session the message belongs to.
    pub session_id: SessionId,
    /// The message, as the API serves it.
    #[serde(flatten)]
    pub message: ChatMessage,
}

/// The same lines as [`ExportLine`], borrowed: writing an export copies
/// nothing.
#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum LineRef<'a> {
    Session {
        #[serde(flatten)]
        summary: &'a SessionSummary,
        current_message_id: Option<&'a MessageId>,
    },
    Message {
        session_id: &'a SessionId,
        #[serde(flatten)]
        message: &'a ChatMessage,
    },
}

/// Appends the line of `session` (and its newline) to `out`, its current
/// branch ending at `current_message_id`. The caller sets `message_count`
/// to the number of message lines that will follow.
pub fn write_session_line(
    out: &mut Vec<u8>,
    session: &SessionSummary,
    current_message_id: Option<&MessageId>,
) -> serde_json::Result<()> {
    serde_json::to_writer(
        &mut *out,
        &LineRef::Session {
            summary: session,
            current_message_id,
        },
    )?;
    out.push(b'\n');
    Ok(())
}

/// Appends the line of `message` of session `session_id` (and its newline)
/// to `out`.
pub fn write_message_line(
    out: &mut Vec<u8>,
    session_id: &SessionId,
    message: &ChatMessage,
) -> serde_json::Result<()> {
    serde_json::to_writer(
        &mut *out,
        &LineRef::Message {
            session_id,
            message,
        },
    )?;
    out.push(b'\n');
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{MessageId, MessageType, Timestamp, UserId};

    fn sample() -> (SessionSummary, ChatMessage) {
        let t = Timestamp::parse("2024-01-01T12:00:00Z").unwrap();
        let summary = SessionSummary {
            id: SessionId::parse("s1").unwrap(),
            user_id: Some(UserId::parse("u1").unwrap()),
            session_name: Some("Trip ✈".into()),
            is_active: false,
            archived_at: Some(t),
            context: serde_json::json!({"k": [1, 2]})
                .as_object()
                .unwrap()
                .clone(),
            message_count: 1,
            total_message_count: 1,
            last_message_at: Some(t),
            created_at: t,
            updated_at: t,
        };
        let message = ChatMessage {
            tool_calls: None,
            tool_call_id: None,
            name: None,
            parent_id: None,
            edited_at: None,
            siblings: None,
            id: MessageId::parse("m1").unwrap(),
            content: "Hallo, Welt\nzweite Zeile".into(),
            message_type: MessageType::Assistant,
            user_id: Some(UserId::parse("u1").unwrap()),
            metadata: serde_json::json!({"model": "x"})
                .as_object()
                .unwrap()
                .clone(),
            created_at: t,
        };
        (summary, message)
    }

    #[test]
    fn lines_are_typed_objects_that_read_back_as_written() {
        let (summary, mut message) = sample();
        message.parent_id = Some(MessageId::parse("m0").unwrap());
        let current = MessageId::parse("m1").unwrap();
        let mut out = Vec::new();
        write_session_line(&mut out, &summary, Some(&current)).unwrap();
        write_message_line(&mut out, &summary.id, &message).unwrap();
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        assert!(
            lines[0].starts_with(r#"{"type":"session","id":"s1","#),
            "{}",
            lines[0]
        );
        assert!(
            lines[0].ends_with(r#","current_message_id":"m1"}"#),
            "{}",
            lines[0]
        );
        assert!(lines[1].starts_with(r#"{"type":"message","session_id":"s1","id":"m1","#));
        let first: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
        assert!(first.get("messages").is_none());
        assert_eq!(first["archived_at"], "2024-01-01T12:00:00.000000Z");
        let second: serde_json::Value = serde_json::from_str(lines[1]).unwrap();
        assert_eq!(second["parent_id"], "m0");
        let session = SessionLine {
            summary: summary.clone(),
            current_message_id: Some(current),
        };
        assert_eq!(
            serde_json::from_str::<ExportLine>(lines[0]).unwrap(),
            ExportLine::Session(session.clone())
        );
        assert_eq!(
            serde_json::from_str::<ExportLine>(lines[1]).unwrap(),
            ExportLine::Message(MessageLine {
                session_id: summary.id.clone(),
                message: message.clone(),
            })
        );
        // The owned form writes the same bytes as the borrowed one.
        let owned = serde_json::to_string(&ExportLine::Session(session)).unwrap();
        assert_eq!(owned, lines[0]);
    }

    #[test]
    fn a_file_from_before_trees_reads_without_current_or_parents() {
        let (summary, message) = sample();
        let old_session = r#"{"type":"session","id":"s1","user_id":"u1","session_name":"Trip ✈","is_active":false,"archived_at":"2024-01-01T12:00:00.000000Z","context":{"k":[1,2]},"message_count":1,"last_message_at":"2024-01-01T12:00:00.000000Z","created_at":"2024-01-01T12:00:00.000000Z","updated_at":"2024-01-01T12:00:00.000000Z"}"#;
        let old_message = r#"{"type":"message","session_id":"s1","id":"m1","content":"Hallo, Welt\nzweite Zeile","message_type":"assistant","user_id":"u1","metadata":{"model":"x"},"created_at":"2024-01-01T12:00:00.000000Z"}"#;
        let ExportLine::Session(line) = serde_json::from_str(old_session).unwrap() else {
            panic!("a session line");
        };
        assert_eq!(line.current_message_id, None);
        assert_eq!(
            line.summary,
            SessionSummary {
                total_message_count: 0,
                ..summary
            }
        );
        let ExportLine::Message(line) = serde_json::from_str(old_message).unwrap() else {
            panic!("a message line");
        };
        assert_eq!(line.message, message);
    }

    /// What a reader of the format as it was before trees (a session line
    /// as the summary alone) makes of a line written now: the same session,
    /// the new member passed over.
    #[test]
    fn an_older_reader_takes_a_session_line_written_now() {
        #[derive(Deserialize)]
        #[serde(tag = "type", rename_all = "snake_case")]
        enum OldLine {
            Session(SessionSummary),
        }
        let (summary, _) = sample();
        let mut out = Vec::new();
        let current = MessageId::parse("m1").unwrap();
        write_session_line(&mut out, &summary, Some(&current)).unwrap();
        let OldLine::Session(read) = serde_json::from_slice(&out).unwrap();
        assert_eq!(read, summary);
    }

    #[test]
    fn a_line_of_unknown_type_is_refused() {
        let err = serde_json::from_str::<ExportLine>(r#"{"type":"other","id":"x"}"#).unwrap_err();
        assert!(err.to_string().contains("unknown variant"), "{err}");
    }
}

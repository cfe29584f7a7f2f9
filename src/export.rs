//! The export format, shared by export (writing) and import (reading): NDJSON,
//! one JSON object per line, each with a `type`:
//!
//! ```text
//! {"type":"session","id":"s1","user_id":"u","session_name":"Trip","is_active":true,"archived_at":null,"context":{},"message_count":2,…}
//! {"type":"message","session_id":"s1","id":"m1","content":"Hello","message_type":"user","user_id":"u","metadata":{},"created_at":"…"}
//! {"type":"message","session_id":"s1","id":"m2",…}
//! {"type":"session","id":"s2",…}
//! ```
//!
//! A session line carries the session's fields without `messages`; its
//! messages follow it, oldest first, each naming its session. Nothing here
//! knows about HTTP or a store.

use serde::{Deserialize, Serialize};

use crate::domain::{ChatMessage, SessionId, SessionSummary};

/// The media type of the export stream.
pub const NDJSON: &str = "application/x-ndjson";

/// One line of the export stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ExportLine {
    /// `{"type":"session", …}`: a session without its messages.
    Session(SessionSummary),
    /// `{"type":"message","session_id":…, …}`: one message of the session
    /// named.
    Message(MessageLine),
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
    Session(&'a SessionSummary),
    Message {
        session_id: &'a SessionId,
        #[serde(flatten)]
        message: &'a ChatMessage,
    },
}

/// Appends the line of `session` (and its newline) to `out`.
pub fn write_session_line(out: &mut Vec<u8>, session: &SessionSummary) -> serde_json::Result<()> {
    serde_json::to_writer(&mut *out, &LineRef::Session(session))?;
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
        let (summary, message) = sample();
        let mut out = Vec::new();
        write_session_line(&mut out, &summary).unwrap();
        write_message_line(&mut out, &summary.id, &message).unwrap();
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        assert!(
            lines[0].starts_with(r#"{"type":"session","id":"s1","#),
            "{}",
            lines[0]
        );
        assert!(lines[1].starts_with(r#"{"type":"message","session_id":"s1","id":"m1","#));
        let first: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
        assert!(first.get("messages").is_none());
        assert_eq!(first["archived_at"], "2024-01-01T12:00:00.000000Z");
        assert_eq!(
            serde_json::from_str::<ExportLine>(lines[0]).unwrap(),
            ExportLine::Session(summary.clone())
        );
        assert_eq!(
            serde_json::from_str::<ExportLine>(lines[1]).unwrap(),
            ExportLine::Message(MessageLine {
                session_id: summary.id.clone(),
                message: message.clone(),
            })
        );
        // The owned form writes the same bytes as the borrowed one.
        let owned = serde_json::to_string(&ExportLine::Session(summary)).unwrap();
        assert_eq!(owned, lines[0]);
    }

    #[test]
    fn a_line_of_unknown_type_is_refused() {
        let err = serde_json::from_str::<ExportLine>(r#"{"type":"other","id":"x"}"#).unwrap_err();
        assert!(err.to_string().contains("unknown variant"), "{err}");
    }
}

//! The chat domain: sessions, messages and the validated identifiers they
//! carry. Nothing here knows about HTTP, SQLite or Cosmos; the JSON shapes are
//! exactly the public contract of the seed document.

use std::fmt;

use chrono::{DateTime, SubsecRound, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

mod message;
mod timestamp_text;
mod tool;
mod tree;

pub use message::{ChatMessage, MessageType, NewMessage, check_message};
pub use tool::{FunctionCall, ToolCall, ToolCallType, ToolParts};
pub use tree::{DeleteScope, MessageEdit, Node, Parent, Tree};

/// Longest accepted id (session or message), in characters.
pub const MAX_ID_LEN: usize = 128;
/// Longest accepted user id, in characters.
pub const MAX_USER_ID_LEN: usize = 256;
/// Longest accepted session name, in characters.
pub const MAX_SESSION_NAME_LEN: usize = 256;

/// A rule a value broke; the message is meant for the API caller.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct ValidationError {
    /// The field (JSON member or query parameter) that was wrong.
    pub field: &'static str,
    /// What is wrong with it, in words a frontend developer can act on.
    pub message: String,
}

impl ValidationError {
    /// A validation error for `field`.
    pub fn new(field: &'static str, message: impl Into<String>) -> Self {
        Self {
            field,
            message: message.into(),
        }
    }
}

fn check_id(field: &'static str, value: &str) -> Result<(), ValidationError> {
    let len = value.chars().count();
    if len == 0 || len > MAX_ID_LEN {
        return Err(ValidationError::new(
            field,
            format!("must be 1 to {MAX_ID_LEN} characters long"),
        ));
    }
    // Cosmos ids may not contain '/', '\\', '?' or '#'; this charset keeps ids
    // safe in URLs, document ids and log lines alike.
    if !value
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':' | b'-'))
    {
        return Err(ValidationError::new(
            field,
            "may contain only letters, digits and _ . : -",
        ));
    }
    Ok(())
}

macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident, $field:literal, $check:path) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            /// Validates `value` and wraps it.
            pub fn parse(value: impl Into<String>) -> Result<Self, ValidationError> {
                let value = value.into();
                $check($field, &value)?;
                Ok(Self(value))
            }

            /// The id as a string slice.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let raw = String::deserialize(d)?;
                Self::parse(raw).map_err(serde::de::Error::custom)
            }
        }
    };
}

string_id!(
    /// A chat session id: 1–128 characters of `[A-Za-z0-9_.:-]`.
    SessionId,
    "session_id",
    check_id
);
string_id!(
    /// A chat message id: 1–128 characters of `[A-Za-z0-9_.:-]`.
    MessageId,
    "id",
    check_id
);
string_id!(
    /// A user id: 1–256 characters, no control characters. Easy Auth principal
    /// ids are GUIDs, but older data may hold any string, so the charset is
    /// deliberately wider than that of session ids.
    UserId,
    "user_id",
    check_user_id
);

fn check_user_id(field: &'static str, value: &str) -> Result<(), ValidationError> {
    let len = value.chars().count();
    if len == 0 || len > MAX_USER_ID_LEN {
        return Err(ValidationError::new(
            field,
            format!("must be 1 to {MAX_USER_ID_LEN} characters long"),
        ));
    }
    if value.chars().any(char::is_control) {
        return Err(ValidationError::new(
            field,
            "must not contain control characters",
        ));
    }
    Ok(())
}

impl SessionId {
    /// A new id in the seed's shape `session_<random>_<YYYYMMDD_HHMMSS>`.
    pub fn generate(now: Timestamp) -> Self {
        let random = uuid::Uuid::new_v4().simple().to_string();
        Self(format!(
            "session_{}_{}",
            &random[..12],
            now.0.format("%Y%m%d_%H%M%S")
        ))
    }
}

impl MessageId {
    /// A new time-ordered id `msg_<uuid v7>`.
    pub fn generate() -> Self {
        Self(format!("msg_{}", uuid::Uuid::now_v7()))
    }
}

/// An instant in UTC with microsecond precision, written as RFC 3339 with a
/// fixed six-digit fraction and `Z` (`2024-01-01T12:00:00.000000Z`). The fixed
/// width makes string order equal time order, which Cosmos queries rely on;
/// microseconds keep the precision of the legacy Python data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(DateTime<Utc>);

impl Timestamp {
    /// The current time, truncated to microseconds.
    pub fn now() -> Self {
        Self::from_datetime(Utc::now())
    }

    /// Wraps `value`, truncated to microseconds.
    pub fn from_datetime(value: DateTime<Utc>) -> Self {
        Self(value.trunc_subsecs(6))
    }

    /// Parses RFC 3339; a value without offset (as older Python writers
    /// produced) is taken as UTC.
    pub fn parse(value: &str) -> Result<Self, ValidationError> {
        if let Some(t) = timestamp_text::parse(value) {
            return Ok(Self(t));
        }
        if let Ok(t) = DateTime::parse_from_rfc3339(value) {
            return Ok(Self::from_datetime(t.with_timezone(&Utc)));
        }
        chrono::NaiveDateTime::parse_from_str(value, "%Y-%m-%dT%H:%M:%S%.f")
            .map(|t| Self::from_datetime(t.and_utc()))
            .map_err(|_| ValidationError::new("created_at", "must be an RFC 3339 timestamp"))
    }

    /// The underlying chrono value.
    pub fn as_datetime(&self) -> DateTime<Utc> {
        self.0
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match timestamp_text::format(&self.0) {
            Some(text) => f.write_str(std::str::from_utf8(&text).map_err(|_| fmt::Error)?),
            None => write!(f, "{}", self.0.format("%Y-%m-%dT%H:%M:%S%.6fZ")),
        }
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match timestamp_text::format(&self.0) {
            Some(text) => {
                s.serialize_str(std::str::from_utf8(&text).map_err(serde::ser::Error::custom)?)
            }
            None => s.collect_str(self),
        }
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        Self::parse(&raw).map_err(serde::de::Error::custom)
    }
}

/// A JSON object (`context`, `metadata`): always an object, never null.
pub type JsonObject = Map<String, Value>;

/// A chat session with its whole message history, oldest message first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ChatSession {
    /// The session id.
    pub id: SessionId,
    /// The owner; null only for sessions created without a user in local mode.
    #[schema(required = true)]
    pub user_id: Option<UserId>,
    /// A display name.
    #[schema(max_length = 256, required = true)]
    pub session_name: Option<String>,
    /// False once the user archived the session.
    pub is_active: bool,
    /// When the session was archived (`is_active` went false); null while
    /// active, and for sessions archived before this field existed.
    #[serde(default)]
    #[schema(required = true)]
    pub archived_at: Option<Timestamp>,
    /// Free-form data the frontend keeps with the session.
    #[schema(value_type = Object)]
    pub context: JsonObject,
    /// The messages of the current branch, in chronological order (every
    /// message, for a conversation that never branched).
    pub messages: Vec<ChatMessage>,
    /// Number of messages of the current branch.
    pub message_count: u64,
    /// Number of messages of every branch, alternatives included (equal to
    /// `message_count` for a conversation that never branched).
    #[serde(default)]
    #[schema(required = true)]
    pub total_message_count: u64,
    /// Time of the newest message.
    #[schema(required = true)]
    pub last_message_at: Option<Timestamp>,
    /// When the session was created.
    pub created_at: Timestamp,
    /// Last change to the session or its messages.
    pub updated_at: Timestamp,
}

/// A session without its messages, as listed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SessionSummary {
    /// The session id.
    pub id: SessionId,
    /// The owner; null only for sessions created without a user in local mode.
    #[schema(required = true)]
    pub user_id: Option<UserId>,
    /// A display name.
    #[schema(max_length = 256, required = true)]
    pub session_name: Option<String>,
    /// False once archived.
    pub is_active: bool,
    /// When the session was archived; null while active (and for sessions
    /// archived before this field existed).
    #[serde(default)]
    #[schema(required = true)]
    pub archived_at: Option<Timestamp>,
    /// Free-form data the frontend keeps with the session.
    #[schema(value_type = Object)]
    pub context: JsonObject,
    /// Number of messages of the current branch.
    pub message_count: u64,
    /// Number of messages of every branch, alternatives included.
    #[serde(default)]
    #[schema(required = true)]
    pub total_message_count: u64,
    /// Time of the newest message.
    #[schema(required = true)]
    pub last_message_at: Option<Timestamp>,
    /// When the session was created.
    pub created_at: Timestamp,
    /// Last change to the session or its messages.
    pub updated_at: Timestamp,
}

impl SessionSummary {
    /// Whether some of its messages are off the current branch (so that
    /// messages of the branch may have siblings).
    pub fn has_alternatives(&self) -> bool {
        self.total_message_count > self.message_count
    }
}

impl ChatSession {
    /// A session from its own fields and its messages.
    pub fn from_parts(summary: SessionSummary, messages: Vec<ChatMessage>) -> Self {
        Self {
            id: summary.id,
            user_id: summary.user_id,
            session_name: summary.session_name,
            is_active: summary.is_active,
            archived_at: summary.archived_at,
            context: summary.context,
            messages,
            message_count: summary.message_count,
            total_message_count: summary.total_message_count,
            last_message_at: summary.last_message_at,
            created_at: summary.created_at,
            updated_at: summary.updated_at,
        }
    }

    /// The session without its messages.
    pub fn summary(&self) -> SessionSummary {
        SessionSummary {
            id: self.id.clone(),
            user_id: self.user_id.clone(),
            session_name: self.session_name.clone(),
            is_active: self.is_active,
            archived_at: self.archived_at,
            context: self.context.clone(),
            message_count: self.message_count,
            total_message_count: self.total_message_count,
            last_message_at: self.last_message_at,
            created_at: self.created_at,
            updated_at: self.updated_at,
        }
    }
}

/// A validated session name: at most 256 characters, no control characters
/// except tab.
pub fn check_session_name(name: &str) -> Result<(), ValidationError> {
    if name.chars().count() > MAX_SESSION_NAME_LEN {
        return Err(ValidationError::new(
            "session_name",
            format!("must be at most {MAX_SESSION_NAME_LEN} characters long"),
        ));
    }
    if name.chars().any(|c| c.is_control() && c != '\t') {
        return Err(ValidationError::new(
            "session_name",
            "must not contain control characters",
        ));
    }
    Ok(())
}

/// A session to create.
#[derive(Debug, Clone, PartialEq)]
pub struct NewSession {
    /// The id (client-supplied or generated).
    pub id: SessionId,
    /// The owner.
    pub user_id: Option<UserId>,
    /// A display name.
    pub session_name: Option<String>,
    /// Free-form data.
    pub context: JsonObject,
}

impl NewSession {
    /// Validates a session to create; generates an id when none is given.
    pub fn new(
        id: Option<SessionId>,
        user_id: Option<UserId>,
        session_name: Option<String>,
        context: JsonObject,
        now: Timestamp,
    ) -> Result<Self, ValidationError> {
        if let Some(name) = &session_name {
            check_session_name(name)?;
        }
        Ok(Self {
            id: id.unwrap_or_else(|| SessionId::generate(now)),
            user_id,
            session_name,
            context,
        })
    }
}

impl NewSession {
    /// The session as created at `now`: active, empty.
    pub fn into_session(self, now: Timestamp) -> ChatSession {
        ChatSession {
            id: self.id,
            user_id: self.user_id,
            session_name: self.session_name,
            is_active: true,
            archived_at: None,
            context: self.context,
            messages: Vec::new(),
            message_count: 0,
            total_message_count: 0,
            last_message_at: None,
            created_at: now,
            updated_at: now,
        }
    }
}

/// Changes to a session's own fields; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SessionPatch {
    /// `Some(None)` clears the name.
    pub session_name: Option<Option<String>>,
    /// Archive or reactivate.
    pub is_active: Option<bool>,
    /// Replaces the whole context object.
    pub context: Option<JsonObject>,
}

impl SessionPatch {
    /// Validates the patch.
    pub fn validate(&self) -> Result<(), ValidationError> {
        if let Some(Some(name)) = &self.session_name {
            check_session_name(name)?;
        }
        Ok(())
    }

    /// Applies the patch to `session`, bumping `updated_at` to `now`.
    pub fn apply_to(&self, session: &mut ChatSession, now: Timestamp) {
        if let Some(name) = &self.session_name {
            session.session_name = name.clone();
        }
        if let Some(active) = self.is_active {
            session.archived_at = archived_at(session.is_active, session.archived_at, active, now);
            session.is_active = active;
        }
        if let Some(context) = &self.context {
            session.context = context.clone();
        }
        session.updated_at = now.max(session.updated_at);
    }
}

/// `archived_at` after `is_active` goes from `was_active` to `active`: set
/// to `now` when the session is archived, cleared when it is restored, and
/// kept when an archived session is archived again (so retention counts from
/// the first archiving, not from the last PUT that repeated it).
pub fn archived_at(
    was_active: bool,
    archived_at: Option<Timestamp>,
    active: bool,
    now: Timestamp,
) -> Option<Timestamp> {
    match (was_active, active) {
        (_, true) => None,
        (true, false) => Some(now),
        (false, false) => archived_at,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_accept_the_documented_charset_only() {
        assert!(SessionId::parse("session_12345_20240101_120000").is_ok());
        assert!(SessionId::parse("a.b:c-d_e").is_ok());
        assert!(SessionId::parse("").is_err());
        assert!(SessionId::parse("a/b").is_err());
        assert!(SessionId::parse("a b").is_err());
        assert!(SessionId::parse("x".repeat(128)).is_ok());
        assert!(SessionId::parse("x".repeat(129)).is_err());
        assert!(MessageId::parse("msg_1").is_ok());
        assert!(MessageId::parse("msg#1").is_err());
    }

    #[test]
    fn generated_ids_have_the_seed_shape() {
        let now = Timestamp::parse("2024-01-01T12:00:00Z").unwrap();
        let id = SessionId::generate(now);
        let parts: Vec<&str> = id.as_str().split('_').collect();
        assert_eq!(parts[0], "session");
        assert_eq!(parts[1].len(), 12);
        assert_eq!(&parts[2..], ["20240101", "120000"]);
        assert!(SessionId::parse(id.as_str()).is_ok());
        let m = MessageId::generate();
        assert!(m.as_str().starts_with("msg_"));
        assert!(MessageId::parse(m.as_str()).is_ok());
    }

    #[test]
    fn timestamps_are_fixed_width_utc_with_z() {
        let t = Timestamp::parse("2024-01-01T13:00:00+01:00").unwrap();
        assert_eq!(t.to_string(), "2024-01-01T12:00:00.000000Z");
        let naive = Timestamp::parse("2024-01-01T12:00:00.123456789").unwrap();
        assert_eq!(naive.to_string(), "2024-01-01T12:00:00.123456Z");
        assert!(Timestamp::parse("yesterday").is_err());
    }

    #[test]
    fn blank_content_is_rejected() {
        let err = NewMessage::new(
            None,
            "  \n".into(),
            MessageType::User,
            None,
            JsonObject::new(),
        )
        .unwrap_err();
        assert_eq!(err.field, "content");
    }

    #[test]
    fn session_json_has_exactly_the_seed_fields() {
        let now = Timestamp::parse("2024-01-01T12:00:00Z").unwrap();
        let session = ChatSession {
            id: SessionId::parse("session_12345_20240101_120000").unwrap(),
            user_id: Some(UserId::parse("user_123").unwrap()),
            session_name: None,
            is_active: true,
            archived_at: None,
            context: JsonObject::new(),
            messages: vec![],
            message_count: 0,
            total_message_count: 0,
            last_message_at: None,
            created_at: now,
            updated_at: now,
        };
        let json = serde_json::to_value(&session).unwrap();
        let mut keys: Vec<_> = json.as_object().unwrap().keys().cloned().collect();
        keys.sort();
        assert_eq!(
            keys,
            [
                "archived_at",
                "context",
                "created_at",
                "id",
                "is_active",
                "last_message_at",
                "message_count",
                "messages",
                "session_name",
                // Beside the seed's fields: the count of every branch's
                // messages (additive; clients that ignore it see the seed).
                "total_message_count",
                "updated_at",
                "user_id"
            ]
        );
        assert_eq!(json["last_message_at"], Value::Null);
        assert_eq!(json["archived_at"], Value::Null);
    }

    #[test]
    fn documents_without_archived_at_read_as_null() {
        let old = serde_json::json!({
            "id": "s1", "user_id": "u", "session_name": null, "is_active": false,
            "context": {}, "message_count": 0, "last_message_at": null,
            "created_at": "2024-01-01T12:00:00Z", "updated_at": "2024-01-01T12:00:00Z"
        });
        let summary: SessionSummary = serde_json::from_value(old).unwrap();
        assert_eq!(summary.archived_at, None);
    }

    #[test]
    fn archiving_sets_archived_at_once_and_restoring_clears_it() {
        let t = |s: &str| Timestamp::parse(s).unwrap();
        let now = Timestamp::parse("2024-01-01T12:00:00Z").unwrap();
        let mut session = NewSession::new(None, None, None, JsonObject::new(), now)
            .unwrap()
            .into_session(now);
        let archive = SessionPatch {
            is_active: Some(false),
            ..SessionPatch::default()
        };
        archive.apply_to(&mut session, t("2024-01-02T00:00:00Z"));
        assert_eq!(session.archived_at, Some(t("2024-01-02T00:00:00Z")));
        // Archiving again keeps the first time; other changes keep it too.
        archive.apply_to(&mut session, t("2024-01-03T00:00:00Z"));
        let rename = SessionPatch {
            session_name: Some(Some("x".into())),
            ..SessionPatch::default()
        };
        rename.apply_to(&mut session, t("2024-01-04T00:00:00Z"));
        assert_eq!(session.archived_at, Some(t("2024-01-02T00:00:00Z")));
        let restore = SessionPatch {
            is_active: Some(true),
            ..SessionPatch::default()
        };
        restore.apply_to(&mut session, t("2024-01-05T00:00:00Z"));
        assert!(session.is_active);
        assert_eq!(session.archived_at, None);
    }
}

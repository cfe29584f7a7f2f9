//! Import: whole sessions brought in from a file (this service's export, a
//! ChatGPT `conversations.json`) with their ids, fields and timestamps. The
//! writing shares the migration's merge ([`SessionImport`]); what is new is
//! that a session created by an import keeps the file's own fields, and that
//! the importer can check every session id before it writes anything.

use async_trait::async_trait;

use super::{ImportOutcome, Owner, SessionImport, StoreResult};
use crate::domain::{JsonObject, SessionId, Timestamp};

/// A session's own fields as a file gives them, for a session the import
/// creates. A session that exists keeps its own.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionFields {
    /// The display name.
    pub session_name: Option<String>,
    /// Free-form data.
    pub context: JsonObject,
    /// False for an archived session.
    pub is_active: bool,
    /// When it was archived.
    pub archived_at: Option<Timestamp>,
    /// When it was created.
    pub created_at: Timestamp,
    /// Its last change; the store raises it to the newest message's time if
    /// that is later.
    pub updated_at: Timestamp,
}

impl SessionFields {
    /// What a session the file says nothing about gets: active, unnamed,
    /// created and last changed at its first message (`first`).
    pub fn starting_at(first: Timestamp) -> Self {
        Self {
            session_name: None,
            context: JsonObject::default(),
            is_active: true,
            archived_at: None,
            created_at: first,
            updated_at: first,
        }
    }
}

/// Bringing whole sessions in from a file.
#[async_trait]
pub trait ImportStore: Send + Sync {
    /// Those of `ids` that exist with an owner other than `owner` (an
    /// import must not touch them), so that a request can be refused
    /// before its first write.
    async fn sessions_of_others(
        &self,
        owner: &Owner,
        ids: &[SessionId],
    ) -> StoreResult<Vec<SessionId>>;

    /// Brings one session in: when it does not exist, creates it (owned by
    /// `import.user_id`) with `fields` and the messages in the order given,
    /// which must be by `created_at` (sealed into pages on Cosmos as
    /// needed) — also when there are no messages; when it exists, adds only
    /// the messages whose ids it lacks, as
    /// [`MigrationStore::import_messages`](super::MigrationStore::import_messages)
    /// does, and leaves its fields as they are. A session with this id
    /// owned by someone else is a
    /// [`StoreError::Conflict`](super::StoreError::Conflict). Running it
    /// again adds nothing.
    async fn import_session(
        &self,
        fields: SessionFields,
        import: SessionImport,
    ) -> StoreResult<ImportOutcome>;
}

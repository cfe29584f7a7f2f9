//! Import: whole sessions brought in from a file (this service's export, a
//! ChatGPT `conversations.json`) with their ids, fields and timestamps. The
//! writing shares the migration's merge ([`SessionImport`]); what is new is
//! that a session created by an import keeps the file's own fields, and that
//! the importer can check every session id before it writes anything, and
//! that a file may bring a conversation's whole tree
//! ([`SessionFields::current_message_id`]).

use std::collections::HashSet;

use async_trait::async_trait;

use super::{ImportOutcome, Owner, SessionImport, StoreResult};
use crate::domain::{
    ChatMessage, JsonObject, MessageId, SessionId, Timestamp, UserId, ValidationError,
};

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
    /// The last message of the current branch, for a file that knows
    /// conversation trees: its messages then come in creation order (a
    /// parent before its children), each with its `parent_id` (`None`: a
    /// first message), and the path to this one is the current branch.
    /// `None` for a file from before trees (and the migration): each message
    /// follows the one before it, in time order. Unlike the fields above,
    /// it also counts for a session that exists: see
    /// [`ImportStore::import_session`].
    pub current_message_id: Option<MessageId>,
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
            current_message_id: None,
        }
    }
}

/// Refuses a file's tree whose `current` (the end of its current branch)
/// is not one of its `messages`, or one of whose messages follows a message
/// neither earlier in the file nor `stored` in the session: each parent
/// must come before its child (creation order, on which reading every
/// branch relies). Both stores check a tree import with this before they
/// write anything.
pub fn check_tree(
    messages: &[ChatMessage],
    current: &MessageId,
    stored: impl Fn(&MessageId) -> bool,
) -> StoreResult<()> {
    if !messages.iter().any(|m| m.id == *current) {
        return Err(ValidationError::new(
            "current_message_id",
            format!("{current} is not one of the imported messages"),
        )
        .into());
    }
    let mut seen: HashSet<&MessageId> = HashSet::with_capacity(messages.len());
    for message in messages {
        if let Some(parent) = &message.parent_id
            && !seen.contains(parent)
            && !stored(parent)
        {
            return Err(ValidationError::new(
                "parent_id",
                format!(
                    "message {} follows {parent}, which neither the session nor the messages \
                     before it hold",
                    message.id
                ),
            )
            .into());
        }
        seen.insert(&message.id);
    }
    Ok(())
}

/// Bringing whole sessions in from a file.
#[async_trait]
pub trait ImportStore: Send + Sync {
    /// Those of `ids` that exist, each once with its owner (`None`: a
    /// session without one), whoever that is: one look-up answers both
    /// which ids are taken and which are someone else's.
    async fn session_owners(
        &self,
        ids: &[SessionId],
    ) -> StoreResult<Vec<(SessionId, Option<UserId>)>>;

    /// Those of `ids` that exist with an owner other than `owner` (an
    /// import must not touch them), so that a request can be refused
    /// before its first write.
    async fn sessions_of_others(
        &self,
        owner: &Owner,
        ids: &[SessionId],
    ) -> StoreResult<Vec<SessionId>> {
        let owners = self.session_owners(ids).await?;
        Ok(owners
            .into_iter()
            .filter(|(_, user)| user.as_ref() != owner.user_id())
            .map(|(id, _)| id)
            .collect())
    }

    /// Brings one session in: when it does not exist, creates it (owned by
    /// `import.user_id`) with `fields` and the messages in the order given
    /// (sealed into pages on Cosmos as needed) — also when there are no
    /// messages; when it exists, adds only the messages whose ids it lacks
    /// and leaves its fields as they are. A session with this id owned by
    /// someone else is a
    /// [`StoreError::Conflict`](super::StoreError::Conflict). Running it
    /// again adds nothing.
    ///
    /// Without [`SessionFields::current_message_id`] the messages are by
    /// `created_at` and each follows the one before it: they are merged
    /// into the current branch as
    /// [`MigrationStore::import_messages`](super::MigrationStore::import_messages)
    /// does. With it, they are a tree in creation order, each parent among
    /// them or in the session (else
    /// [`StoreError::Invalid`](super::StoreError::Invalid), nothing
    /// written): every message is kept with its `parent_id`; a new
    /// session's current branch is the path to `current_message_id`, and
    /// an existing session's stays as it is, unless that path continues it
    /// (then the path becomes the current branch: an import never takes
    /// away what the session shows). `message_count` counts the current
    /// branch, `total_message_count` every message.
    async fn import_session(
        &self,
        fields: SessionFields,
        import: SessionImport,
    ) -> StoreResult<ImportOutcome>;
}

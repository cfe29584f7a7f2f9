//! Imports merged into sessions in the writer's transaction: whole sessions
//! from a file ([`ImportStore`], whole trees included), and the merge the
//! migration shares (`migration`).

use std::collections::{HashMap, HashSet};

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension as _, params};

use super::{
    SqliteStore,
    branch::set_branch,
    rows::{
        INSERT_MESSAGE, TreeRows, find_session, internal, load_tree, new_etag, to_json, tool_column,
    },
};
use crate::{
    domain::{ChatMessage, MessageId, Node, SessionId, SessionSummary, Timestamp, Tree, UserId},
    store::{
        ImportOutcome, ImportStore, Owner, SessionFields, SessionImport, StoreError, StoreResult,
        import::check_tree,
    },
};

#[async_trait]
impl ImportStore for SqliteStore {
    async fn session_owners(
        &self,
        ids: &[SessionId],
    ) -> StoreResult<Vec<(SessionId, Option<UserId>)>> {
        let ids = ids.to_vec();
        self.read(move |conn| {
            let mut stmt = conn
                .prepare_cached("SELECT user_id FROM sessions WHERE id = ?1")
                .map_err(internal)?;
            let (mut found, mut seen) = (Vec::new(), HashSet::new());
            for id in ids {
                if !seen.insert(id.clone()) {
                    continue;
                }
                let owner: Option<Option<String>> = stmt
                    .query_row([id.as_str()], |row| row.get(0))
                    .optional()
                    .map_err(internal)?;
                if let Some(owner) = owner {
                    let owner = owner
                        .map(UserId::parse)
                        .transpose()
                        .map_err(|e| StoreError::Internal(e.into()))?;
                    found.push((id, owner));
                }
            }
            Ok(found)
        })
        .await
    }

    async fn import_session(
        &self,
        fields: SessionFields,
        import: SessionImport,
    ) -> StoreResult<ImportOutcome> {
        self.write(move |tx| import_into(tx, import, Some(fields)))
            .await
    }
}

/// The import, inside the writer's transaction. `fields` are those of a
/// session the import creates (a file's); without them (the migration) a new
/// session is active, unnamed, and as old as its oldest message. A file's
/// tree (`fields` naming the current branch's end) goes to [`import_tree`],
/// anything else is merged into the current branch.
pub(super) fn import_into(
    tx: &Connection,
    import: SessionImport,
    fields: Option<SessionFields>,
) -> StoreResult<ImportOutcome> {
    if import.messages.is_empty() && fields.is_none() {
        return Ok(ImportOutcome::default());
    }
    // Everything is checked before the first row changes: a refused import
    // leaves the writer's shared transaction as it found it.
    let found = match find_session(tx, &Owner::Anonymous, &import.id) {
        Ok((session, _)) if session.user_id != import.user_id => {
            return Err(StoreError::Conflict(format!(
                "session {} exists with another owner",
                import.id
            )));
        }
        Ok((session, _)) => Some(session),
        Err(StoreError::NotFound) => None,
        Err(e) => return Err(e),
    };
    let current = fields.as_ref().and_then(|f| f.current_message_id.clone());
    let tree = match current {
        Some(current) => {
            let stored = found
                .as_ref()
                .map(|_| load_tree(tx, &import.id))
                .transpose()?;
            Some(ImportTree::check(&import.messages, current, stored)?)
        }
        None => None,
    };
    let (outcome, session) = match found {
        Some(session) => (ImportOutcome::default(), session),
        None => create(tx, &import, fields)?,
    };
    match tree {
        Some(tree) => import_tree(tx, &import, tree, outcome),
        None => import_chain(tx, &import, session, outcome),
    }
}

/// Creates the session `import` names, with `fields` (or, without them, as
/// the migration creates one).
fn create(
    tx: &Connection,
    import: &SessionImport,
    fields: Option<SessionFields>,
) -> StoreResult<(ImportOutcome, SessionSummary)> {
    let fields =
        fields.unwrap_or_else(|| SessionFields::starting_at(import.messages[0].created_at));
    tx.execute(
        "INSERT INTO sessions (id, user_id, session_name, is_active, context, \
         message_count, last_message_at, created_at, updated_at, etag, archived_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, 0, NULL, ?6, ?7, ?8, ?9)",
        params![
            import.id.as_str(),
            import.user_id.as_ref().map(UserId::as_str),
            fields.session_name,
            fields.is_active,
            to_json(&fields.context)?,
            fields.created_at.to_string(),
            fields.updated_at.to_string(),
            new_etag(),
            fields.archived_at.map(|t| t.to_string()),
        ],
    )
    .map_err(internal)?;
    let (session, _) = find_session(tx, &Owner::Anonymous, &import.id)?;
    let created = ImportOutcome {
        created: true,
        ..ImportOutcome::default()
    };
    Ok((created, session))
}

/// Inserts `message` of session `id` at position `pos` (`None`: off the
/// current branch) after `parent`; whether it was new.
fn insert_message(
    insert: &mut rusqlite::CachedStatement<'_>,
    id: &SessionId,
    message: &ChatMessage,
    pos: Option<i64>,
    parent: Option<&MessageId>,
) -> StoreResult<bool> {
    let inserted = insert
        .execute(params![
            id.as_str(),
            pos,
            message.id.as_str(),
            message.content,
            message.message_type.as_str(),
            message.user_id.as_ref().map(UserId::as_str),
            to_json(&message.metadata)?,
            message.created_at.to_string(),
            tool_column(&message.tool_parts())?,
            parent.map(MessageId::as_str),
            // An export keeps when a message was edited; so does its import.
            message.edited_at.map(|t| t.to_string()),
        ])
        .map_err(internal)?;
    Ok(inserted == 1)
}

/// Messages without parents merged into the current branch: each follows
/// the one before it.
fn import_chain(
    tx: &Connection,
    import: &SessionImport,
    session: SessionSummary,
    mut outcome: ImportOutcome,
) -> StoreResult<ImportOutcome> {
    let mut insert = tx.prepare_cached(INSERT_MESSAGE).map_err(internal)?;
    // New rows go after the existing ones first; for a session that existed
    // the renumbering below puts every message in (created_at, id) order.
    let mut seq = session.message_count as i64;
    let mut newest = session.last_message_at;
    for message in &import.messages {
        // No parent is written: a row of the branch without one follows
        // the row before it, wherever the renumbering puts it.
        if insert_message(&mut insert, &import.id, message, Some(seq + 1), None)? {
            seq += 1;
            outcome.added += 1;
            newest = newest.max(Some(message.created_at));
        } else {
            outcome.already_present += 1;
        }
    }
    if outcome.added == 0 {
        return Ok(outcome);
    }
    // A new session holds the messages in the order given (by time; ties
    // keep the file's order, as they were served before an export).
    // A session with other branches keeps the order the messages came in:
    // renumbering would mix the branches' creation order.
    if !outcome.created && session.total_message_count == session.message_count {
        renumber(tx, import)?;
    }
    let newest = newest.map(|t| t.to_string());
    tx.execute(
        "UPDATE sessions SET total_count = total_count + ?2 - message_count, \
         message_count = ?2, last_message_at = ?3, \
         updated_at = MAX(updated_at, ?3), etag = ?4 WHERE id = ?1",
        params![import.id.as_str(), seq, newest, new_etag()],
    )
    .map_err(internal)?;
    Ok(outcome)
}

/// The tree a file brings, checked against the session it goes to.
struct ImportTree {
    /// The file's messages as a tree.
    tree: Tree,
    /// The last message of the current branch.
    current: MessageId,
    /// The session's tree, when it exists.
    stored: Option<TreeRows>,
}

impl ImportTree {
    /// `messages` as a tree ending its current branch at `current`, checked
    /// ([`check_tree`]); `stored` is the session's tree, if it exists.
    fn check(
        messages: &[ChatMessage],
        current: MessageId,
        stored: Option<TreeRows>,
    ) -> StoreResult<Self> {
        check_tree(messages, &current, |m| {
            stored.as_ref().is_some_and(|s| s.contains(m))
        })?;
        let nodes = messages
            .iter()
            .enumerate()
            .map(|(i, m)| Node {
                id: m.id.clone(),
                parent: m.parent_id.clone(),
                order: i as u64,
            })
            .collect();
        Ok(Self {
            tree: Tree::new(nodes),
            current,
            stored,
        })
    }
}

/// A file's tree: every message it lacks kept with its parent. A new
/// session's current branch is the file's; an existing one's moves to the
/// file's only when that continues it.
fn import_tree(
    tx: &Connection,
    import: &SessionImport,
    file: ImportTree,
    mut outcome: ImportOutcome,
) -> StoreResult<ImportOutcome> {
    // A new session's branch positions are known before the first insert.
    let branch = file.tree.path_to(&file.current);
    let positions: HashMap<&MessageId, i64> = if file.stored.is_none() {
        branch
            .iter()
            .enumerate()
            .map(|(at, id)| (id, at as i64 + 1))
            .collect()
    } else {
        Default::default()
    };
    let mut insert = tx.prepare_cached(INSERT_MESSAGE).map_err(internal)?;
    let mut newest = None;
    for message in &import.messages {
        let pos = positions.get(&message.id).copied();
        let parent = message.parent_id.as_ref();
        if insert_message(&mut insert, &import.id, message, pos, parent)? {
            outcome.added += 1;
            newest = newest.max(Some(message.created_at));
        } else {
            outcome.already_present += 1;
        }
    }
    if outcome.added == 0 {
        return Ok(outcome);
    }
    let count = match file.stored {
        None => branch.len(),
        Some(_) => {
            let rows = load_tree(tx, &import.id)?;
            let path = rows.path_to(&file.current);
            if path.starts_with(&rows.branch) && path != rows.branch {
                set_branch(tx, &import.id, &rows, &path)?;
                path.len()
            } else {
                rows.branch.len()
            }
        }
    };
    tx.execute(
        "UPDATE sessions SET message_count = ?2, \
         total_count = (SELECT COUNT(*) FROM messages WHERE session_id = ?1), \
         last_message_at = (SELECT created_at FROM messages WHERE session_id = ?1 AND pos = ?2), \
         updated_at = MAX(updated_at, ?3), etag = ?4 WHERE id = ?1",
        params![
            import.id.as_str(),
            count as i64,
            newest.map(|t: Timestamp| t.to_string()),
            new_etag()
        ],
    )
    .map_err(internal)?;
    Ok(outcome)
}

/// Puts every message of the current branch in (`created_at`, `id`)
/// order, each following the one before it: the messages a migration
/// merges are linear, and a parent written out by a later append would
/// contradict the new order, so the chain is left implied (no parent
/// stored).
fn renumber(tx: &Connection, import: &SessionImport) -> StoreResult<()> {
    let mut order: Vec<(String, String)> = tx
        .prepare_cached(
            "SELECT id, created_at FROM messages WHERE session_id = ?1 AND pos IS NOT NULL",
        )
        .and_then(|mut stmt| {
            stmt.query_map([import.id.as_str()], |row| Ok((row.get(0)?, row.get(1)?)))
                .and_then(|rows| rows.collect())
        })
        .map_err(internal)?;
    order.sort_by(|a, b| (&a.1, &a.0).cmp(&(&b.1, &b.0)));
    // Two steps so that no intermediate state collides on (session_id, seq)
    // or (session_id, pos).
    tx.execute(
        "UPDATE messages SET seq = -seq, pos = -pos, parent_id = NULL \
         WHERE session_id = ?1 AND pos IS NOT NULL",
        [import.id.as_str()],
    )
    .map_err(internal)?;
    let mut renumber = tx
        .prepare_cached(
            "UPDATE messages SET seq = ?3, pos = ?3, parent_id = NULL \
             WHERE session_id = ?1 AND id = ?2",
        )
        .map_err(internal)?;
    for (position, (id, _)) in order.iter().enumerate() {
        renumber
            .execute(params![import.id.as_str(), id, position as i64 + 1])
            .map_err(internal)?;
    }
    Ok(())
}

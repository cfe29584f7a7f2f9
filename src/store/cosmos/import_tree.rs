//! Importing a file's conversation tree ([`SessionFields::current_message_id`]
//! set): every message kept with its parent. A new session gets the path to
//! the file's current message as its current branch (in the document and
//! sealed pages, as an import lays them out) and the rest as alternatives,
//! written before the session document (nobody reaches a session without
//! one). An existing session gets the messages it lacks as alternatives, or
//! its current branch continued when the file's branch continues it, in one
//! transactional batch like any tree change (refused when too large for
//! one).

use std::collections::{HashMap, HashSet};

use super::{
    CosmosStore,
    documents::{Fork, SYSTEM_PROPERTY_BYTES, SessionDoc, json_len, partition},
    errors::store_error,
    lineage::{Before, chained},
    metrics::{ItemIo, item_charge},
    relayout::{Plan, full_change_ordered, plan},
    shape::{Shape, creation_order, tree_of},
};
use crate::{
    domain::{ChatMessage, ChatSession, MessageId, Tree, UserId},
    store::{ETag, ImportOutcome, SessionFields, SessionImport, StoreResult, import::check_tree},
};

/// The children of each message of `messages` that has several, in the
/// order given (a file's creation order, which decides between siblings of
/// one `created_at`).
fn file_order(messages: &[&ChatMessage]) -> Vec<Fork> {
    let mut children: HashMap<Option<&MessageId>, Vec<MessageId>> = HashMap::new();
    let mut parents = Vec::new();
    for m in messages {
        let entry = children.entry(m.parent_id.as_ref()).or_default();
        if entry.is_empty() {
            parents.push(m.parent_id.as_ref());
        }
        entry.push(m.id.clone());
    }
    parents
        .into_iter()
        .filter_map(|p| {
            let kids = children.remove(&p)?;
            (kids.len() > 1).then(|| Fork {
                parent: p.cloned(),
                children: kids,
            })
        })
        .collect()
}

/// The current branch and the alternatives of `shape` (the whole session)
/// once `missing` (a file's messages it lacks, whose own order is `file`)
/// join it: the branch follows the file's to `current` when that continues
/// it, and stays otherwise.
fn merged(
    shape: &Shape,
    missing: &[&ChatMessage],
    current: &MessageId,
    file: &[Fork],
) -> (Vec<ChatMessage>, Vec<ChatMessage>) {
    let mut by_id = shape.by_id();
    by_id.extend(missing.iter().map(|m| (&m.id, *m)));
    // The session's messages first, then the file's new ones.
    let hints: Vec<Fork> = shape.doc.forks.iter().chain(file).cloned().collect();
    let order = creation_order(
        shape
            .branch
            .iter()
            .zip(0..)
            .chain(shape.alternative_messages().zip(1 << 40..))
            .chain(missing.iter().copied().zip(1 << 41..)),
        false,
        &hints,
    );
    let path = Tree::new(order).path_to(current);
    let ids: Vec<&MessageId> = shape.branch.iter().map(|m| &m.id).collect();
    let continues = path.len() > ids.len() && path.iter().zip(&ids).all(|(a, b)| a == *b);
    let branch = if continues {
        chained(&by_id, &path, Before::Start)
    } else {
        shape.branch.clone()
    };
    let on: HashSet<&MessageId> = branch.iter().map(|m| &m.id).collect();
    let alternatives = shape
        .alternative_messages()
        .chain(missing.iter().copied())
        .filter(|m| !on.contains(&m.id))
        .cloned()
        .collect();
    (branch, alternatives)
}

impl CosmosStore {
    /// One try at importing `import`, a tree ending its current branch at
    /// `current`, into the session as `found` (`None`: it does not exist).
    pub(super) async fn import_tree(
        &self,
        user: Option<&UserId>,
        import: &SessionImport,
        fields: &SessionFields,
        current: &MessageId,
        found: Option<(SessionDoc, ETag)>,
    ) -> StoreResult<ImportOutcome> {
        match found {
            None => self.import_new_tree(user, import, fields, current).await,
            Some((doc, etag)) => {
                self.import_into_tree(user, import, current, doc, etag)
                    .await
            }
        }
    }

    /// A new session holding the file's tree.
    async fn import_new_tree(
        &self,
        user: Option<&UserId>,
        import: &SessionImport,
        fields: &SessionFields,
        current: &MessageId,
    ) -> StoreResult<ImportOutcome> {
        let all = &import.messages;
        check_tree(all, current, |_| false)?;
        let doc = SessionDoc::new(ChatSession {
            id: import.id.clone(),
            user_id: import.user_id.clone(),
            session_name: fields.session_name.clone(),
            is_active: fields.is_active,
            archived_at: fields.archived_at,
            context: fields.context.clone(),
            messages: Vec::new(),
            message_count: 0,
            total_message_count: 0,
            last_message_at: None,
            created_at: fields.created_at,
            updated_at: fields.updated_at,
        });
        // The file's order is its creation order.
        let order = file_order(&all.iter().collect::<Vec<_>>());
        let tree = tree_of(all.iter().zip(0..), false, &order);
        let shape = Shape::of(doc, ETag::new("new"));
        let by_id: HashMap<&MessageId, &ChatMessage> = all.iter().map(|m| (&m.id, m)).collect();
        let branch = chained(&by_id, &tree.path_to(current), Before::Start);
        let on: HashSet<&MessageId> = branch.iter().map(|m| &m.id).collect();
        let alternatives: Vec<ChatMessage> = all
            .iter()
            .filter(|m| !on.contains(&m.id))
            .cloned()
            .collect();
        drop(on);
        let newest = all
            .iter()
            .map(|m| m.created_at)
            .max()
            .unwrap_or(fields.updated_at);
        let change = full_change_ordered(&shape, branch, alternatives, newest, &order);
        let plan = plan(&self.seal, &shape, change);
        self.write_new(user, &plan).await?;
        Ok(ImportOutcome {
            created: true,
            added: all.len() as u64,
            already_present: 0,
        })
    }

    /// Writes a new session's plan: its pages and alternatives first, then
    /// the document (a conflict: someone created it meanwhile).
    async fn write_new(&self, user: Option<&UserId>, plan: &Plan) -> StoreResult<()> {
        let container = self.container()?;
        for page in &plan.pages {
            self.track(
                container
                    .upsert_item(partition(user), &page.id, page, None)
                    .await,
                item_charge,
            )
            .map_err(store_error)?;
            self.io(|| ItemIo::Write(json_len(page) + SYSTEM_PROPERTY_BYTES));
        }
        for doc in &plan.branches {
            self.track(
                container
                    .upsert_item(partition(user), &doc.id, doc, None)
                    .await,
                item_charge,
            )
            .map_err(store_error)?;
            self.io(|| ItemIo::Write(json_len(doc) + SYSTEM_PROPERTY_BYTES));
        }
        let id = plan.doc.session.id.as_str();
        self.track(
            container
                .create_item(partition(user), id, &plan.doc, None)
                .await,
            item_charge,
        )
        .map_err(store_error)?;
        self.io(|| ItemIo::Write(json_len(&plan.doc) + SYSTEM_PROPERTY_BYTES));
        Ok(())
    }

    /// The messages of the file that session `doc` lacks, kept with their
    /// parents: beside the current branch, or continuing it when the
    /// file's branch continues it; one batch guarded by `etag`.
    async fn import_into_tree(
        &self,
        user: Option<&UserId>,
        import: &SessionImport,
        current: &MessageId,
        doc: SessionDoc,
        etag: ETag,
    ) -> StoreResult<ImportOutcome> {
        let mut shape = Shape::of(doc, etag);
        self.read_back_all(user, &mut shape).await?;
        self.read_alternatives(user, &mut shape).await?;
        let stored: Vec<&ChatMessage> = shape
            .branch
            .iter()
            .chain(shape.alternative_messages())
            .collect();
        let stored_ids: HashSet<&MessageId> = stored.iter().map(|m| &m.id).collect();
        check_tree(&import.messages, current, |m| stored_ids.contains(m))?;
        let missing: Vec<&ChatMessage> = import
            .messages
            .iter()
            .filter(|m| !stored_ids.contains(&m.id))
            .collect();
        let present = (import.messages.len() - missing.len()) as u64;
        if missing.is_empty() {
            return Ok(ImportOutcome {
                created: false,
                added: 0,
                already_present: present,
            });
        }
        let file = file_order(&import.messages.iter().collect::<Vec<_>>());
        let (branch, alternatives) = merged(&shape, &missing, current, &file);
        let newest = missing.iter().map(|m| m.created_at).max();
        let now = newest.map_or(shape.doc.session.updated_at, |n| {
            n.max(shape.doc.session.updated_at)
        });
        let change = full_change_ordered(&shape, branch, alternatives, now, &file);
        let plan = plan(&self.seal, &shape, change);
        plan.check("messages")?;
        self.commit(user, &plan, &shape.etag).await?;
        Ok(ImportOutcome {
            created: false,
            added: missing.len() as u64,
            already_present: present,
        })
    }
}

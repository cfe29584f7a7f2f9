//! Imports: the migration's, and whole sessions from a file
//! ([`ImportStore`]). A missing session is written whole (its oldest
//! messages straight into sealed pages), an existing one gets the messages
//! it lacks merged in, a slice per guarded step.

use std::{collections::HashSet, time::Instant};

use async_trait::async_trait;
use azure_data_cosmos::{
    FeedScope, Query,
    options::{ItemWriteOptions, Precondition},
};

use super::{
    CosmosStore,
    documents::{
        PageDoc, SESSION_DOC_TYPE, SYSTEM_PROPERTY_BYTES, SessionDoc, json_len, partition,
    },
    errors::{APPEND_DEADLINE, backoff, store_error, to_etag},
    lineage::{Before, chain, unchain},
    metrics::{ItemIo, item_charge},
};
use crate::{
    domain::{ChatMessage, ChatSession, MessageId, SessionId, UserId},
    store::{
        ETag, ImportOutcome, ImportStore, Owner, SessionFields, SessionImport, StoreError,
        StoreResult,
    },
};

/// Session ids looked up by one query of [`ImportStore::session_owners`].
const IDS_PER_QUERY: usize = 100;

/// A session found by [`ImportStore::session_owners`].
#[derive(serde::Deserialize)]
struct OwnerRow {
    id: SessionId,
    #[serde(default)]
    user_id: Option<UserId>,
}

/// Merges `slice` (messages the session lacks) into the current branch's
/// part in the document: in time order, as the migration's messages are
/// (sealed pages never change); after the branch's end in a session with
/// other branches, whose creation order a reordering would mix up.
fn merge(doc: &mut SessionDoc, slice: Vec<ChatMessage>) {
    let added = slice.len() as u64;
    let branched = doc.alternative_count() > 0;
    let before = match doc.session.messages.first().map(|m| m.parent_id.clone()) {
        _ if doc.sealed_page_sizes.is_empty() => Before::Start,
        Some(Some(parent)) => Before::Message(parent),
        _ => Before::Unread,
    };
    let session = &mut doc.session;
    session.messages.extend(slice);
    if !branched {
        session
            .messages
            .sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
    }
    // Parents written out as stored: the first keeps the one it had.
    chain(&mut session.messages, before);
    unchain(&mut session.messages);
    session.message_count += added;
    session.total_message_count += added;
    let newest = session.messages.last().map(|m| m.created_at);
    session.last_message_at = session.last_message_at.max(newest);
    if let Some(newest) = session.last_message_at {
        session.updated_at = session.updated_at.max(newest);
    }
}

/// Ids of the messages in a session's sealed pages, read so far by an import
/// (under one layout of the pages).
#[derive(Default)]
struct SealedIds {
    ids: std::collections::HashSet<MessageId>,
    pages: u32,
    layout: u64,
}

#[async_trait]
impl ImportStore for CosmosStore {
    /// A query across partitions (sessions of other users live in theirs),
    /// a hundred ids at a time.
    async fn session_owners(
        &self,
        ids: &[SessionId],
    ) -> StoreResult<Vec<(SessionId, Option<UserId>)>> {
        let (mut found, mut seen) = (Vec::new(), HashSet::new());
        for chunk in ids.chunks(IDS_PER_QUERY) {
            let wanted: Vec<&str> = chunk.iter().map(SessionId::as_str).collect();
            let query = Query::from(
                "SELECT c.id, c.user_id FROM c \
                 WHERE c.doc_type = @type AND ARRAY_CONTAINS(@ids, c.id)",
            )
            .with_parameter("@type", SESSION_DOC_TYPE)
            .and_then(|q| q.with_parameter("@ids", wanted))
            .map_err(store_error)?;
            let rows: Vec<OwnerRow> = self.query_all(query, FeedScope::full_container()).await?;
            // A set, not a search of `found`: a file of thousands of sessions.
            found.extend(
                rows.into_iter()
                    .filter(|row| seen.insert(row.id.clone()))
                    .map(|row| (row.id, row.user_id)),
            );
        }
        Ok(found)
    }

    async fn import_session(
        &self,
        fields: SessionFields,
        import: SessionImport,
    ) -> StoreResult<ImportOutcome> {
        self.import_with(import, Some(fields)).await
    }
}

impl CosmosStore {
    /// The import; `fields` are those of a session it creates (a file's).
    pub(super) async fn import_with(
        &self,
        import: SessionImport,
        fields: Option<SessionFields>,
    ) -> StoreResult<ImportOutcome> {
        if import.messages.is_empty() && fields.is_none() {
            return Ok(ImportOutcome::default());
        }
        // A session with this id under another owner lives in another
        // partition: only a query by id can see it.
        match self.partition_of(&Owner::Anonymous, &import.id).await {
            Ok(owner) if owner != import.user_id => {
                return Err(StoreError::Conflict(format!(
                    "session {} exists with another owner",
                    import.id
                )));
            }
            Ok(_) | Err(StoreError::NotFound) => {}
            Err(e) => return Err(e),
        }
        // This process's idea of the session's version goes out of date.
        self.versions
            .forget(&(import.user_id.clone(), import.id.clone()));
        let user = import.user_id.as_ref();
        let started = Instant::now();
        let mut attempt = 0u32;
        let mut outcome = ImportOutcome::default();
        let mut sealed = SealedIds::default();
        // A file that knows trees brings one (`import_tree`).
        let tree = fields
            .as_ref()
            .and_then(|f| f.current_message_id.clone().map(|current| (f, current)));
        loop {
            let found = match self.read_doc(user, &import.id, None).await {
                Err(StoreError::NotFound) => None,
                Err(e) => return Err(e),
                Ok(found) => found,
            };
            let step = match (&tree, found) {
                (Some((fields, current)), found) => self
                    .import_tree(user, &import, fields, current, found)
                    .await
                    .map(|done| {
                        outcome = done;
                        true
                    }),
                (None, None) => self
                    .import_new(&import, fields.as_ref())
                    .await
                    .map(|created| {
                        outcome = created;
                        true
                    }),
                (None, Some((doc, etag))) => {
                    self.import_step(user, &import, doc, &etag, &mut outcome, &mut sealed)
                        .await
                }
            };
            match step {
                Ok(true) => return Ok(outcome),
                Ok(false) => {}
                // Someone wrote in between (an append, a seal, another
                // importer): read again and merge into the newer version.
                Err(StoreError::PreconditionFailed | StoreError::Conflict(_))
                    if started.elapsed() < APPEND_DEADLINE =>
                {
                    tokio::time::sleep(backoff(attempt)).await;
                    attempt += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// A session that does not exist yet, with all imported messages: the
    /// oldest in sealed pages when they would not fit, written before the
    /// document (no one appends to a session without a document). Without
    /// `fields` (the migration) it is active, unnamed, and as old as its
    /// oldest message.
    async fn import_new(
        &self,
        import: &SessionImport,
        fields: Option<&SessionFields>,
    ) -> StoreResult<ImportOutcome> {
        let user = import.user_id.as_ref();
        // A new session's messages are its current branch, in order.
        let mut all = import.messages.clone();
        chain(&mut all, Before::Start);
        let all = &all;
        let last = all.last().map(|m| m.created_at);
        let fields = fields
            .cloned()
            .unwrap_or_else(|| SessionFields::starting_at(all[0].created_at));
        let mut doc = SessionDoc::new(ChatSession {
            id: import.id.clone(),
            user_id: import.user_id.clone(),
            session_name: fields.session_name,
            is_active: fields.is_active,
            archived_at: fields.archived_at,
            context: fields.context,
            messages: Vec::new(),
            message_count: all.len() as u64,
            total_message_count: all.len() as u64,
            last_message_at: last,
            created_at: fields.created_at,
            updated_at: fields.updated_at.max(last.unwrap_or(fields.updated_at)),
        });
        // The newest messages stay in the document, as many as a seal would
        // leave there; the older ones fill pages, the newest pages full (so
        // that a tail read needs few), page 0 with what is left over.
        // Measured as stored: a parent only where a document starts.
        let bare: Vec<ChatMessage> = all
            .iter()
            .map(|m| ChatMessage {
                parent_id: None,
                ..m.clone()
            })
            .collect();
        let split = all.len() - self.seal.kept_len(&bare);
        let mut pages: Vec<Vec<ChatMessage>> = Vec::new();
        let mut end = split;
        while end > 0 {
            let take = self.seal.page_len(bare[..end].iter().rev());
            pages.push(all[end - take..end].to_vec());
            end -= take;
        }
        pages.reverse();
        doc.session.messages = all[split..].to_vec();
        unchain(&mut doc.session.messages);
        for (page, mut messages) in pages.into_iter().enumerate() {
            unchain(&mut messages);
            doc.sealed_page_sizes.push(messages.len() as u32);
            let page_doc =
                PageDoc::sealed(&import.id, import.user_id.clone(), page as u32, messages, 0);
            self.track(
                self.container()?
                    .upsert_item(partition(user), &page_doc.id, &page_doc, None)
                    .await,
                item_charge,
            )
            .map_err(store_error)?;
            self.io(|| ItemIo::Write(json_len(&page_doc) + SYSTEM_PROPERTY_BYTES));
        }
        self.track(
            self.container()?
                .create_item(partition(user), import.id.as_str(), &doc, None)
                .await,
            item_charge,
        )
        .map_err(store_error)?;
        self.io(|| ItemIo::Write(json_len(&doc) + SYSTEM_PROPERTY_BYTES));
        Ok(ImportOutcome {
            created: true,
            added: all.len() as u64,
            already_present: 0,
        })
    }

    /// The ids of the messages session `doc` holds outside the document:
    /// in its sealed pages (kept in `sealed` from step to step: pages change
    /// only with a new layout, so under the same one only those sealed since
    /// are read) and on other branches.
    async fn known_ids(
        &self,
        user: Option<&UserId>,
        doc: &SessionDoc,
        sealed: &mut SealedIds,
    ) -> StoreResult<std::collections::HashSet<MessageId>> {
        let id = &doc.session.id;
        let pages = doc.sealed_page_sizes.len() as u32;
        if sealed.layout != doc.layout {
            *sealed = SealedIds {
                layout: doc.layout,
                ..SealedIds::default()
            };
        }
        for page in self
            .read_pages(user, id, sealed.pages..pages, doc.layout)
            .await?
        {
            sealed.ids.extend(page.messages.into_iter().map(|m| m.id));
        }
        sealed.pages = pages;
        let mut known = sealed.ids.clone();
        known.extend(doc.session.messages.iter().map(|m| m.id.clone()));
        if doc.alternative_count() > 0 {
            for branch in self.alternatives_of(user, id, doc.layout).await? {
                known.extend(branch.messages.into_iter().map(|m| m.id));
            }
        }
        Ok(known)
    }

    /// One step of importing into an existing session: merges a slice of the
    /// missing messages into the document (sealing when it would outgrow the
    /// policy), guarded by `etag`. `Ok(true)` when nothing is missing any more.
    async fn import_step(
        &self,
        user: Option<&UserId>,
        import: &SessionImport,
        doc: SessionDoc,
        etag: &ETag,
        outcome: &mut ImportOutcome,
        sealed: &mut SealedIds,
    ) -> StoreResult<bool> {
        let known = self.known_ids(user, &doc, sealed).await?;
        let missing: Vec<&ChatMessage> = import
            .messages
            .iter()
            .filter(|m| !known.contains(&m.id))
            .collect();
        if outcome.added == 0 && outcome.already_present == 0 {
            outcome.already_present = (import.messages.len() - missing.len()) as u64;
        }
        if missing.is_empty() {
            return Ok(true);
        }
        if self.seal.over(
            json_len(&doc) - doc.allowance(),
            doc.session.messages.len(),
            0,
            0,
        ) {
            self.seal(user, doc, etag).await?;
            return Ok(false);
        }
        // As many as fit in a quarter of the threshold per step, so every
        // write stays far below the item and batch limits.
        let mut slice = Vec::new();
        let mut bytes = 0;
        for message in &missing {
            let len = json_len(*message) + 1;
            if !slice.is_empty() && bytes + len > self.seal.max_bytes / 4 {
                break;
            }
            slice.push((*message).clone());
            bytes += len;
        }
        let added = slice.len() as u64;
        let mut doc = doc;
        merge(&mut doc, slice);
        let options =
            ItemWriteOptions::default().with_precondition(Precondition::if_match(to_etag(etag)));
        self.track(
            self.container()?
                .replace_item(partition(user), import.id.as_str(), &doc, Some(options))
                .await,
            item_charge,
        )
        .map_err(store_error)?;
        self.io(|| ItemIo::Write(json_len(&doc) + SYSTEM_PROPERTY_BYTES));
        outcome.added += added;
        Ok(missing.len() as u64 == added)
    }
}

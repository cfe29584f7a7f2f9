//! The migration's imports: a missing session is written whole (its oldest
//! messages straight into sealed pages), an existing one gets the messages it
//! lacks merged in, a slice per guarded step.

use std::time::Instant;

use azure_data_cosmos::options::{ItemWriteOptions, Precondition};

use super::{
    CosmosStore,
    documents::{PageDoc, SESSION_DOC_TYPE, SessionDoc, json_len, partition},
    errors::{APPEND_DEADLINE, backoff, store_error, to_etag},
    metrics::item_charge,
};
use crate::{
    domain::{ChatMessage, ChatSession, MessageId, UserId},
    store::{ETag, ImportOutcome, Owner, SessionImport, StoreError, StoreResult},
};

/// Ids of the messages in a session's sealed pages, read so far by an import.
#[derive(Default)]
struct SealedIds {
    ids: std::collections::HashSet<MessageId>,
    pages: u32,
}

impl CosmosStore {
    pub(super) async fn import(&self, import: SessionImport) -> StoreResult<ImportOutcome> {
        if import.messages.is_empty() {
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
        let user = import.user_id.as_ref();
        let started = Instant::now();
        let mut attempt = 0u32;
        let mut outcome = ImportOutcome::default();
        let mut sealed = SealedIds::default();
        loop {
            let step = match self.read_doc(user, &import.id, None).await {
                Err(StoreError::NotFound) => self.import_new(&import).await.map(|created| {
                    outcome = created;
                    true
                }),
                Err(e) => return Err(e),
                Ok(None) => unreachable!("an unconditional read always returns the document"),
                Ok(Some((doc, etag))) => {
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
    /// document (no one appends to a session without a document).
    async fn import_new(&self, import: &SessionImport) -> StoreResult<ImportOutcome> {
        let user = import.user_id.as_ref();
        let first = import.messages[0].created_at;
        let last = import.messages[import.messages.len() - 1].created_at;
        let mut doc = SessionDoc {
            session: ChatSession {
                id: import.id.clone(),
                user_id: import.user_id.clone(),
                session_name: None,
                is_active: true,
                context: Default::default(),
                messages: Vec::new(),
                message_count: import.messages.len() as u64,
                last_message_at: Some(last),
                created_at: first,
                updated_at: last,
            },
            doc_type: SESSION_DOC_TYPE.into(),
            sealed_page_sizes: Vec::new(),
        };
        // The newest messages that fit in half the threshold stay in the
        // document (as after a seal); the older ones fill pages, oldest first.
        let all = &import.messages;
        let mut split = all.len();
        let mut tail_bytes = 0;
        for (i, message) in all.iter().enumerate().rev() {
            let len = json_len(message) + 1;
            if tail_bytes + len > self.seal.max_bytes / 2
                || self
                    .seal
                    .max_messages
                    .is_some_and(|m| all.len() - i > m / 2)
            {
                break;
            }
            tail_bytes += len;
            split = i;
        }
        let split = split.min(all.len() - 1);
        let mut pages: Vec<Vec<ChatMessage>> = Vec::new();
        let mut pending: Vec<ChatMessage> = Vec::new();
        let mut pending_bytes = 0;
        for message in &all[..split] {
            let len = json_len(message) + 1;
            let full = pending_bytes + len > self.seal.max_bytes / 2
                || self
                    .seal
                    .max_messages
                    .is_some_and(|m| pending.len() + 1 > m / 2);
            if full && !pending.is_empty() {
                pages.push(std::mem::take(&mut pending));
                pending_bytes = 0;
            }
            pending.push(message.clone());
            pending_bytes += len;
        }
        if !pending.is_empty() {
            pages.push(pending);
        }
        doc.session.messages = all[split..].to_vec();
        for (page, messages) in pages.into_iter().enumerate() {
            doc.sealed_page_sizes.push(messages.len() as u32);
            let page_doc =
                PageDoc::sealed(&import.id, import.user_id.clone(), page as u32, messages);
            self.track(
                self.container
                    .upsert_item(partition(user), &page_doc.id, &page_doc, None)
                    .await,
                item_charge,
            )
            .map_err(store_error)?;
        }
        self.track(
            self.container
                .create_item(partition(user), import.id.as_str(), &doc, None)
                .await,
            item_charge,
        )
        .map_err(store_error)?;
        Ok(ImportOutcome {
            created: true,
            added: import.messages.len() as u64,
            already_present: 0,
        })
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
        // Pages never change: only those sealed since the last step are read.
        let pages = doc.sealed_page_sizes.len() as u32;
        for page in self
            .read_pages(user, &import.id, sealed.pages..pages)
            .await?
        {
            sealed.ids.extend(page.messages.into_iter().map(|m| m.id));
        }
        sealed.pages = pages;
        let in_doc: std::collections::HashSet<&MessageId> =
            doc.session.messages.iter().map(|m| &m.id).collect();
        let missing: Vec<&ChatMessage> = import
            .messages
            .iter()
            .filter(|m| !sealed.ids.contains(&m.id) && !in_doc.contains(&m.id))
            .collect();
        if outcome.added == 0 && outcome.already_present == 0 {
            outcome.already_present = (import.messages.len() - missing.len()) as u64;
        }
        if missing.is_empty() {
            return Ok(true);
        }
        if self.over(&doc, 0, 0) {
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
        let session = &mut doc.session;
        // Stragglers join the document part; sealed pages never change.
        session.messages.extend(slice);
        session
            .messages
            .sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        session.message_count += added;
        let newest = session.messages.last().map(|m| m.created_at);
        session.last_message_at = session.last_message_at.max(newest);
        if let Some(newest) = session.last_message_at {
            session.updated_at = session.updated_at.max(newest);
        }
        let options =
            ItemWriteOptions::default().with_precondition(Precondition::if_match(to_etag(etag)));
        self.track(
            self.container
                .replace_item(partition(user), import.id.as_str(), &doc, Some(options))
                .await,
            item_charge,
        )
        .map_err(store_error)?;
        outcome.added += added;
        Ok(missing.len() as u64 == added)
    }
}

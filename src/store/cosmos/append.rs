//! Appending a message. In steady state it is one server-side patch guarded
//! by the ETag of the version this process last wrote or read (`cache`): no
//! read first. Without one, or when the message id may already be stored, or
//! when another writer got in between (412), or after an ambiguous failure,
//! the append reads the document — which tells whether the message is in,
//! so a retry, even of an append whose answer was lost, stores it once — and
//! patches guarded by that read. Appends from this process take turns per
//! session (`turns`), so they do not race each other.
//!
//! An append that branches (a parent other than the current branch's last
//! message, or a last message that already has children) reads the document
//! and writes every change in one batch (`fork`).

use std::time::Instant;

use async_trait::async_trait;
use azure_data_cosmos::models::{CosmosNumber, PatchOperation};

use super::{
    CosmosStore,
    cache::{Known, SessionKey},
    documents::{SYSTEM_PROPERTY_BYTES, SessionDoc, json_len, json_of, len_after_append},
    errors::{APPEND_DEADLINE, backoff, busy, etag_of, is_stale},
    metrics::ItemIo,
};
use crate::{
    domain::{ChatMessage, NewMessage, Parent, SessionId, Timestamp, UserId},
    store::{AppendStore, Appended, ETag, Owner, StoreError, StoreResult},
};

/// What one append's reads have seen of the session's sealed pages.
#[derive(Default)]
struct Seen {
    /// Pages there were at the last read.
    pages: Option<u32>,
    /// The newest page read so far: its number, the layout it was read
    /// under (pages are rewritten only with a new layout) and its messages.
    newest: Option<(u32, u64, Vec<ChatMessage>)>,
}

/// Whether appending `parent` to the version `known` describes starts a
/// branch (or adds a sibling to children the last message already has):
/// then it is not the one patch of a plain append.
fn branches(parent: &Parent, known: &Known) -> bool {
    known.last_forked
        || match parent {
            Parent::Latest => false,
            Parent::Root => known.last_id.is_some(),
            Parent::Message(id) => known.last_id.as_ref() != Some(id),
        }
}

/// What a read found.
enum Looked {
    /// The message id is stored already: the answer to a retry.
    Stored(Appended),
    /// The document, and what an append needs to know of it.
    Doc(Box<SessionDoc>, Known),
}

#[async_trait]
impl AppendStore for CosmosStore {
    async fn append_message(
        &self,
        owner: &Owner,
        id: &SessionId,
        message: NewMessage,
    ) -> StoreResult<Appended> {
        let user = self.partition_of(owner, id).await?;
        let started = Instant::now();
        let key: SessionKey = (user.clone(), id.clone());
        let Some(_turn) = self.turns.take(&key, APPEND_DEADLINE).await else {
            return Err(busy());
        };
        let user = user.as_ref();
        let mut attempt = 0u32;
        let mut seen = Seen::default();
        loop {
            let (round, read) = self.round(user, id, &key, &message, &mut seen).await;
            let error = match round {
                Ok(Some(appended)) => return Ok(appended),
                Ok(None) => continue,
                Err(e) => e,
            };
            self.versions.forget(&key);
            // A page rewritten under the read: as if another writer won.
            let error = if is_stale(&error) {
                StoreError::PreconditionFailed
            } else {
                error
            };
            match error {
                // Lost a race, or an ambiguous failure: the next read tells
                // whether the message is in, so nothing is appended twice. A
                // version known from before is merely out of date: read at
                // once; a race lost just after reading: back off first.
                StoreError::PreconditionFailed | StoreError::Unavailable { .. }
                    if started.elapsed() < APPEND_DEADLINE =>
                {
                    if read || matches!(error, StoreError::Unavailable { .. }) {
                        tokio::time::sleep(backoff(attempt)).await;
                        attempt += 1;
                    }
                }
                // Gone since this process last saw it: the read says so.
                StoreError::NotFound if !read => {}
                StoreError::PreconditionFailed => return Err(busy()),
                e => return Err(e),
            }
        }
    }
}

impl CosmosStore {
    /// One try: append to the version this process knows (or reads), or,
    /// when the message would not fit, seal first (`Ok(None)`: go on).
    /// Also says whether it read the document.
    async fn round(
        &self,
        user: Option<&UserId>,
        id: &SessionId,
        key: &SessionKey,
        message: &NewMessage,
        seen: &mut Seen,
    ) -> (StoreResult<Option<Appended>>, bool) {
        // A branch needs the document itself: no cached version then.
        let cached = self
            .versions
            .get(key)
            .filter(|k| !k.may_hold(&message.id) && !branches(&message.parent, k));
        crate::telemetry::instruments::cache_lookup(
            crate::telemetry::instruments::Cache::Etag,
            cached.is_some(),
        );
        let (known, doc) = match cached {
            Some(known) => (known, None),
            None => match self.look(user, id, message, seen).await {
                Ok(Looked::Stored(appended)) => return (Ok(Some(appended)), true),
                Ok(Looked::Doc(doc, known)) => (known, Some(*doc)),
                Err(e) => return (Err(e), true),
            },
        };
        if branches(&message.parent, &known)
            && let Some(doc) = doc
        {
            // The newest page as the read just now found it, if sealed.
            let newest = seen
                .newest
                .as_ref()
                .filter(|(page, layout, _)| {
                    page + 1 == doc.sealed_page_sizes.len() as u32 && *layout == doc.layout
                })
                .map(|(_, _, messages)| messages.clone());
            let branched = self
                .append_branching(user, message, doc, known.etag.clone(), newest)
                .await;
            return (branched.map(Some), true);
        }
        // As the document keeps it: after another message, its parent is
        // implied (it is set once written). Measured once: the seal check
        // and the cache need it.
        let mut stored = ChatMessage::stored(
            message.clone(),
            message.user_id.clone().or_else(|| user.cloned()),
            known
                .last_message_at
                .map_or_else(Timestamp::now, |last| Timestamp::now().max(last)),
            known.last_id.clone().filter(|_| known.messages == 0),
        );
        let stored_len = json_len(&stored);
        if self.seal.over(
            known.doc_len - known.allowance,
            known.messages,
            stored_len + 1,
            1,
        ) {
            let made = self.make_room(user, id, key, &known, doc).await;
            return (made.map(|()| None), true);
        }
        let read = doc.is_some();
        let etag = match self.patch_append(user, id, &known, &stored).await {
            Ok(etag) => etag,
            Err(e) => return (Err(e), read),
        };
        stored.parent_id = known.last_id.clone();
        self.versions.put(
            key,
            Some(known.after_append(&stored, stored_len, etag.clone())),
        );
        let appended = Appended {
            message: stored,
            created: true,
            etag,
        };
        (Ok(Some(appended)), read)
    }

    /// Seals the oldest messages of the version `known` describes. Sealing
    /// moves messages, so it needs them: without `doc`, it reads the
    /// document; unchanged since, what this process knows of it (the retry
    /// check included) still holds; changed, it is forgotten, and the next
    /// round looks afresh.
    async fn make_room(
        &self,
        user: Option<&UserId>,
        id: &SessionId,
        key: &SessionKey,
        known: &Known,
        doc: Option<SessionDoc>,
    ) -> StoreResult<()> {
        let doc = match doc {
            Some(doc) => doc,
            None => match self.read_doc(user, id, None).await? {
                Some((doc, etag)) if etag == known.etag => doc,
                _ => {
                    self.versions.forget(key);
                    return Ok(());
                }
            },
        };
        let sealed = self.seal(user, doc, &known.etag).await?;
        self.versions.put(key, sealed);
        Ok(())
    }

    /// Reads the document: either the message is stored already (in the
    /// document, or in a page sealed since this append first looked — on
    /// the first look, the newest page), or what an append needs to know.
    async fn look(
        &self,
        user: Option<&UserId>,
        id: &SessionId,
        message: &NewMessage,
        seen: &mut Seen,
    ) -> StoreResult<Looked> {
        let (doc, etag) = self.read_current(user, id).await?;
        let sealed = doc.sealed();
        if let Some(at) = doc.session.messages.iter().position(|m| m.id == message.id) {
            let mut stored = doc.session.messages[at].clone();
            if at > 0 {
                stored.parent_id = Some(doc.session.messages[at - 1].id.clone());
            } else if sealed == 0 {
                stored.parent_id = None;
            }
            return Appended::replay(stored, message, etag).map(Looked::Stored);
        }
        let pages = doc.sealed_page_sizes.len() as u32;
        let layout = doc.layout;
        let newest_known = |seen: &Seen| {
            seen.newest
                .as_ref()
                .is_some_and(|(page, read_under, _)| page + 1 == pages && *read_under == layout)
        };
        let mut from = seen.pages.unwrap_or(pages).min(pages);
        if pages > 0 && !newest_known(seen) {
            from = from.min(pages - 1);
        }
        seen.pages = Some(pages);
        for (page, read) in (from..).zip(self.read_pages(user, id, from..pages, layout).await?) {
            if let Some(at) = read.messages.iter().position(|m| m.id == message.id) {
                let mut stored = read.messages[at].clone();
                if at > 0 {
                    stored.parent_id = Some(read.messages[at - 1].id.clone());
                }
                return Appended::replay(stored, message, etag).map(Looked::Stored);
            }
            if page + 1 == pages {
                seen.newest = Some((page, layout, read.messages));
            }
        }
        // On another branch: a retry whose message a branch moved away.
        if let Some(stored) = self.find_alternative(user, &doc, &message.id).await? {
            return Appended::replay(stored, message, etag).map(Looked::Stored);
        }
        let newest = seen
            .newest
            .as_ref()
            .filter(|_| pages > 0)
            .map(|(_, _, messages)| messages.as_slice());
        let known = Known::of(&doc, etag, newest).ok_or_else(|| {
            StoreError::Internal(anyhow::anyhow!("the newest sealed page was not read"))
        })?;
        Ok(Looked::Doc(Box::new(doc), known))
    }

    /// The append itself: one server-side patch guarded by `known`'s ETag,
    /// adding `stored` as the document keeps it; the answer carries no
    /// body, only the new ETag.
    async fn patch_append(
        &self,
        user: Option<&UserId>,
        id: &SessionId,
        known: &Known,
        stored: &ChatMessage,
    ) -> StoreResult<ETag> {
        let now = stored.created_at;
        // Set, not incremented: documents older than the field lack it, and
        // the guard makes the version exact anyway.
        let total = known.total_message_count + 1;
        let operations = vec![
            PatchOperation::add("/messages/-", json_of(stored)?),
            PatchOperation::increment("/message_count", CosmosNumber::from(1i64)),
            PatchOperation::set("/total_message_count", json_of(&total)?),
            PatchOperation::set("/last_message_at", json_of(&now)?),
            PatchOperation::set("/updated_at", json_of(&now.max(known.updated_at))?),
        ];
        let response = self
            .patch(user, id, operations, Some(&known.etag), false)
            .await?;
        self.io(|| {
            let after = len_after_append(&known.appended_to(), json_len(stored));
            ItemIo::Write(after + SYSTEM_PROPERTY_BYTES)
        });
        etag_of(&response, "Cosmos DB patch without an ETag")
    }
}

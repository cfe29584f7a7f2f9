//! What this process last knew of the sessions it wrote or read: for each,
//! one version (its ETag) and just enough about that version to append to it
//! with one guarded patch and no read first — whether a message id may
//! already be stored (a retry), how large the document is and how many
//! messages it holds (the seal policy), its counters and timestamps and the
//! current branch's last message (the patch), and whether that message
//! already has children (then an append is a branch, not a patch).
//! Bounded; the least recently used sessions are forgotten first.
//!
//! An entry is only ever built from one version as Cosmos DB returned it (a
//! read) or as this process wrote it (a create, a seal, or a patch guarded by
//! the entry's own ETag), so it describes that version exactly; a patch
//! guarded by its ETag applies only to that version. When anyone else wrote
//! in between, the patch fails with 412 and the append reads again.

use std::{
    collections::{HashMap, HashSet},
    hash::{DefaultHasher, Hash, Hasher},
    sync::Mutex,
};

use super::{
    documents::{AppendedTo, SessionDoc, json_len, len_after_append},
    filter::Filter,
};
use crate::{
    domain::{ChatMessage, MessageId, SessionId, Timestamp, UserId},
    store::ETag,
};

/// Sessions remembered per process. An entry holds a hash per message id of
/// the document and its newest page (about a hundred at the default seal
/// policy), so this stays around a megabyte.
const CAPACITY: usize = 1024;

/// A session, by its partition and id.
pub(super) type SessionKey = (Option<UserId>, SessionId);

/// One version of a session document, as far as an append needs it.
#[derive(Debug, Clone)]
pub(super) struct Known {
    pub(super) etag: ETag,
    /// Hashes of the ids in the document and in its newest sealed page: the
    /// messages a retried append is looked for in (as a read does).
    ids: HashSet<u64>,
    /// The ids of the messages off the current branch, approximately.
    alternatives: Option<Filter>,
    /// [`json_len`] of the document.
    pub(super) doc_len: usize,
    /// What of it the seal policy does not count
    /// ([`SessionDoc::allowance`]).
    pub(super) allowance: usize,
    /// Messages in the document (not in pages).
    pub(super) messages: usize,
    pub(super) message_count: u64,
    pub(super) total_message_count: u64,
    pub(super) last_message_at: Option<Timestamp>,
    pub(super) updated_at: Timestamp,
    /// The current branch's last message (`None`: the branch is empty).
    pub(super) last_id: Option<MessageId>,
    /// Whether that message (or, on an empty branch, the session) already
    /// has children off the branch: an append then adds a sibling of
    /// theirs, which the document's `forks` must list.
    pub(super) last_forked: bool,
}

fn id_hash(id: &MessageId) -> u64 {
    let mut hasher = DefaultHasher::new();
    id.hash(&mut hasher);
    hasher.finish()
}

impl Known {
    /// Version `etag` of `doc`. A sealed session is only known together with
    /// the messages of its newest page; without them, `None`.
    pub(super) fn of(
        doc: &SessionDoc,
        etag: ETag,
        newest_page: Option<&[ChatMessage]>,
    ) -> Option<Self> {
        if !doc.sealed_page_sizes.is_empty() && newest_page.is_none() {
            return None;
        }
        let session = &doc.session;
        let last_id = session
            .messages
            .last()
            .or_else(|| newest_page.and_then(<[ChatMessage]>::last))
            .map(|m| m.id.clone());
        Some(Self {
            etag,
            ids: session
                .messages
                .iter()
                .chain(newest_page.unwrap_or_default())
                .map(|m| id_hash(&m.id))
                .collect(),
            alternatives: doc.alternatives.clone(),
            doc_len: json_len(doc),
            allowance: doc.allowance(),
            messages: session.messages.len(),
            message_count: session.message_count,
            total_message_count: session.total_message_count.max(session.message_count),
            last_message_at: session.last_message_at,
            updated_at: session.updated_at,
            last_forked: doc.fork_of(last_id.as_ref()).is_some(),
            last_id,
        })
    }

    /// Whether message `id` may be stored already. False means it is in
    /// neither the document, nor its newest page, nor off the current
    /// branch; true may be a hash collision or a false "maybe" of the
    /// alternatives' filter (the append then reads, as without an entry).
    pub(super) fn may_hold(&self, id: &MessageId) -> bool {
        self.ids.contains(&id_hash(id))
            || self.alternatives.as_ref().is_some_and(|f| f.may_hold(id))
    }

    /// What the append patch starts from, for [`len_after_append`].
    pub(super) fn appended_to(&self) -> AppendedTo {
        AppendedTo {
            len: self.doc_len,
            messages: self.messages,
            message_count: self.message_count,
            total_message_count: self.total_message_count,
            had_message: self.last_message_at.is_some(),
        }
    }

    /// The version the append patch made, answered with `etag`;
    /// `stored_len` is [`json_len`] of `stored` as the document keeps it.
    pub(super) fn after_append(
        mut self,
        stored: &ChatMessage,
        stored_len: usize,
        etag: ETag,
    ) -> Self {
        self.doc_len = len_after_append(&self.appended_to(), stored_len);
        self.ids.insert(id_hash(&stored.id));
        self.messages += 1;
        self.message_count += 1;
        self.total_message_count += 1;
        self.last_id = Some(stored.id.clone());
        self.last_forked = false;
        self.last_message_at = Some(stored.created_at);
        self.updated_at = stored.created_at.max(self.updated_at);
        self.etag = etag;
        self
    }
}

/// The bounded per-process map of [`Known`] versions.
#[derive(Debug, Default)]
pub(super) struct Versions {
    inner: Mutex<Lru>,
}

#[derive(Debug, Default)]
struct Lru {
    entries: HashMap<SessionKey, (Known, u64)>,
    tick: u64,
}

impl Versions {
    pub(super) fn get(&self, key: &SessionKey) -> Option<Known> {
        let mut lru = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        lru.tick += 1;
        let tick = lru.tick;
        lru.entries.get_mut(key).map(|(known, used)| {
            *used = tick;
            known.clone()
        })
    }

    /// Whether version `etag` of the session is what is remembered (then
    /// there is nothing to rebuild).
    pub(super) fn holds(&self, key: &SessionKey, etag: &ETag) -> bool {
        let lru = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        lru.entries
            .get(key)
            .is_some_and(|(known, _)| known.etag == *etag)
    }

    /// Remembers `known` (`None`: forgets the session).
    pub(super) fn put(&self, key: &SessionKey, known: Option<Known>) {
        let mut lru = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let Some(known) = known else {
            lru.entries.remove(key);
            return;
        };
        lru.tick += 1;
        let tick = lru.tick;
        lru.entries.insert(key.clone(), (known, tick));
        if lru.entries.len() > CAPACITY {
            // Forget the oldest eighth at once, so that this scan is rare.
            let mut ticks: Vec<u64> = lru.entries.values().map(|(_, t)| *t).collect();
            let cut = CAPACITY / 8;
            ticks.select_nth_unstable(cut);
            let oldest = ticks[cut];
            lru.entries.retain(|_, (_, t)| *t > oldest);
        }
    }

    pub(super) fn forget(&self, key: &SessionKey) {
        self.put(key, None);
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entries
            .len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{JsonObject, MessageType, NewSession};

    fn doc(id: &str) -> SessionDoc {
        SessionDoc::new(
            NewSession::new(
                Some(SessionId::parse(id).unwrap()),
                None,
                None,
                JsonObject::new(),
                Timestamp::now(),
            )
            .unwrap()
            .into_session(Timestamp::now()),
        )
    }

    fn message(id: &str) -> ChatMessage {
        ChatMessage {
            tool_calls: None,
            tool_call_id: None,
            name: None,
            id: MessageId::parse(id).unwrap(),
            content: "hello".into(),
            message_type: MessageType::User,
            user_id: None,
            metadata: JsonObject::new(),
            created_at: Timestamp::now(),
            parent_id: None,
            edited_at: None,
            siblings: None,
        }
    }

    #[test]
    fn an_entry_follows_its_appends_exactly() {
        let mut doc = doc("s");
        let mut known = Known::of(&doc, ETag::new("e0"), None).unwrap();
        for i in 0..12 {
            let m = message(&format!("m{i}"));
            assert!(!known.may_hold(&m.id));
            known = known.after_append(&m, json_len(&m), ETag::new(format!("e{}", i + 1)));
            doc.session.message_count += 1;
            doc.session.total_message_count += 1;
            doc.session.last_message_at = Some(m.created_at);
            doc.session.updated_at = m.created_at;
            doc.session.messages.push(m.clone());
            assert!(known.may_hold(&m.id));
            let fresh = Known::of(&doc, known.etag.clone(), None).unwrap();
            assert_eq!(
                (known.doc_len, known.messages, known.message_count),
                (fresh.doc_len, fresh.messages, fresh.message_count)
            );
            assert_eq!(known.total_message_count, fresh.total_message_count);
            assert_eq!(known.last_id, fresh.last_id);
            assert_eq!(known.ids, fresh.ids);
        }
    }

    #[test]
    fn a_sealed_session_is_known_only_with_its_newest_page() {
        let mut doc = doc("s");
        doc.sealed_page_sizes.push(1);
        assert!(Known::of(&doc, ETag::new("e"), None).is_none());
        let page = [message("old")];
        let known = Known::of(&doc, ETag::new("e"), Some(&page)).unwrap();
        assert!(known.may_hold(&page[0].id));
    }

    #[test]
    fn the_map_stays_bounded_and_keeps_the_recently_used() {
        let versions = Versions::default();
        let key = |i: usize| (None, SessionId::parse(format!("s{i}")).unwrap());
        let known = Known::of(&doc("s"), ETag::new("e"), None);
        versions.put(&key(0), known.clone());
        for i in 1..CAPACITY * 3 {
            versions.put(&key(i), known.clone());
            // Session 0 stays in use.
            assert!(versions.get(&key(0)).is_some(), "after {i}");
        }
        assert!(versions.len() <= CAPACITY);
        assert!(versions.get(&key(1)).is_none());
        versions.forget(&key(0));
        assert!(versions.get(&key(0)).is_none());
    }
}

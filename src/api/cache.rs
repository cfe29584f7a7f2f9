//! Rendered JSON bodies of recently read sessions (by session id) and
//! listings (by owner and query). Every use revalidates the entry against
//! the store by version (the session's ETag, the owner's sessions version),
//! so the cache never serves stale data or another user's sessions: it only
//! saves loading and serialising what did not change.

use std::{collections::HashMap, hash::Hash, sync::Mutex};

use axum::body::Bytes;

use crate::{domain::SessionId, store::ETag};

/// Upper bound of the bytes held.
pub const DEFAULT_CACHE_BYTES: usize = 64 * 1024 * 1024;

/// Upper bound of the bytes of rendered listings held (a page of 100
/// sessions is about 30 KB).
pub const LISTINGS_CACHE_BYTES: usize = 16 * 1024 * 1024;

/// A bounded map from a key (a session id, a listing) to its last rendered
/// body and the version it renders.
#[derive(Debug)]
pub struct RenderCache<K = SessionId> {
    max_bytes: usize,
    inner: Mutex<Entries<K>>,
}

#[derive(Debug)]
struct Entries<K> {
    map: HashMap<K, (ETag, Bytes)>,
    bytes: usize,
}

impl<K> Default for Entries<K> {
    fn default() -> Self {
        Self {
            map: HashMap::new(),
            bytes: 0,
        }
    }
}

impl<K: Hash + Eq + Clone> Default for RenderCache<K> {
    fn default() -> Self {
        Self::new(DEFAULT_CACHE_BYTES)
    }
}

impl<K: Hash + Eq + Clone> RenderCache<K> {
    /// A cache holding at most `max_bytes` of bodies.
    pub fn new(max_bytes: usize) -> Self {
        Self {
            max_bytes,
            inner: Mutex::default(),
        }
    }

    /// The cached body of `id` and the version it renders.
    pub fn get(&self, id: &K) -> Option<(ETag, Bytes)> {
        self.lock().map.get(id).cloned()
    }

    /// Remembers `body` as the rendering of version `etag` of `id`. Bodies
    /// over an eighth of the budget are not kept.
    pub fn put(&self, id: &K, etag: ETag, body: Bytes) {
        if body.len() > self.max_bytes / 8 {
            return;
        }
        let mut entries = self.lock();
        if let Some((_, old)) = entries.map.remove(id) {
            entries.bytes -= old.len();
        }
        // Evict arbitrary entries (hash order, effectively random) until the
        // new body fits: no bookkeeping on the read path.
        while entries.bytes + body.len() > self.max_bytes {
            let Some(victim) = entries.map.keys().next().cloned() else {
                break;
            };
            if let Some((_, old)) = entries.map.remove(&victim) {
                entries.bytes -= old.len();
            }
        }
        entries.bytes += body.len();
        entries.map.insert(id.clone(), (etag, body));
    }

    /// Forgets `id`.
    pub fn remove(&self, id: &K) {
        let mut entries = self.lock();
        if let Some((_, old)) = entries.map.remove(id) {
            entries.bytes -= old.len();
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Entries<K>> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: usize) -> SessionId {
        SessionId::parse(format!("s{n}")).unwrap()
    }

    #[test]
    fn stays_within_its_budget() {
        let cache: RenderCache = RenderCache::new(1000);
        for n in 0..100 {
            cache.put(&id(n), ETag::new("e"), Bytes::from(vec![b'x'; 100]));
            let entries = cache.lock();
            assert!(entries.bytes <= 1000);
            assert_eq!(
                entries.bytes,
                entries.map.values().map(|(_, b)| b.len()).sum::<usize>()
            );
        }
        assert!(cache.get(&id(99)).is_some(), "the newest entry is kept");
        cache.put(&id(1000), ETag::new("e"), Bytes::from(vec![b'x'; 200]));
        assert!(
            cache.get(&id(1000)).is_none(),
            "over an eighth of the budget"
        );
    }

    #[test]
    fn replacing_and_removing_keep_the_count_right() {
        let cache: RenderCache = RenderCache::new(1000);
        cache.put(&id(1), ETag::new("a"), Bytes::from_static(b"12345"));
        cache.put(&id(1), ETag::new("b"), Bytes::from_static(b"123"));
        assert_eq!(cache.get(&id(1)).unwrap().0, ETag::new("b"));
        assert_eq!(cache.lock().bytes, 3);
        cache.remove(&id(1));
        assert_eq!(cache.lock().bytes, 0);
        assert!(cache.get(&id(1)).is_none());
    }
}

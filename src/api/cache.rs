//! Rendered JSON bodies of recently read sessions. Every use revalidates the
//! entry against the store by version (`get_session_if_changed`), so the cache
//! never serves stale data or another user's session: it only saves loading
//! and serialising messages that did not change.

use std::{collections::HashMap, sync::Mutex};

use axum::body::Bytes;

use crate::{domain::SessionId, store::ETag};

/// Upper bound of the bytes held.
pub const DEFAULT_CACHE_BYTES: usize = 64 * 1024 * 1024;

/// A bounded map from session id to its last rendered body.
#[derive(Debug)]
pub struct RenderCache {
    max_bytes: usize,
    inner: Mutex<Entries>,
}

#[derive(Debug, Default)]
struct Entries {
    map: HashMap<SessionId, (ETag, Bytes)>,
    bytes: usize,
}

impl Default for RenderCache {
    fn default() -> Self {
        Self::new(DEFAULT_CACHE_BYTES)
    }
}

impl RenderCache {
    /// A cache holding at most `max_bytes` of bodies.
    pub fn new(max_bytes: usize) -> Self {
        Self {
            max_bytes,
            inner: Mutex::default(),
        }
    }

    /// The cached body of `id` and the version it renders.
    pub fn get(&self, id: &SessionId) -> Option<(ETag, Bytes)> {
        self.lock().map.get(id).cloned()
    }

    /// Remembers `body` as the rendering of version `etag` of `id`. Bodies
    /// over an eighth of the budget are not kept.
    pub fn put(&self, id: &SessionId, etag: ETag, body: Bytes) {
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
    pub fn remove(&self, id: &SessionId) {
        let mut entries = self.lock();
        if let Some((_, old)) = entries.map.remove(id) {
            entries.bytes -= old.len();
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Entries> {
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
        let cache = RenderCache::new(1000);
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
        let cache = RenderCache::new(1000);
        cache.put(&id(1), ETag::new("a"), Bytes::from_static(b"12345"));
        cache.put(&id(1), ETag::new("b"), Bytes::from_static(b"123"));
        assert_eq!(cache.get(&id(1)).unwrap().0, ETag::new("b"));
        assert_eq!(cache.lock().bytes, 3);
        cache.remove(&id(1));
        assert_eq!(cache.lock().bytes, 0);
        assert!(cache.get(&id(1)).is_none());
    }
}

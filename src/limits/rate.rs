//! The per-user write rate: a token bucket per user (per instance). A
//! write takes a token; tokens come back at the rate, up to the burst.
//! Buckets live in a few mutex-guarded maps chosen by the key's hash, so
//! that concurrent users rarely wait on one lock; a bucket that has filled
//! up again is the same as none, and such buckets are dropped when a map
//! grows, which bounds the memory by the users active in the last
//! `burst / rate` seconds.

use std::{
    collections::HashMap,
    hash::{BuildHasher as _, RandomState},
    sync::Mutex,
    time::{Duration, Instant},
};

/// Maps the buckets are spread over.
const SHARDS: usize = 16;
/// A map with more buckets than this drops the full ones.
const PRUNE_AT: usize = 4096;

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// Token buckets by user.
#[derive(Debug)]
pub struct UserRate {
    per_second: f64,
    burst: f64,
    hasher: RandomState,
    shards: Box<[Mutex<Shard>]>,
}

/// One map of buckets, and the size at which it is next pruned: twice
/// what a pruning left, so that many active users cost a scan now and
/// then, not one per new user.
#[derive(Debug)]
struct Shard {
    buckets: HashMap<Box<str>, Bucket>,
    prune_at: usize,
}

impl Default for Shard {
    fn default() -> Self {
        Self {
            buckets: HashMap::new(),
            prune_at: PRUNE_AT,
        }
    }
}

impl UserRate {
    /// Buckets of `burst` tokens refilled at `per_second`; `None` when the
    /// rate is 0 (no limit).
    pub fn new(per_second: f64, burst: u32) -> Option<Self> {
        (per_second > 0.0 && burst > 0).then(|| Self {
            per_second,
            burst: f64::from(burst),
            hasher: RandomState::new(),
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
        })
    }

    /// Takes a token of `user`'s bucket at `now`; when there is none, how
    /// long until there is one.
    pub fn take(&self, user: &str, now: Instant) -> Result<(), Duration> {
        let shard = &self.shards[self.hasher.hash_one(user) as usize % SHARDS];
        let mut shard = shard.lock().unwrap_or_else(|e| e.into_inner());
        let refilled = |b: &Bucket| {
            let elapsed = now.saturating_duration_since(b.at).as_secs_f64();
            (b.tokens + elapsed * self.per_second).min(self.burst)
        };
        if shard.buckets.len() >= shard.prune_at && !shard.buckets.contains_key(user) {
            shard.buckets.retain(|_, b| refilled(b) < self.burst);
            shard.prune_at = (shard.buckets.len() * 2).max(PRUNE_AT);
        }
        if let Some(bucket) = shard.buckets.get_mut(user) {
            return self.take_from(bucket, refilled(bucket), now);
        }
        let mut bucket = Bucket {
            tokens: self.burst,
            at: now,
        };
        let taken = self.take_from(&mut bucket, self.burst, now);
        shard.buckets.insert(user.into(), bucket);
        taken
    }

    /// Takes a token of `bucket`, which holds `tokens` at `now`.
    fn take_from(&self, bucket: &mut Bucket, tokens: f64, now: Instant) -> Result<(), Duration> {
        if tokens >= 1.0 {
            *bucket = Bucket {
                tokens: tokens - 1.0,
                at: now,
            };
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - tokens) / self.per_second))
        }
    }

    /// Buckets held (for tests of the bound).
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(|e| e.into_inner()).buckets.len())
            .sum()
    }

    /// Whether no bucket is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_then_the_rate_and_users_apart() {
        let rate = UserRate::new(10.0, 5).unwrap();
        let t0 = Instant::now();
        for _ in 0..5 {
            rate.take("alice", t0).unwrap();
        }
        let wait = rate.take("alice", t0).unwrap_err();
        assert!(
            wait > Duration::from_millis(90) && wait <= Duration::from_millis(100),
            "{wait:?}"
        );
        // Bob has his own bucket.
        rate.take("bob", t0).unwrap();
        // A tenth of a second later, one more token.
        let t1 = t0 + Duration::from_millis(100);
        rate.take("alice", t1).unwrap();
        assert!(rate.take("alice", t1).is_err());
        // Never more than the burst, however long the pause.
        let t2 = t1 + Duration::from_secs(3600);
        for _ in 0..5 {
            rate.take("alice", t2).unwrap();
        }
        assert!(rate.take("alice", t2).is_err());
        assert!(UserRate::new(0.0, 5).is_none(), "rate 0 is no limit");
    }

    #[test]
    fn full_buckets_are_dropped_as_the_maps_grow() {
        let rate = UserRate::new(1000.0, 1).unwrap();
        let t0 = Instant::now();
        for i in 0..(PRUNE_AT * SHARDS * 2) {
            rate.take(&format!("user{i}"), t0).unwrap();
        }
        // A second later every bucket is full again: the maps shrink.
        let t1 = t0 + Duration::from_secs(1);
        for i in 0..(PRUNE_AT * SHARDS * 2) {
            rate.take(&format!("later{i}"), t1).unwrap();
        }
        // Without pruning it would hold both rounds' buckets.
        let both = PRUNE_AT * SHARDS * 4;
        assert!(rate.len() < both * 3 / 4, "{} of {both}", rate.len());
    }
}

//! A Bloom filter of the ids of a session's messages off its current branch,
//! kept in the session document (base64 in `alternatives`). An append must
//! not store a message whose id the session already holds on another branch
//! (a retry after a fork moved it away), yet it must stay one patch with no
//! read: the filter answers "certainly not there" for almost every new id,
//! and only a "maybe" costs the query of the alternatives.
//!
//! Twelve bits per id when built and four probes give about 1 % false
//! "maybe"s; ids added later (a fork moves messages off the branch without
//! reading the others) fill it, and once it holds twice what it was built
//! for (about 6 % false "maybe"s) the next write that can see every
//! alternative builds it afresh. The hash is FNV-1a, fixed here, so that
//! every build of the service reads the filters every other one wrote.

use base64::{Engine as _, engine::general_purpose::STANDARD};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::domain::MessageId;

/// Probes per id.
const PROBES: u64 = 4;
/// Bits per id a filter is built with.
const BITS_PER_ID: usize = 12;
/// Fewest bits a filter has.
const MIN_BITS: usize = 128;

/// FNV-1a (64-bit) of `bytes`, from an offset basis varied by `seed`.
pub(super) fn fnv1a(bytes: &[u8], seed: u64) -> u64 {
    let mut hash = 0xcbf2_9ce4_8422_2325u64 ^ seed.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    for &b in bytes {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

/// The set of ids, approximately: no false "no".
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Filter {
    bytes: Vec<u8>,
}

impl Filter {
    /// A filter of `ids`; `None` when there are none.
    pub(super) fn of<'a>(ids: impl ExactSizeIterator<Item = &'a MessageId>) -> Option<Self> {
        if ids.len() == 0 {
            return None;
        }
        let bits = (ids.len() * BITS_PER_ID).max(MIN_BITS).next_multiple_of(8);
        let mut filter = Self {
            bytes: vec![0; bits / 8],
        };
        for id in ids {
            filter.insert(id);
        }
        Some(filter)
    }

    fn probes(&self, id: &MessageId) -> impl Iterator<Item = usize> + use<> {
        let bits = (self.bytes.len() * 8) as u64;
        let h1 = fnv1a(id.as_str().as_bytes(), 0);
        let h2 = fnv1a(id.as_str().as_bytes(), 1) | 1;
        (0..PROBES).map(move |i| (h1.wrapping_add(i.wrapping_mul(h2)) % bits) as usize)
    }

    /// Adds `id`.
    pub(super) fn insert(&mut self, id: &MessageId) {
        for bit in self.probes(id) {
            self.bytes[bit / 8] |= 1 << (bit % 8);
        }
    }

    /// Whether `id` may be in the set (false: it certainly is not).
    pub(super) fn may_hold(&self, id: &MessageId) -> bool {
        self.probes(id)
            .all(|bit| self.bytes[bit / 8] & (1 << (bit % 8)) != 0)
    }

    /// Whether `ids` ids in all keep its false "maybe"s rare; past that it
    /// should be built afresh.
    pub(super) fn holds_well(&self, ids: u64) -> bool {
        ids.saturating_mul(BITS_PER_ID as u64 / 2) <= (self.bytes.len() * 8) as u64
    }
}

impl Serialize for Filter {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(&self.bytes))
    }
}

impl<'de> Deserialize<'de> for Filter {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        let bytes = STANDARD.decode(text).map_err(serde::de::Error::custom)?;
        if bytes.is_empty() {
            return Err(serde::de::Error::custom("an empty id filter"));
        }
        Ok(Self { bytes })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(i: usize) -> MessageId {
        MessageId::parse(format!("msg_{i}")).unwrap()
    }

    #[test]
    fn holds_every_id_and_few_others_and_round_trips() {
        let ids: Vec<MessageId> = (0..500).map(id).collect();
        let filter = Filter::of(ids.iter()).unwrap();
        assert!(ids.iter().all(|i| filter.may_hold(i)));
        let false_maybes = (500..10_500).filter(|&i| filter.may_hold(&id(i))).count();
        assert!(false_maybes < 250, "{false_maybes} of 10000");
        let text = serde_json::to_string(&filter).unwrap();
        let back: Filter = serde_json::from_str(&text).unwrap();
        assert_eq!(back, filter);
        // 12 bits an id: 750 bytes, 1000 in base64.
        assert_eq!(text.len(), 1002);
        assert!(Filter::of(std::iter::empty::<&MessageId>()).is_none());
    }

    #[test]
    fn ids_added_later_are_held_and_a_full_filter_says_so() {
        let mut filter = Filter::of([id(0)].iter()).unwrap();
        assert!(filter.holds_well(1));
        for i in 1..40 {
            filter.insert(&id(i));
        }
        assert!((0..40).all(|i| filter.may_hold(&id(i))));
        assert!(!filter.holds_well(40), "128 bits hold about 21 ids well");
    }

    /// The hash is fixed: filters written by one build are read by the next.
    #[test]
    fn the_hash_is_fnv1a() {
        assert_eq!(fnv1a(b"a", 0), 0xaf63_dc4c_8601_ec8c);
    }
}

//! The verification cache: what verifying a token yielded, kept until the validator would refuse the token
//! (its `exp` and the leeway after it) so that a client presenting the same token again skips the signature
//! check (the dominant cost of validation).
//!
//! - Keyed on the SHA-256 of the exact token text: collision resistant, so two tokens never share an
//!   entry, and 32 bytes a key whatever the token's size.
//! - Only successes are stored; a refused token is verified afresh each time.
//! - An entry is kept until a time the caller gives, and never used from then on ([`Lookup::Expired`]). The
//!   validator gives the second from which it would refuse the token, so a cached token is refused exactly
//!   when a freshly verified one would be.
//! - Bounded: when a shard is full it first drops its expired entries, then, if still above seven eighths
//!   of its capacity, the oldest insertions (FIFO). That pass costs O(capacity) and frees at least an
//!   eighth of the shard, so it runs at most once per capacity/8 insertions: O(1) amortised per insertion.
//! - Sharded by key behind plain mutexes: a hit holds a lock for a hash-map probe and an `Arc` clone, and
//!   unrelated tokens rarely meet on the same lock.

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, MutexGuard, PoisonError};

/// The SHA-256 of a token: the cache key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TokenKey([u8; 32]);

impl TokenKey {
    pub fn of(token: &str) -> TokenKey {
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, token.as_bytes());
        let mut key = [0; 32];
        key.copy_from_slice(digest.as_ref());
        TokenKey(key)
    }

    fn shard(&self, shards: usize) -> usize {
        usize::from(self.0[0]) % shards
    }
}

/// What the cache knows about a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup<V> {
    /// Verified before and not expired.
    Hit(V),
    /// Verified before, but the time it was kept until has come.
    Expired,
    /// Not in the cache.
    Miss,
}

struct Entry<V> {
    /// Until when the entry is used (Unix seconds, exclusive): for the validator, the token's `exp` and the
    /// leeway after it.
    exp: i64,
    value: V,
}

struct Shard<V> {
    entries: HashMap<TokenKey, Entry<V>>,
    /// The keys of `entries` in insertion order, oldest first.
    order: VecDeque<TokenKey>,
}

impl<V> Shard<V> {
    /// Drops expired entries; then, while above the low-water mark, the oldest ones.
    fn make_room(&mut self, now: i64, capacity: usize) {
        let Shard { entries, order } = self;
        entries.retain(|_, entry| entry.exp > now);
        order.retain(|key| entries.contains_key(key));
        let low_water = capacity - (capacity / 8).max(1);
        while entries.len() > low_water {
            let Some(oldest) = order.pop_front() else { break };
            entries.remove(&oldest);
        }
    }
}

/// A bounded map from tokens to their verification result, safe to share between tasks.
pub struct TokenCache<V> {
    shards: Box<[Mutex<Shard<V>>]>,
    shard_capacity: usize,
}

impl<V: Clone> TokenCache<V> {
    /// At most 16 shards, each of at least 256 entries (or one shard for a small cache); the shards'
    /// capacities add up to at most `capacity`. A capacity of 0 stores nothing.
    pub fn new(capacity: usize) -> TokenCache<V> {
        let shard_count = (capacity / 256).clamp(1, 16);
        let shard_capacity = capacity / shard_count;
        let shards = (0..shard_count)
            .map(|_| {
                Mutex::new(Shard {
                    entries: HashMap::with_capacity(shard_capacity.min(1024)),
                    order: VecDeque::with_capacity(shard_capacity.min(1024)),
                })
            })
            .collect();
        TokenCache { shards, shard_capacity }
    }

    /// The most entries the cache holds.
    pub fn capacity(&self) -> usize {
        self.shard_capacity * self.shards.len()
    }

    /// How many entries the cache holds now, expired ones included.
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| lock(s).entries.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The cached result for `key` at `now` (Unix seconds).
    pub fn get(&self, key: &TokenKey, now: i64) -> Lookup<V> {
        let shard = lock(&self.shards[key.shard(self.shards.len())]);
        match shard.entries.get(key) {
            Some(entry) if entry.exp > now => Lookup::Hit(entry.value.clone()),
            Some(_) => Lookup::Expired,
            None => Lookup::Miss,
        }
    }

    /// Remembers `value` for `key` until `exp` (Unix seconds). A token already expired is not stored; a key
    /// already present keeps its entry (the same token verifies to the same result).
    pub fn insert(&self, key: TokenKey, exp: i64, value: V, now: i64) {
        if self.shard_capacity == 0 || exp <= now {
            return;
        }
        let mut shard = lock(&self.shards[key.shard(self.shards.len())]);
        if shard.entries.contains_key(&key) {
            return;
        }
        if shard.entries.len() >= self.shard_capacity {
            shard.make_room(now, self.shard_capacity);
        }
        shard.entries.insert(key, Entry { exp, value });
        shard.order.push_back(key);
    }
}

/// Locks a shard. A panic while a shard was locked cannot leave it inconsistent for a reader (every
/// mutation is a single map or queue call), so a poisoned lock is used as it is.
fn lock<V>(shard: &Mutex<Shard<V>>) -> MutexGuard<'_, Shard<V>> {
    shard.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u32) -> TokenKey {
        TokenKey::of(&format!("token-{n}"))
    }

    #[test]
    fn key_is_the_sha256_of_the_exact_token() {
        assert_eq!(TokenKey::of("abc"), TokenKey::of("abc"));
        assert_ne!(TokenKey::of("abc"), TokenKey::of("abd"));
        // FIPS 180-2 test vector for "abc".
        assert_eq!(TokenKey::of("abc").0[..4], [0xba, 0x78, 0x16, 0xbf]);
    }

    #[test]
    fn cached_value_is_returned_until_its_exp() {
        let cache = TokenCache::new(10);
        cache.insert(key(1), 1000, "principal", 0);
        assert_eq!(cache.get(&key(1), 999), Lookup::Hit("principal"));
        assert_eq!(cache.get(&key(1), 1000), Lookup::Expired, "exp itself is too late (RFC 7519 §4.1.4)");
        assert_eq!(cache.get(&key(2), 0), Lookup::Miss);
    }

    #[test]
    fn expired_token_is_not_stored() {
        let cache = TokenCache::new(10);
        cache.insert(key(1), 100, (), 100);
        assert_eq!(cache.get(&key(1), 50), Lookup::Miss);
    }

    #[test]
    fn size_stays_within_capacity() {
        for capacity in [1, 7, 100, 300, 10_000] {
            let cache = TokenCache::new(capacity);
            for n in 0..(capacity as u32 * 3 + 10) {
                cache.insert(key(n), 1000, n, 0);
                assert!(cache.len() <= capacity, "capacity {capacity}: {} entries", cache.len());
            }
            assert!(!cache.is_empty());
        }
    }

    #[test]
    fn full_cache_drops_expired_entries_before_live_ones() {
        let cache = TokenCache::new(4);
        cache.insert(key(1), 1000, 1, 0);
        cache.insert(key(2), 10, 2, 0);
        cache.insert(key(3), 10, 3, 0);
        cache.insert(key(4), 1000, 4, 0);
        // At 20, entries 2 and 3 have expired; inserting a fifth drops them and keeps the oldest live one.
        cache.insert(key(5), 1000, 5, 20);
        assert_eq!(cache.get(&key(1), 20), Lookup::Hit(1));
        assert_eq!(cache.get(&key(4), 20), Lookup::Hit(4));
        assert_eq!(cache.get(&key(5), 20), Lookup::Hit(5));
        assert_eq!(cache.len(), 3);
    }

    #[test]
    fn full_cache_of_live_entries_drops_the_oldest_first() {
        let cache = TokenCache::new(8);
        for n in 0..9 {
            cache.insert(key(n), 1000, n, 0);
        }
        assert_eq!(cache.get(&key(0), 1), Lookup::Miss, "the first insertion went first");
        assert_eq!(cache.get(&key(8), 1), Lookup::Hit(8));
        assert_eq!(cache.len(), 8);
    }

    #[test]
    fn zero_capacity_stores_nothing() {
        let cache = TokenCache::new(0);
        cache.insert(key(1), 1000, (), 0);
        assert!(cache.is_empty());
        assert_eq!(cache.get(&key(1), 0), Lookup::Miss);
    }

    #[test]
    fn concurrent_inserts_and_reads_stay_bounded_and_consistent() {
        let cache = std::sync::Arc::new(TokenCache::new(1000));
        let threads: Vec<_> = (0..4u32)
            .map(|t| {
                let cache = cache.clone();
                std::thread::spawn(move || {
                    for n in 0..2000 {
                        let k = key(t * 10_000 + n);
                        cache.insert(k, 1000, t * 10_000 + n, 0);
                        if let Lookup::Hit(v) = cache.get(&k, 0) {
                            assert_eq!(v, t * 10_000 + n);
                        }
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        assert!(cache.len() <= 1000);
    }
}

//! [`Failures`]: the per-item failure counters behind the item-keyed
//! limiters, kept as keyed fingerprints in a sharded open-addressing table.
//!
//! # Why fingerprints
//!
//! A limiter only ever needs to tell items apart, never to give them back,
//! so the table stores a 96-bit keyed fingerprint of each item instead of a
//! clone of it. For `String` keys that removes an allocation per tracked
//! item, the pointer chase of every key comparison, and all dependence on
//! the key's size: an entry is 16 bytes whatever the item is.
//!
//! The fingerprint is two 64-bit hashes of the item, computed in one pass
//! ([`Lanes`]: foldhash's folded-multiply construction, twice, each lane
//! under its own keys), with keys drawn from the OS-seeded std
//! `RandomState` when the limiter is created. 96 of those bits are stored
//! and compared; 5 more pick the shard. Two different items are confused
//! only if all 101 agree: for `n` items tracked at once the chance that
//! *any* two collide is about `n² / 2^102` — about 2 × 10⁻¹³ for a billion
//! items, 2 × 10⁻¹⁹ for a million. Because the keys are secret and per
//! limiter, nobody can craft items that collide. And a collision would be
//! benign: the two items would share one failure count (one waits longer
//! than it should, or is let go sooner by the other's `forget`); nothing is
//! lost and nothing panics.
//!
//! # Why this table
//!
//! The table is split into [`SHARDS`] shards by fingerprint bits, each its
//! own cache-line-aligned mutex, so threads on different items rarely
//! contend, and growing (which holds old and new arrays for a moment) costs
//! a transient of one shard, not of the whole table.
//!
//! Each shard is bucketized linear probing: buckets of four 16-byte slots
//! (fingerprint and count), one 64-byte cache line each, so a lookup reads
//! one line (two when its home bucket overflowed). An item lives in the
//! first bucket, from its home bucket on, that had room when it was
//! inserted, in its preferred slot if that was free; the home bucket is the
//! fingerprint's top bits scaled to the bucket count (multiply-shift), so
//! any bucket count works. A slot with count 0 is empty (a tracked item
//! always has a count of at least 1), so no bits are spent on an occupancy
//! flag. Removal shifts later entries back instead of leaving tombstones,
//! so lookups never wade through dead slots and `len` is exactly the items
//! tracked. A shard doubles past a
//! load of 3/4 and shrinks to half full when under 1/8 full, so `forget`
//! returns memory: beyond a floor of two buckets a shard spends between 21
//! and 128 bytes per tracked item (at most 43 while items only arrive), and
//! growing briefly holds one shard's old and new arrays, not the table's.
//!
//! # Where the time goes
//!
//! With many items the table is far larger than the caches, so nearly every
//! `when` and `forget` waits for one cache miss (about 200 ns on its own
//! here). Calls hide it only by overlapping: the CPU runs ahead into the
//! caller's next item while the line is on its way, as far as its window
//! of instructions reaches, and every call also pays two locked
//! instructions (the shard's lock and unlock, about a fifth of a `when`).
//! So the code keeps each call short rather than clever: the fingerprint is
//! one pass over the item, the lock is the queue's (no poisoning to check),
//! and the probe branches on where it guesses the item is instead of
//! computing it (see [`Table::probe`]). Measured on W7 (a million `String`
//! keys: `when`, `when` again, `forget`): about 90 ns per operation against
//! about 470 for client-go's map behind a mutex, and a peak RSS of half of
//! client-go's.

use crate::sync::QueueMutex;
use std::hash::{BuildHasher, Hash, Hasher};
use std::marker::PhantomData;

/// How many shards a table has (a power of two). Enough that threads on
/// different items of a big machine rarely meet on a lock; few enough that
/// an idle limiter costs little (one 128-byte line each). Loom models get
/// two, to keep their state space small.
#[cfg(not(requeue_loom))]
const SHARDS: usize = 32;
#[cfg(requeue_loom)]
const SHARDS: usize = 2;

/// Slots per bucket: 4 × 16 bytes is one 64-byte cache line.
const BUCKET_SLOTS: usize = 4;

/// The fewest buckets a shard that holds anything has. At least 2, so that
/// a shard below its maximum load always has a bucket with room besides
/// any given one (removal relies on it).
const MIN_BUCKETS: usize = 2;

/// Per-item failure counters shared by the item-keyed limiters.
///
/// Keeps a keyed 96-bit fingerprint and a saturating `u32` count per item
/// (see the module docs for the collision odds). Nothing of `T` is stored,
/// so no bound beyond [`Hash`] is needed.
pub(super) struct Failures<T: ?Sized> {
    seeds: Seeds,
    // An array, not a slice: the shard index is masked to its length, so
    // indexing needs no bounds check.
    shards: Box<[Shard; SHARDS]>,
    // `fn(&T)`: items are only looked at, never owned, so `Failures` is
    // `Send + Sync` whatever `T` is.
    _item: PhantomData<fn(&T)>,
}

impl<T: ?Sized> Failures<T> {
    /// An empty table with fresh random seeds.
    pub(super) fn new() -> Self {
        Failures {
            seeds: Seeds::random(),
            shards: Box::new(std::array::from_fn(|_| Shard::default())),
            _item: PhantomData,
        }
    }

    /// How many items have a counter: exact, each shard counted under its
    /// lock (while other threads change the table, the parts are exact at
    /// the moments they are read).
    pub(super) fn len(&self) -> usize {
        self.shards.iter().map(|shard| shard.0.lock().len).sum()
    }

    /// How many slots the shards hold in all (tests check growth and shrinking).
    #[cfg(test)]
    fn capacity(&self) -> usize {
        self.shards
            .iter()
            .map(|shard| shard.0.lock().capacity())
            .sum()
    }
}

impl<T: Hash + ?Sized> Failures<T> {
    /// Counts one more failure of `item` (saturating) and returns the new count.
    pub(super) fn record(&self, item: &T) -> u32 {
        let (shard, tag) = self.seeds.fingerprint(item);
        self.shards[shard].0.lock().record(tag)
    }

    /// The current count of `item` (0 if unknown).
    pub(super) fn count(&self, item: &T) -> u32 {
        let (shard, tag) = self.seeds.fingerprint(item);
        self.shards[shard].0.lock().count(tag)
    }

    /// Drops `item`'s counter.
    pub(super) fn forget(&self, item: &T) {
        let (shard, tag) = self.seeds.fingerprint(item);
        self.shards[shard].0.lock().remove(tag);
    }

    /// Sets `item`'s count directly (tests of saturation cannot afford
    /// 4 billion `record`s). A count of 0 removes the item.
    #[cfg(test)]
    pub(super) fn set(&self, item: &T, count: u32) {
        let (shard, tag) = self.seeds.fingerprint(item);
        let mut table = self.shards[shard].0.lock();
        table.remove(tag);
        if count > 0 {
            table.record(tag);
            if let Some((b, s)) = table.find(tag) {
                table.buckets[b].count[s] = count;
            }
        }
    }
}

/// The per-limiter secret: a start value and two keys for each hash lane.
struct Seeds {
    a: LaneKeys,
    b: LaneKeys,
}

/// One lane's secret (see [`Lanes`]).
struct LaneKeys {
    start: u64,
    /// Mixed into the second word of each 16-byte block.
    block: u64,
    /// Multiplies integers in.
    int: u64,
}

impl Seeds {
    /// Seeds from std's `RandomState`, whose keys come from the OS: they
    /// differ per limiter (foldhash's own seed is per process), so a
    /// collision found in one limiter says nothing about another.
    fn random() -> Self {
        let state = std::collections::hash_map::RandomState::new();
        // As foldhash does: a few bits forced on, so that no key is near
        // zero, the weak point of a multiply.
        const FORCED_ONES: u64 = (1 << 63) | (1 << 31) | 1;
        let lane = |i: u8| LaneKeys {
            start: state.hash_one((i, 0_u8)),
            block: state.hash_one((i, 1_u8)) | FORCED_ONES,
            int: state.hash_one((i, 2_u8)) | FORCED_ONES,
        };
        Seeds {
            a: lane(0),
            b: lane(1),
        }
    }

    /// The item's shard and stored fingerprint.
    #[inline(always)]
    fn fingerprint<T: Hash + ?Sized>(&self, item: &T) -> (usize, Tag) {
        let mut lanes = Lanes {
            a: self.a.start,
            b: self.b.start,
            keys: self,
        };
        item.hash(&mut lanes);
        // Lane b's low bits pick the shard and are not stored: they add to
        // the fingerprint's width for free.
        let shard = (lanes.b as usize) & (SHARDS - 1);
        let tag = Tag {
            hi: lanes.a,
            lo: (lanes.b >> 32) as u32,
        };
        (shard, tag)
    }
}

/// Two 64-bit hashes of the same input in one pass: each lane is
/// foldhash's folded-multiply construction (the "fast" variant, which
/// hashbrown uses) under its own random keys, and both lanes share the
/// reads and branches on the input. Two separate foldhash hashers did the
/// same work twice, and every instruction in `when` counts: the table's
/// cache miss is hidden only as far as the CPU can run ahead into the next
/// item, and fewer instructions per item let it run further.
struct Lanes<'k> {
    a: u64,
    b: u64,
    keys: &'k Seeds,
}

/// The 128-bit product of `x` and `y`, its halves XORed: every input bit
/// reaches the middle bits, which end up everywhere.
#[inline(always)]
fn fold(x: u64, y: u64) -> u64 {
    let full = u128::from(x) * u128::from(y);
    (full as u64) ^ ((full >> 64) as u64)
}

/// Up to 16 bytes as two words, as foldhash reads them (overlapping; the
/// length is mixed in separately).
#[inline(always)]
fn short_words(bytes: &[u8]) -> (u64, u64) {
    let len = bytes.len();
    if let (Some(first), Some(last)) = (bytes.first_chunk::<8>(), bytes.last_chunk::<8>()) {
        (u64::from_le_bytes(*first), u64::from_le_bytes(*last))
    } else if let (Some(first), Some(last)) = (bytes.first_chunk::<4>(), bytes.last_chunk::<4>()) {
        (
            u64::from(u32::from_le_bytes(*first)),
            u64::from(u32::from_le_bytes(*last)),
        )
    } else if let (Some(&first), Some(&last)) = (bytes.first(), bytes.last()) {
        let middle = bytes[len / 2];
        (u64::from(first), u64::from(last) << 8 | u64::from(middle))
    } else {
        (0, 0)
    }
}

impl Lanes<'_> {
    /// Mixes one 16-byte block (two words) into both lanes.
    #[inline(always)]
    fn block(&mut self, x: u64, y: u64) {
        self.a = fold(x ^ self.a, y ^ self.keys.a.block);
        self.b = fold(x ^ self.b, y ^ self.keys.b.block);
    }

    /// Inputs longer than 16 bytes: 16-byte blocks, then the last 16 bytes
    /// (overlapping the block before, as foldhash does).
    #[inline(never)]
    fn write_long(&mut self, bytes: &[u8]) {
        let mut blocks = bytes.chunks_exact(16);
        for block in &mut blocks {
            let (x, y) = short_words(block);
            self.block(x, y);
        }
        if !blocks.remainder().is_empty() {
            let (x, y) = short_words(&bytes[bytes.len() - 16..]);
            self.block(x, y);
        }
    }
}

impl Hasher for Lanes<'_> {
    #[inline(always)]
    fn write(&mut self, bytes: &[u8]) {
        // A length-dependent rotation first, as foldhash does: the reads
        // overlap, so the length must enter on its own.
        let len = bytes.len();
        self.a = self.a.rotate_right(len as u32);
        self.b = self.b.rotate_right(len as u32);
        if len <= 16 {
            let (x, y) = short_words(bytes);
            self.block(x, y);
        } else {
            self.write_long(bytes);
        }
    }
    #[inline(always)]
    fn write_u8(&mut self, i: u8) {
        self.write_u64(u64::from(i));
    }
    #[inline(always)]
    fn write_u16(&mut self, i: u16) {
        self.write_u64(u64::from(i));
    }
    #[inline(always)]
    fn write_u32(&mut self, i: u32) {
        self.write_u64(u64::from(i));
    }
    #[inline(always)]
    fn write_u64(&mut self, i: u64) {
        self.a = fold(self.a ^ i, self.keys.a.int);
        self.b = fold(self.b ^ i, self.keys.b.int);
    }
    #[inline(always)]
    fn write_u128(&mut self, i: u128) {
        self.block(i as u64, (i >> 64) as u64);
    }
    #[inline(always)]
    fn write_usize(&mut self, i: usize) {
        self.write_u64(i as u64);
    }
    fn finish(&self) -> u64 {
        // Unused: `Seeds::fingerprint` reads both lanes.
        self.a
    }
}

/// The stored 96 bits of an item's fingerprint.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
struct Tag {
    /// Also places the item: its top bits pick the home bucket.
    hi: u64,
    lo: u32,
}

/// One shard: a table behind its own lock, alone on its cache lines so
/// that threads locking neighbouring shards do not slow each other down
/// (128 bytes: x86 prefetches cache lines in pairs).
///
/// The lock is the work queue's ([`QueueMutex`]): no poisoning to check
/// (nothing here can panic midway anyway), which takes a dozen
/// instructions off every call (see the module docs on why that counts).
#[repr(align(128))]
struct Shard(QueueMutex<Table>);

impl Default for Shard {
    fn default() -> Self {
        Shard(QueueMutex::new(Table::default()))
    }
}

/// One tracked item (or, with `count == 0`, an empty slot).
#[derive(Clone, Copy)]
struct Slot {
    hi: u64,
    lo: u32,
    count: u32,
}

impl Slot {
    const EMPTY: Slot = Slot {
        hi: 0,
        lo: 0,
        count: 0,
    };
}

/// Four slots on one cache line, stored field by field: the four counts
/// side by side are one 16-byte word, so "which slots are free" is a
/// single vector compare, not four (a sixth fewer instructions per insert).
#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct Bucket {
    hi: [u64; BUCKET_SLOTS],
    lo: [u32; BUCKET_SLOTS],
    count: [u32; BUCKET_SLOTS],
}

impl Bucket {
    const EMPTY: Bucket = Bucket {
        hi: [0; BUCKET_SLOTS],
        lo: [0; BUCKET_SLOTS],
        count: [0; BUCKET_SLOTS],
    };

    #[inline(always)]
    fn slot(&self, i: usize) -> Slot {
        Slot {
            hi: self.hi[i],
            lo: self.lo[i],
            count: self.count[i],
        }
    }

    #[inline(always)]
    fn put(&mut self, i: usize, slot: Slot) {
        self.hi[i] = slot.hi;
        self.lo[i] = slot.lo;
        self.count[i] = slot.count;
    }

    /// Bit `i` is set if slot `i` is empty.
    #[inline(always)]
    fn vacant(&self) -> u32 {
        let mut mask = 0;
        for (i, &count) in self.count.iter().enumerate() {
            mask |= u32::from(count == 0) << i;
        }
        mask
    }

    #[inline(always)]
    fn is_full(&self) -> bool {
        self.vacant() == 0
    }
}

/// The lowest set bit of a non-zero slot mask, as a slot index.
#[inline(always)]
fn first(mask: u32) -> usize {
    (mask.trailing_zeros() as usize) & (BUCKET_SLOTS - 1)
}

/// The slot an item goes in when it is free: two fingerprint bits, so that
/// a lookup can try the one slot most likely to hold the item first.
#[inline(always)]
fn preferred_slot(lo: u32) -> usize {
    lo as usize & (BUCKET_SLOTS - 1)
}

/// The free slot to use from a non-zero mask of free slots: the preferred
/// one if it is free, else the first.
#[inline(always)]
fn choose(vacant: u32, preferred: usize) -> usize {
    if vacant & (1 << preferred) != 0 {
        preferred
    } else {
        first(vacant)
    }
}

/// A shard's open-addressing table (see the module docs).
///
/// Invariant: an entry in bucket `p` whose home is bucket `h` finds every
/// bucket from `h` up to (not including) `p`, cyclically, full. So a lookup
/// may stop at the first bucket with an empty slot, and that bucket is
/// where an absent item goes.
#[derive(Default)]
struct Table {
    /// Empty until the first insert: an idle shard allocates nothing.
    /// One slot per item that failed since it was last forgotten, at a
    /// load between 1/8 and 3/4 (it shrinks as `forget` empties it): the
    /// caller's `forget` bounds it, exactly as it bounds client-go's
    /// `failures` map, and an entry is 16 bytes whatever the item.
    buckets: Vec<Bucket>,
    /// How many slots hold an item.
    len: usize,
}

impl Table {
    fn capacity(&self) -> usize {
        self.buckets.len() * BUCKET_SLOTS
    }

    /// The most items `buckets` buckets hold before growing: 3/4 full.
    /// Always below the slot count, so some bucket always has room. (7/8
    /// saves memory but makes probes and removals run into full buckets
    /// about twice as often: measured 5-10 % slower on W7.)
    #[inline]
    fn max_len(buckets: usize) -> usize {
        buckets * BUCKET_SLOTS * 3 / 4
    }

    /// The home bucket of `hi` among `buckets`: its top bits, scaled
    /// (multiply-shift instead of a modulo, so any count works).
    #[inline]
    fn home(hi: u64, buckets: usize) -> usize {
        ((u128::from(hi) * buckets as u128) >> 64) as usize
    }

    /// Where `tag` is: `Ok((bucket, slot))` if present, else
    /// `Err(Some((bucket, slot)))` with the free slot it would go in
    /// (`Err(None)` if there are no buckets at all).
    ///
    /// This is where a call waits for its cache miss, so it is written for
    /// the CPU to guess well (see the comments inside).
    #[inline(always)]
    fn probe(&self, tag: Tag) -> Result<(usize, usize), Option<(usize, usize)>> {
        let n = self.buckets.len();
        if n == 0 {
            return Err(None);
        }
        let mut b = Self::home(tag.hi, n);
        let preferred = preferred_slot(tag.lo);
        loop {
            // Branches, on purpose: while the bucket's cache line is on its
            // way the CPU guesses where the item is and runs ahead on that
            // guess (into the caller's next item); a branch-free match
            // leaves it waiting (measured: 20 % slower). The item's
            // preferred slot comes first: most items sit there, so the
            // guess is right more often (measured: 15 % faster lookups).
            let bucket = &self.buckets[b];
            let holds = |s: usize| {
                // `hi` first: it alone almost always decides.
                bucket.hi[s] == tag.hi && bucket.lo[s] == tag.lo && bucket.count[s] != 0
            };
            if holds(preferred) {
                return Ok((b, preferred));
            }
            for s in 0..BUCKET_SLOTS {
                if s != preferred && holds(s) {
                    return Ok((b, s));
                }
            }
            let vacant = bucket.vacant();
            if vacant != 0 {
                return Err(Some((b, choose(vacant, preferred))));
            }
            b += 1;
            if b == n {
                b = 0;
            }
        }
    }

    #[cfg(test)]
    fn find(&self, tag: Tag) -> Option<(usize, usize)> {
        self.probe(tag).ok()
    }

    /// Counts one more failure of `tag`, inserting it at 1 if absent.
    #[inline]
    fn record(&mut self, tag: Tag) -> u32 {
        match self.probe(tag) {
            Ok((b, s)) => {
                let count = &mut self.buckets[b].count[s];
                *count = count.saturating_add(1);
                *count
            }
            Err(place) => {
                let (b, s) = match place {
                    Some(free) if self.len < Self::max_len(self.buckets.len()) => free,
                    _ => {
                        self.grow();
                        self.vacancy(tag.hi, tag.lo)
                    }
                };
                self.buckets[b].put(
                    s,
                    Slot {
                        hi: tag.hi,
                        lo: tag.lo,
                        count: 1,
                    },
                );
                self.len += 1;
                1
            }
        }
    }

    #[inline]
    fn count(&self, tag: Tag) -> u32 {
        match self.probe(tag) {
            Ok((b, s)) => self.buckets[b].count[s],
            Err(_) => 0,
        }
    }

    /// Removes `tag` if present, then shrinks if the table became mostly empty.
    #[inline]
    fn remove(&mut self, tag: Tag) {
        if let Ok((b, s)) = self.probe(tag) {
            self.remove_at(b, s);
            if self.buckets.len() > MIN_BUCKETS && self.len < self.capacity() / 8 {
                self.shrink();
            }
        }
    }

    /// The first free slot from `hi`'s home bucket on (there is one: the
    /// table is never full).
    fn vacancy(&self, hi: u64, lo: u32) -> (usize, usize) {
        let n = self.buckets.len();
        let mut b = Self::home(hi, n);
        loop {
            let vacant = self.buckets[b].vacant();
            if vacant != 0 {
                return (b, choose(vacant, preferred_slot(lo)));
            }
            b += 1;
            if b == n {
                b = 0;
            }
        }
    }

    /// Empties slot `s` of bucket `b` and restores the invariant by moving
    /// later entries back into the hole (no tombstones).
    fn remove_at(&mut self, b: usize, s: usize) {
        let n = self.buckets.len();
        // If the bucket already had room, no later entry relies on it being full.
        let was_full = self.buckets[b].is_full();
        self.buckets[b].put(s, Slot::EMPTY);
        self.len -= 1;
        if !was_full {
            return;
        }
        let (mut hole_b, mut hole_s) = (b, s);
        let mut q = b;
        loop {
            q += 1;
            if q == n {
                q = 0;
            }
            // `q` never wraps round to the hole: that would need every
            // other bucket full, and the table full before the removal.
            let bucket = self.buckets[q];
            // How many buckets forward from `from` to `q` (no `%`: a division
            // per slot would cost more than the rest of the loop).
            let distance = |from: usize| {
                let d = q + n - from;
                if d >= n { d - n } else { d }
            };
            let to_hole = distance(hole_b);
            // An entry whose probe from its home passed the hole's bucket
            // now finds that bucket with room: one of them moves into it.
            let mut movable = 0;
            for i in 0..BUCKET_SLOTS {
                let passed = distance(Self::home(bucket.hi[i], n)) >= to_hole;
                movable |= u32::from((bucket.count[i] != 0) & passed) << i;
            }
            if movable != 0 {
                let m = first(movable);
                self.buckets[hole_b].put(hole_s, bucket.slot(m));
                self.buckets[q].put(m, Slot::EMPTY);
                (hole_b, hole_s) = (q, m);
            }
            // Past a bucket that had room, no entry relies on anything before it.
            if !bucket.is_full() {
                return;
            }
        }
    }

    /// Doubles (to [`MIN_BUCKETS`] from nothing). Growing by half would
    /// save memory but move every entry twice as often.
    #[cold]
    fn grow(&mut self) {
        let n = self.buckets.len();
        self.rebuild((n * 2).max(MIN_BUCKETS));
    }

    /// Shrinks to about half full.
    #[cold]
    fn shrink(&mut self) {
        let wanted = (self.len * 2).div_ceil(BUCKET_SLOTS);
        self.rebuild(wanted.max(MIN_BUCKETS));
    }

    /// Moves every entry into a fresh array of `buckets` buckets. The old
    /// array is read in bucket order, which is nearly home order, so the
    /// new one is written nearly sequentially.
    fn rebuild(&mut self, buckets: usize) {
        debug_assert!(self.len <= Self::max_len(buckets));
        let old = std::mem::replace(&mut self.buckets, vec![Bucket::EMPTY; buckets]);
        for bucket in &old {
            for i in 0..BUCKET_SLOTS {
                if bucket.count[i] != 0 {
                    let (b, s) = self.vacancy(bucket.hi[i], bucket.lo[i]);
                    self.buckets[b].put(s, bucket.slot(i));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sync::Arc;

    fn tag(hi: u64, lo: u32) -> Tag {
        Tag { hi, lo }
    }

    /// Checks the probing invariant and the length of a table.
    fn check(table: &Table) {
        let n = table.buckets.len();
        let mut len = 0;
        for (p, bucket) in table.buckets.iter().enumerate() {
            for i in 0..BUCKET_SLOTS {
                let slot = bucket.slot(i);
                if slot.count == 0 {
                    continue;
                }
                len += 1;
                let mut b = Table::home(slot.hi, n);
                while b != p {
                    assert!(table.buckets[b].is_full(), "gap before an entry");
                    b = (b + 1) % n;
                }
                assert_eq!(table.find(tag(slot.hi, slot.lo)), Some((p, i)));
            }
        }
        assert_eq!(len, table.len);
        assert!(n == 0 || len <= Table::max_len(n));
    }

    #[test]
    fn table_counts_removes_and_keeps_its_invariant_through_growth_and_shrinking() {
        let mut table = Table::default();
        assert_eq!(table.count(tag(1, 1)), 0);
        table.remove(tag(1, 1));
        assert_eq!(table.capacity(), 0);
        // One tag in 25 has its home in the last bucket: that cluster wraps
        // round to the first buckets, and removals shift entries back
        // across the end of the array.
        let tags: Vec<Tag> = (0..20_000_u64)
            .map(|i| {
                let hi = if i % 25 == 0 {
                    u64::MAX - i
                } else {
                    i.wrapping_mul(0x9E37_79B9_7F4A_7C15)
                };
                tag(hi, i as u32)
            })
            .collect();
        for (i, &t) in tags.iter().enumerate() {
            assert_eq!(table.record(t), 1);
            if i % 4 == 0 {
                assert_eq!(table.record(t), 2);
            }
            if i % 1000 == 0 {
                check(&table);
            }
        }
        check(&table);
        assert_eq!(table.len, tags.len());
        let grown = table.capacity();
        assert!(grown > tags.len() && grown < tags.len() * 3, "{grown}");
        for (i, &t) in tags.iter().enumerate() {
            assert_eq!(table.count(t), if i % 4 == 0 { 2 } else { 1 });
        }
        // Same `hi`, other `lo`: a different item.
        assert_eq!(table.count(tag(tags[1].hi, 99_999)), 0);
        for (i, &t) in tags.iter().enumerate().rev() {
            table.remove(t);
            table.remove(t);
            assert_eq!(table.count(t), 0);
            if i % 997 == 0 {
                check(&table);
                // Every entry left is still found after the shifts.
                for &left in &tags[..i] {
                    assert_ne!(table.count(left), 0);
                }
            }
        }
        check(&table);
        assert_eq!(table.len, 0);
        assert_eq!(table.capacity(), MIN_BUCKETS * BUCKET_SLOTS);
    }

    #[test]
    fn table_removal_in_random_order_keeps_every_other_entry() {
        let mut rng = fastrand::Rng::with_seed(7);
        let mut table = Table::default();
        let mut model = std::collections::HashMap::new();
        // A pool of 2,000 `hi`s, one in ten homed in the last bucket (a
        // cluster that wraps), each with three `lo`s: the same items come
        // and go many times.
        let pool: Vec<u64> = (0..2_000)
            .map(|i| {
                if i % 10 == 0 {
                    u64::MAX - rng.u64(0..1 << 40)
                } else {
                    rng.u64(..)
                }
            })
            .collect();
        for step in 0..200_000_u32 {
            let t = tag(pool[rng.usize(..pool.len())], rng.u32(0..3));
            if rng.u8(0..3) == 0 {
                table.remove(t);
                model.remove(&(t.hi, t.lo));
            } else {
                let entry = model.entry((t.hi, t.lo)).or_insert(0);
                *entry += 1;
                assert_eq!(table.record(t), *entry);
            }
            if step % 20_000 == 0 {
                check(&table);
                assert_eq!(table.len, model.len());
            }
        }
        check(&table);
        assert_eq!(table.len, model.len());
    }

    #[test]
    fn failures_grow_then_forget_frees_the_memory() {
        let failures = Failures::<String>::new();
        assert_eq!(failures.capacity(), 0);
        let keys: Vec<String> = (0..100_000)
            .map(|i| format!("ns-{}/obj-{i}", i % 100))
            .collect();
        for key in &keys {
            assert_eq!(failures.record(key), 1);
        }
        assert_eq!(failures.len(), keys.len());
        let grown = failures.capacity();
        // At most 3/4 full, and each shard at least 3/8 full (give or take a bucket).
        assert!(grown > keys.len() && grown < keys.len() * 3, "{grown}");
        for key in &keys {
            assert_eq!(failures.record(key), 2);
        }
        for key in &keys[..90_000] {
            failures.forget(key);
        }
        assert_eq!(failures.len(), 10_000);
        // Each shard shrank to half full once under 1/8 full.
        assert!(failures.capacity() < grown / 3, "{}", failures.capacity());
        for key in &keys[90_000..] {
            assert_eq!(failures.count(key), 2);
        }
        for key in &keys[90_000..] {
            failures.forget(key);
        }
        assert_eq!(failures.len(), 0);
        assert!(failures.capacity() <= SHARDS * MIN_BUCKETS * BUCKET_SLOTS);
        assert_eq!(failures.count(&keys[0]), 0);
    }

    #[test]
    fn two_million_distinct_keys_never_share_a_count() {
        // A deterministic sample: with 101 fingerprint bits the odds of any
        // collision here are about 2^-60, so a failure means a broken hash.
        let failures = Failures::<String>::new();
        let n = 2_000_000_u32;
        for i in 0..n {
            assert_eq!(failures.record(&format!("ns-{}/obj-{i}", i % 100)), 1);
        }
        assert_eq!(failures.len(), n as usize);
        let numbers = Failures::<u64>::new();
        for i in 0..u64::from(n) {
            assert_eq!(numbers.record(&i), 1);
        }
        assert_eq!(numbers.len(), n as usize);
    }

    #[test]
    fn near_identical_items_get_distinct_fingerprints() {
        let seeds = Seeds::random();
        let mut seen = std::collections::HashSet::new();
        // Every length up to 48 bytes (the short, medium and long paths of
        // `Lanes::write`), and every one-bit change of each.
        let base: Vec<u8> = (0..48_u8).map(|i| b'a' + i % 26).collect();
        for len in 0..=base.len() {
            assert!(seen.insert(seeds.fingerprint(&base[..len])));
            for bit in 0..len * 8 {
                let mut item = base[..len].to_vec();
                item[bit / 8] ^= 1 << (bit % 8);
                assert!(seen.insert(seeds.fingerprint(&item[..])), "{len} {bit}");
            }
        }
        // Pairs both ways round, and integers that differ only in their
        // high or only in their low half. (Integers are widened to 64 bits
        // first, as foldhash's sponge also makes `1_u32` and `1_u64` alike:
        // the items of one limiter are all of one type.)
        let mut pairs = std::collections::HashSet::new();
        for a in 0..=255_u8 {
            for b in 0..=255_u8 {
                assert!(pairs.insert(seeds.fingerprint(&(a, b))));
            }
        }
        let mut numbers = std::collections::HashSet::new();
        for i in 0..100_000_u32 {
            assert!(numbers.insert(seeds.fingerprint(&i)));
            assert!(numbers.insert(seeds.fingerprint(&(u64::from(i) << 32 | 0xffff_ffff))));
        }
    }

    #[test]
    fn fingerprints_spread_items_evenly_over_shards() {
        let seeds = Seeds::random();
        let n = 320_000;
        let mut per_shard = [0_usize; SHARDS];
        for i in 0..n {
            per_shard[seeds.fingerprint(&format!("ns-{}/obj-{i}", i % 100)).0] += 1;
        }
        let mean = n / SHARDS;
        for count in per_shard {
            // The standard deviation is about 100: 10 % is 10 of them.
            assert!(count.abs_diff(mean) < mean / 10, "{per_shard:?}");
        }
    }

    #[test]
    fn equal_items_share_a_count_and_limiters_have_their_own_seeds() {
        let a = Failures::<str>::new();
        let b = Failures::<str>::new();
        assert_eq!(a.record("x"), 1);
        assert_eq!(a.record(&String::from("x")), 2);
        assert_eq!(b.count("x"), 0);
        assert_ne!(a.seeds.fingerprint("x").1, b.seeds.fingerprint("x").1);
    }

    #[test]
    fn saturated_counts_stay_at_the_maximum() {
        let failures = Failures::<u32>::new();
        failures.set(&5, u32::MAX - 1);
        assert_eq!(failures.record(&5), u32::MAX);
        assert_eq!(failures.record(&5), u32::MAX);
        assert_eq!(failures.count(&5), u32::MAX);
        assert_eq!(failures.len(), 1);
        failures.forget(&5);
        assert_eq!(failures.len(), 0);
        assert_eq!(failures.record(&5), 1);
    }

    #[test]
    fn concurrent_updates_on_shared_and_own_keys_are_all_counted() {
        let failures = Arc::new(Failures::<(usize, u32)>::new());
        let threads = 8;
        let rounds = 2_000_u32;
        std::thread::scope(|scope| {
            for t in 0..threads {
                let failures = &failures;
                scope.spawn(move || {
                    for r in 0..rounds {
                        // Shared keys: every thread counts each once per round.
                        failures.record(&(usize::MAX, r % 16));
                        // Own keys: inserted, counted twice, some forgotten.
                        assert_eq!(failures.record(&(t, r)), 1);
                        assert_eq!(failures.record(&(t, r)), 2);
                        if r % 2 == 0 {
                            failures.forget(&(t, r));
                        }
                    }
                });
            }
        });
        for k in 0..16 {
            assert_eq!(
                failures.count(&(usize::MAX, k)),
                threads as u32 * rounds / 16
            );
        }
        for t in 0..threads {
            for r in 0..rounds {
                assert_eq!(failures.count(&(t, r)), if r % 2 == 0 { 0 } else { 2 });
            }
        }
        assert_eq!(failures.len(), 16 + threads * rounds as usize / 2);
        std::thread::scope(|scope| {
            for t in 0..threads {
                let failures = &failures;
                scope.spawn(move || {
                    for r in 0..rounds {
                        failures.forget(&(t, r));
                    }
                });
            }
        });
        assert_eq!(failures.len(), 16);
    }
}

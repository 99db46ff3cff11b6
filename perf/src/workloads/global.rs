//! `global`: an ordinary program's allocations, for comparing
//! `#[global_allocator]`s.
//!
//! The same program is built once per allocator (the `global_*` binaries,
//! driven by `scripts/global-alloc-bench`); each runs [`run`] once and
//! prints a line from [`report`]: wall time, peak resident memory and the
//! checksum, which must be the same for every allocator.
//!
//! Each thread runs [`ROUNDS`] rounds. A round builds [`MAPS_PER_ROUND`]
//! maps of `scale` entries each:
//!
//! - a `HashMap<String, Vec<u8>>`: keys of 8 to 40 bytes, values of 16 to
//!   600 bytes, so allocations fall on both sides of 256 bytes (the
//!   largest size class of `SlabAllocator::new_in`; larger ones go to its
//!   fallback), and the table itself grows by doubling;
//! - a `BTreeMap<u64, String>`: B-tree nodes, and strings of 8 to 40 bytes;
//! - a `Vec<u32>` grown one push at a time (every capacity from 4 to
//!   `scale`).
//!
//! Half the values are allocated at their exact size, half grown by
//! appending pieces (reallocation across classes). Then a quarter of each
//! surviving map from the round before is replaced (frees and allocations
//! interleaved with older memory), those survivors are read and dropped,
//! half of this round's maps are read and dropped, and the other half
//! survive into the next round. At the end everything is dropped.
//!
//! Sizes come from [`SplitMix64`] with a seed per thread, and the hash
//! maps use SipHash with fixed keys, so every run makes the same
//! allocations (threads interleave differently, nothing else changes).

use std::collections::{BTreeMap, HashMap};
use std::hash::{BuildHasherDefault, DefaultHasher};
use std::thread;
use std::time::Instant;

use super::SplitMix64;
use crate::SEED;

/// Threads [`report`] runs when not told otherwise.
pub const DEFAULT_THREADS: usize = 2;
/// Entries per map [`report`] builds when not told otherwise.
pub const DEFAULT_SCALE: usize = 10_000;
/// Rounds each thread runs.
pub const ROUNDS: usize = 8;
/// Maps built per round (and thread); half survive into the next round.
pub const MAPS_PER_ROUND: usize = 4;

/// A hash map with a fixed hasher: the same table layout in every run.
type FixedHashMap<K, V> = HashMap<K, V, BuildHasherDefault<DefaultHasher>>;

/// One map of a round: a hash map, a B-tree and a grown vector.
struct Maps {
    table: FixedHashMap<String, Vec<u8>>,
    tree: BTreeMap<u64, String>,
    log: Vec<u32>,
}

/// A string of 8 to 40 ASCII letters.
fn key(rng: &mut SplitMix64) -> String {
    let len = 8 + rng.below(33);
    let mut s = String::with_capacity(len);
    let mut bits = rng.next_u64();
    for i in 0..len {
        if i % 12 == 11 {
            bits = rng.next_u64();
        }
        s.push(char::from(b'a' + (bits % 26) as u8));
        bits /= 26;
    }
    s
}

/// A vector of 16 to 600 bytes: exact-size or grown piece by piece.
fn value(rng: &mut SplitMix64) -> Vec<u8> {
    let len = 16 + rng.below(585);
    let byte = rng.next_u64() as u8;
    if rng.next_u64() & 1 == 0 {
        vec![byte; len]
    } else {
        let mut v = Vec::new();
        while v.len() < len {
            let piece = (1 + rng.below(64)).min(len - v.len());
            v.extend(std::iter::repeat_n(byte, piece));
        }
        v
    }
}

/// The checksum of a key or value: its length and its first and last
/// bytes.
fn bytes_sum(bytes: &[u8]) -> u64 {
    let ends =
        bytes.first().map_or(0, |&b| u64::from(b)) << 8 | bytes.last().map_or(0, |&b| u64::from(b));
    (bytes.len() as u64) ^ (ends << 16)
}

impl Maps {
    /// `entries` entries of each kind.
    fn build(rng: &mut SplitMix64, entries: usize) -> Self {
        let mut table = FixedHashMap::default();
        let mut tree = BTreeMap::new();
        let mut log = Vec::new();
        for i in 0..entries {
            table.insert(key(rng), value(rng));
            tree.insert(rng.next_u64(), key(rng));
            log.push(i as u32);
        }
        Self { table, tree, log }
    }

    /// Replaces about a quarter of the entries of each kind with new ones.
    fn churn(&mut self, rng: &mut SplitMix64) {
        let old_keys: Vec<String> = self
            .table
            .keys()
            .filter(|k| k.len() % 4 == 0)
            .cloned()
            .collect();
        for k in &old_keys {
            self.table.remove(k);
            self.table.insert(key(rng), value(rng));
        }
        let old_tree: Vec<u64> = self.tree.keys().copied().filter(|k| k % 4 == 0).collect();
        for k in old_tree {
            self.tree.remove(&k);
            self.tree.insert(rng.next_u64(), key(rng));
        }
        self.log.truncate(self.log.len() * 3 / 4);
        self.log.shrink_to_fit();
        self.log.extend(0..old_keys.len() as u32);
    }

    /// Reads every entry back, order-independently, and drops the maps.
    fn checksum(self) -> u64 {
        let mut sum = 0u64;
        for (k, v) in &self.table {
            sum = sum
                .wrapping_add(bytes_sum(k.as_bytes()))
                .wrapping_add(bytes_sum(v).rotate_left(24));
        }
        for (k, v) in &self.tree {
            sum = sum.wrapping_add(k ^ bytes_sum(v.as_bytes()));
        }
        let log = self
            .log
            .iter()
            .fold(0u64, |s, &x| s.wrapping_add(u64::from(x)));
        sum.wrapping_add(log.rotate_left(40))
    }
}

/// One thread's rounds; returns its checksum.
fn worker(thread: usize, scale: usize) -> u64 {
    let mut rng = SplitMix64::new(SEED ^ (thread as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15));
    let mut survivors: Vec<Maps> = Vec::new();
    let mut sum = 0u64;
    for _ in 0..ROUNDS {
        let maps: Vec<Maps> = (0..MAPS_PER_ROUND)
            .map(|_| Maps::build(&mut rng, scale))
            .collect();
        for old in &mut survivors {
            old.churn(&mut rng);
        }
        for old in survivors.drain(..) {
            sum = sum.wrapping_add(old.checksum());
        }
        // Every other map dies now, the rest live through the next round.
        for (i, map) in maps.into_iter().enumerate() {
            if i % 2 == 0 {
                sum = sum.wrapping_add(map.checksum());
            } else {
                survivors.push(map);
            }
        }
    }
    for old in survivors {
        sum = sum.wrapping_add(old.checksum());
    }
    sum
}

/// Runs the workload on `threads` threads with maps of `scale` entries;
/// returns the sum of the threads' checksums (the same in every run with
/// the same arguments, whatever the allocator).
pub fn run(threads: usize, scale: usize) -> u64 {
    thread::scope(|s| {
        let workers: Vec<_> = (0..threads)
            .map(|t| s.spawn(move || worker(t, scale)))
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().expect("worker panicked"))
            .fold(0u64, u64::wrapping_add)
    })
}

/// The process's peak resident memory so far, in KiB (`ru_maxrss`).
pub fn peak_rss_kib() -> u64 {
    // SAFETY: all-zero bytes are a valid `rusage` (integers and `timeval`s).
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `usage` is a valid, writable `rusage` for the call to fill.
    let status = unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    assert_eq!(status, 0, "getrusage failed");
    // Linux reports kilobytes (macOS would report bytes).
    u64::try_from(usage.ru_maxrss).expect("ru_maxrss is not negative")
}

/// The body of a `global_*` binary: runs the workload once, timed, and
/// prints `NAME wall_ms=… peak_rss_kib=… checksum=…`.
///
/// Arguments: `[THREADS [SCALE]]`, defaulting to [`DEFAULT_THREADS`] and
/// [`DEFAULT_SCALE`].
pub fn report(name: &str) {
    let mut args = std::env::args().skip(1);
    let mut number = |default: usize, what: &str| {
        args.next().map_or(default, |a| {
            a.parse()
                .unwrap_or_else(|_| panic!("{what} must be a number, not {a:?}"))
        })
    };
    let threads = number(DEFAULT_THREADS, "THREADS");
    let scale = number(DEFAULT_SCALE, "SCALE");
    let start = Instant::now();
    let checksum = run(threads, scale);
    let wall = start.elapsed();
    println!(
        "{name} wall_ms={:.1} peak_rss_kib={} checksum={checksum}",
        wall.as_secs_f64() * 1e3,
        peak_rss_kib()
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_gives_the_same_checksum_twice() {
        let first = run(2, 200);
        assert_ne!(first, 0);
        assert_eq!(run(2, 200), first);
        assert_ne!(run(1, 200), first, "each thread adds its own part");
    }

    #[test]
    fn sizes_fall_on_both_sides_of_256_bytes() {
        let mut rng = SplitMix64::new(1);
        let lens: Vec<usize> = (0..1_000).map(|_| value(&mut rng).len()).collect();
        assert!(lens.iter().all(|l| (16..=600).contains(l)));
        assert!(lens.iter().any(|&l| l <= 256) && lens.iter().any(|&l| l > 256));
        let keys: Vec<usize> = (0..1_000).map(|_| key(&mut rng).len()).collect();
        assert!(keys.iter().all(|l| (8..=40).contains(l)));
    }
}

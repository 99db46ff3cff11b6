//! A whole std program running on `SlabAllocator` as its `#[global_allocator]`.
//!
//! What this teaches:
//!
//! - installing a `SlabAllocator` as the program's global allocator, with its
//!   pages cut from 256 KiB chunks (`ChunkedPages`) taken from
//!   `std::alloc::System` through `GlobalAllocPages` (taking them from the
//!   global allocator, i.e. from itself, would recurse; a `System`
//!   allocation per 4 KiB page would cost about twice the memory);
//! - `System` as the fallback too: requests larger than 256 bytes (a growing
//!   `Vec`'s buffer, say) go straight to it;
//! - ordinary code — `Vec`, `String`, `BTreeMap`, threads — needs no change;
//! - `HEAP.stats()` shows where every live allocation is, fallback included.
//!
//! Run it with:
//!
//! ```text
//! cargo run --example global_allocator
//! ```

use std::alloc::System;
use std::collections::BTreeMap;

use minimal_slab::typenum::U262144;
use minimal_slab::{ChunkedPages, GlobalAllocPages, SlabAllocator};

/// Every `Box`, `Vec`, `String`, … of this program comes from here: size
/// classes of 8 to 256 bytes on 4 KiB pages cut from 256 KiB chunks of
/// `System`, and `System` for anything larger.
#[global_allocator]
static HEAP: SlabAllocator<ChunkedPages<GlobalAllocPages<System, U262144>>, System> =
    SlabAllocator::new_in(
        ChunkedPages::new(GlobalAllocPages::with_page_size(System)),
        System,
    );

const WORDS: [&str; 12] = [
    "slab", "page", "slot", "cache", "free", "list", "object", "size", "class", "header",
    "pointer", "lock",
];

/// A small deterministic pseudo-random generator (xorshift64*), so the text
/// and therefore the counts are the same on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

/// Generates `n` words of text: each a word from `WORDS`, sometimes with a
/// number glued on, so there are many distinct keys of various lengths.
fn generate_text(seed: u64, n: usize) -> String {
    let mut rng = Rng(seed);
    let mut text = String::new();
    for i in 0..n {
        let r = rng.next();
        let word = WORDS[(r % WORDS.len() as u64) as usize];
        if i > 0 {
            text.push(' ');
        }
        text.push_str(word);
        if r.is_multiple_of(5) {
            text.push_str(&format!("{}", (r >> 32) % 500));
        }
    }
    text
}

/// Counts the words of `text`. Every key is a fresh `String` (a small
/// allocation) and the tree's nodes are allocations too.
fn word_counts(text: &str) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for word in text.split(' ') {
        *counts.entry(word.to_string()).or_insert(0) += 1;
    }
    counts
}

fn main() {
    const WORDS_PER_THREAD: usize = 200_000;
    println!("== before any work ==");
    println!(
        "  objects in use: {}, pages: {}, fallback allocations: {}",
        HEAP.stats().objects_in_use(),
        HEAP.stats().pages(),
        HEAP.stats().fallback_allocations
    );

    // Two threads, each generating text and counting its words. Everything
    // they allocate — the text, the keys, the tree nodes, the thread's own
    // bookkeeping — goes through HEAP.
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(|| word_counts(&generate_text(1, WORDS_PER_THREAD)));
        let b = s.spawn(|| word_counts(&generate_text(2, WORDS_PER_THREAD)));
        (a.join().unwrap(), b.join().unwrap())
    });

    // Check the results: every word was counted once.
    let total_a: usize = a.values().sum();
    let total_b: usize = b.values().sum();
    println!("\n== results ==");
    println!(
        "  thread 1: {total_a} words, {} distinct; thread 2: {total_b} words, {} distinct",
        a.len(),
        b.len()
    );
    assert_eq!(total_a, WORDS_PER_THREAD);
    assert_eq!(total_b, WORDS_PER_THREAD);

    // Merge the two maps and show the most frequent words.
    let mut merged = a;
    for (word, n) in b {
        *merged.entry(word).or_insert(0) += n;
    }
    {
        // Scoped, so these temporary vectors are freed before the stats below.
        let mut by_count: Vec<(&String, &usize)> = merged.iter().collect();
        by_count.sort_by(|x, y| y.1.cmp(x.1).then(x.0.cmp(y.0)));
        let top: Vec<String> = by_count
            .iter()
            .take(5)
            .map(|(w, n)| format!("{w}={n}"))
            .collect();
        println!("  top words: {}", top.join(", "));
    }
    assert_eq!(merged.values().sum::<usize>(), 2 * WORDS_PER_THREAD);

    // While the merged map is alive, its keys and nodes are in size classes.
    let live = HEAP.stats();
    println!(
        "\n== HEAP.stats() with the merged map ({} keys) alive ==",
        merged.len()
    );
    print!("{live}");
    println!(
        "  total: {} objects in {} pages ({} KiB), {} bytes of slab headers",
        live.objects_in_use(),
        live.pages(),
        live.bytes_held() / 1024,
        live.header_bytes()
    );
    assert!(live.objects_in_use() >= merged.len());

    // Drop it: the slots go back, and emptied slabs beyond the reserve of
    // two per class go back to System.
    drop(merged);
    let after = HEAP.stats();
    println!("\n== HEAP.stats() after dropping the map ==");
    print!("{after}");
    println!(
        "  total: {} objects in {} pages ({} KiB)",
        after.objects_in_use(),
        after.pages(),
        after.bytes_held() / 1024
    );
}

//! What one length word shared by allocation and free costs a pair, as a
//! model of a per-thread magazine, outside the crate.
//!
//! ```sh
//! cargo run -p minimal_slab_perf --release --bin length_chain
//! ```
//!
//! A magazine is a stack of free slots in a thread's table: an allocation
//! pops (loads the length, stores it less one), a free pushes (loads it,
//! stores it plus one). When the free cannot know at compile time that it
//! uses the same stack as the allocation before it — a one-word handle
//! finds its cache, so its table entry, at run time — each load of the
//! length waits for the store just before it to be forwarded: two
//! store-to-load forwards on the path of every pair, one after the other.
//!
//! `one stack` is that: pop and push on one stack whose entry the free
//! finds at run time (`black_box`). `split` pops from one stack and
//! pushes onto another, moving the second into the first when the first
//! runs dry (as mimalloc keeps a page's `free` and `local_free` lists
//! apart): each length then waits only on its own previous store, and the
//! two chains run side by side. Prints ns per pair, best of five runs.
//! The model does no allocator work (no slab, no cache lookup); it only
//! shows what the forwarding chain costs on the machine at hand.

use std::cell::Cell;
use std::hint::black_box;
use std::time::Instant;

/// Slots per stack, as a thread's magazine.
const DEPTH: usize = 64;
const PAIRS: u64 = 50_000_000;
const RUNS: usize = 5;
/// Entries of a thread's table of stacks.
const ENTRIES: usize = 16;

/// A stack of slot addresses whose length is a word in memory.
struct Stack {
    len: Cell<usize>,
    slots: [Cell<usize>; DEPTH],
}

impl Stack {
    fn with(len: usize) -> Self {
        Self {
            len: Cell::new(len),
            slots: std::array::from_fn(|i| Cell::new(4096 + 64 * i)),
        }
    }

    #[inline(always)]
    fn pop(&self) -> Option<usize> {
        let len = self.len.get().checked_sub(1)?;
        self.len.set(len);
        Some(self.slots[len].get())
    }

    #[inline(always)]
    fn push(&self, slot: usize) -> bool {
        let len = self.len.get();
        if len == DEPTH {
            return false;
        }
        self.slots[len].set(slot);
        self.len.set(len + 1);
        true
    }
}

/// Allocation and free on one stack.
fn one_stack(table: &[Stack; ENTRIES]) -> u64 {
    let mut sum = 0;
    for key in 0..PAIRS {
        let slot = table[black_box(3)].pop().expect("a slot");
        sum ^= slot as u64 ^ key;
        assert!(table[black_box(3)].push(slot), "room");
    }
    sum
}

/// Allocation from `.0`, free onto `.1`.
fn split(table: &[(Stack, Stack); ENTRIES]) -> u64 {
    let mut sum = 0;
    for key in 0..PAIRS {
        let (loaded, freed) = &table[black_box(3)];
        let slot = match loaded.pop() {
            Some(slot) => slot,
            None => {
                while let Some(slot) = freed.pop() {
                    loaded.push(slot);
                }
                loaded.pop().expect("a slot")
            }
        };
        sum ^= slot as u64 ^ key;
        let (_, freed) = &table[black_box(3)];
        assert!(freed.push(slot), "room");
    }
    sum
}

fn best(mut run: impl FnMut() -> u64) -> f64 {
    let mut best = f64::MAX;
    for _ in 0..RUNS {
        let start = Instant::now();
        black_box(run());
        best = best.min(start.elapsed().as_nanos() as f64 / PAIRS as f64);
    }
    best
}

fn main() {
    let one: [Stack; ENTRIES] = std::array::from_fn(|_| Stack::with(DEPTH / 2));
    let two: [(Stack, Stack); ENTRIES] =
        std::array::from_fn(|_| (Stack::with(DEPTH / 2), Stack::with(0)));
    println!("a pop and a push through a thread's table, best of {RUNS} runs of {PAIRS} pairs");
    println!("one stack  {:5.2} ns a pair", best(|| one_stack(&one)));
    println!("split      {:5.2} ns a pair", best(|| split(&two)));
}

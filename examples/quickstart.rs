//! Quickstart: a typed object pool with `SlabCache<T>`.
//!
//! What this teaches:
//!
//! - a `SlabCache<T>` can be a `static`, and its geometry (`SLOT_SIZE`,
//!   `SLOTS_PER_SLAB`) is known at compile time;
//! - `alloc` moves a value in and returns a `SlabBox`, a handle that derefs to
//!   the value and gives the slot back when dropped;
//! - a freed slot is the next one handed out (its cache lines are still warm);
//! - a failed `alloc` is an `Err` that hands the value back, nothing is lost;
//! - `stats()` prints a `/proc/slabinfo`-style table.
//!
//! Run it with:
//!
//! ```text
//! cargo run --example quickstart
//! ```

use minimal_slab::{AllocError, CacheConfig, ChunkedGlobalPages, SlabBox, SlabCache};

/// The objects we pool: small, fixed-size, allocated and freed often.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Particle {
    pos: [f32; 3],
    vel: [f32; 3],
}

impl Particle {
    fn at(x: f32) -> Self {
        Self {
            pos: [x, 0.0, 0.0],
            vel: [0.0, 1.0, 0.0],
        }
    }

    /// Moves the particle along its velocity for `dt` seconds.
    fn step(&mut self, dt: f32) {
        for (p, v) in self.pos.iter_mut().zip(self.vel) {
            *p += v * dt;
        }
    }
}

/// A pool of particles. `SlabCache::new()` is `const`: no page is taken from
/// the global allocator until the first `alloc`.
static PARTICLES: SlabCache<Particle> = SlabCache::new();

fn main() {
    // 1. Geometry, computed by the compiler for this type and the 4 KiB pages
    //    of the default page source. (Debug builds keep a small bitmap per
    //    slab to catch double frees, so they may fit one slot fewer.)
    type Cache = SlabCache<Particle>;
    println!("== geometry ==");
    println!(
        "size_of::<Particle>() = {} bytes, SLOT_SIZE = {} bytes, SLOTS_PER_SLAB = {}",
        size_of::<Particle>(),
        Cache::SLOT_SIZE,
        Cache::SLOTS_PER_SLAB,
    );

    // 2. Allocate a few values. Each `SlabBox` owns its value and borrows the
    //    cache, so no handle can outlive the pool.
    println!("\n== alloc ==");
    let mut particles: Vec<SlabBox<'static, Particle>> = (0..4)
        .map(|i| {
            PARTICLES
                .alloc(Particle::at(i as f32))
                .expect("the global allocator has a page for us")
        })
        .collect();
    for p in &particles {
        // `as_ptr` is the slot address; `**p` is the `Particle` itself.
        // (`{:p}` works too, on the handle itself: `*p`, not the `&SlabBox`.)
        println!("  {:p}  {:?}", SlabBox::as_ptr(p), **p);
    }
    // Slots of one slab are SLOT_SIZE bytes apart.
    let gap = SlabBox::as_ptr(&particles[1]) as usize - SlabBox::as_ptr(&particles[0]) as usize;
    println!("  consecutive slots are {gap} bytes apart");

    // 3. Use and mutate through the handle: it derefs to `Particle`.
    println!("\n== mutate through the handle ==");
    for p in particles.iter_mut() {
        p.step(0.5); // `DerefMut`: calls `Particle::step`
    }
    println!("  after step(0.5): {:?}", *particles[0]);
    println!("  objects in use: {}", PARTICLES.stats().objects_in_use);

    // 4. Drop one handle: the value is dropped and its slot goes back to the
    //    slab's free list. The next `alloc` takes that very slot.
    println!("\n== free, then reuse ==");
    let freed_addr = SlabBox::as_ptr(&particles[1]);
    drop(particles.remove(1));
    println!(
        "  dropped the particle at {freed_addr:p}; objects in use: {}",
        PARTICLES.stats().objects_in_use
    );
    let newcomer = PARTICLES.alloc(Particle::at(99.0)).expect("a free slot");
    let reused = SlabBox::as_ptr(&newcomer) == freed_addr;
    println!(
        "  next alloc is at {:p}: same slot = {reused}",
        SlabBox::as_ptr(&newcomer)
    );
    assert!(reused, "the slot just freed is handed out first");
    particles.push(newcomer);

    // 5. The stats table of the static cache.
    println!("\n== PARTICLES.stats() ==");
    print!("{}", PARTICLES.stats());

    // 6. Allocation can fail: here a cache capped at one page. The error
    //    carries the value back, so nothing is lost.
    println!("\n== a cache capped at one page ==");
    let small: SlabCache<Particle> = SlabCache::with_config(
        ChunkedGlobalPages::default(),
        CacheConfig::new().page_limit(1),
    );
    let mut held = Vec::new();
    let failed = loop {
        match small.alloc(Particle::at(held.len() as f32)) {
            Ok(p) => held.push(p),
            Err(failed) => break failed,
        }
    };
    println!("  {} allocations succeeded, then:", held.len());
    println!("  Display: {failed}");
    println!("  error(): {:?}", failed.error());
    assert_eq!(failed.error(), AllocError::PageLimit { limit: 1 });
    let value = failed.into_value(); // the particle we tried to store
    println!("  handed back: {value:?}");

    // Free one slot and the same value fits.
    drop(held.pop());
    let stored = small.alloc(value).expect("a slot was just freed");
    println!("  after freeing one slot, alloc succeeds: {:?}", *stored);
    held.push(stored);
    print!("{}", small.stats());

    // 7. Dropping every handle returns every slot. An emptied slab is kept
    //    as a reserve (two by default) until `shrink` gives its page back.
    println!("\n== drop everything, then shrink ==");
    drop(held);
    let before = small.stats();
    let released = small.shrink();
    println!(
        "  in use: {}, empty slabs kept: {}; shrink() gave back {released} page(s), now {} held",
        before.objects_in_use,
        before.empty_slabs,
        small.stats().pages
    );
    drop(particles);
}

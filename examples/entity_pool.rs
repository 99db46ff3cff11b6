//! A game loop spawning and despawning entities in a `SlabCache`.
//!
//! What this teaches:
//!
//! - a `SlabCache<Entity>` is the classic entity pool: spawning is an `alloc`,
//!   despawning is dropping the handle, both O(1);
//! - slots freed by despawned entities are handed out again to the next
//!   spawns, so after the first frames have grown the pool to its working
//!   size, a frame takes **no new pages** however many entities come and go;
//! - the page source is pluggable: a small `PageAllocator` wrapper counts the
//!   pages the cache takes, frame by frame;
//! - `stats()` tells live entities, pages held and free slots at any time.
//!
//! Run it with:
//!
//! ```text
//! cargo run --example entity_pool
//! ```

use std::collections::HashSet;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicUsize, Ordering};

use minimal_slab::{GlobalPages, PageAllocError, PageAllocator, SlabBox, SlabCache};

/// A game object: small, fixed-size, created and destroyed every frame.
#[derive(Debug, Clone, Copy)]
struct Entity {
    position: [f32; 2],
    velocity: [f32; 2],
    health: i32,
}

impl Entity {
    fn spawn(rng: &mut Rng) -> Self {
        Self {
            position: [rng.below(1000) as f32, rng.below(1000) as f32],
            velocity: [rng.below(7) as f32 - 3.0, rng.below(7) as f32 - 3.0],
            health: 40 + rng.below(60) as i32,
        }
    }

    /// One frame of simulation: move, and take some damage.
    fn update(&mut self, damage: i32) {
        self.position[0] += self.velocity[0];
        self.position[1] += self.velocity[1];
        self.health -= damage;
    }

    fn is_dead(&self) -> bool {
        self.health <= 0
    }
}

/// The global allocator's pages, counted: how many the cache has taken so
/// far, to show which frames needed new memory.
struct CountedPages {
    pages: GlobalPages,
    taken: AtomicUsize,
}

impl CountedPages {
    const fn new() -> Self {
        Self {
            pages: GlobalPages::new(),
            taken: AtomicUsize::new(0),
        }
    }

    fn taken(&self) -> usize {
        self.taken.load(Ordering::Relaxed)
    }
}

// SAFETY: every page comes from `GlobalPages`, which keeps the contract, and
// goes back to it unchanged; the counter touches no page.
unsafe impl PageAllocator for CountedPages {
    type PageSize = <GlobalPages as PageAllocator>::PageSize;

    fn allocate_page(&self) -> Result<NonNull<u8>, PageAllocError> {
        let page = self.pages.allocate_page()?;
        self.taken.fetch_add(1, Ordering::Relaxed);
        Ok(page)
    }

    unsafe fn deallocate_page(&self, page: NonNull<u8>) {
        // SAFETY: the caller gives back a page `allocate_page` handed out,
        // which came from `self.pages`.
        unsafe { self.pages.deallocate_page(page) }
    }

    // A wrapper forwards `trim`, so that `shrink` reaches the source inside.
    fn trim(&self) {
        self.pages.trim();
    }
}

/// The pool: a `static`, as a game's entity storage would be.
static ENTITIES: SlabCache<Entity, CountedPages> = SlabCache::new_in(CountedPages::new());

type Handle = SlabBox<'static, Entity, CountedPages>;

/// How many entities each frame wants alive: the first frames ramp up (the
/// warm-up), then the population moves around below its peak.
const POPULATION: [usize; 10] = [400, 800, 1000, 1000, 950, 1000, 700, 1000, 1000, 900];

fn main() {
    type Pool = SlabCache<Entity, CountedPages>;
    println!(
        "Entity: {} bytes; slot {} bytes, {} slots per 4 KiB page\n",
        size_of::<Entity>(),
        Pool::SLOT_SIZE,
        Pool::SLOTS_PER_SLAB
    );
    println!("frame | spawned despawned |  live | pages  new | reused slots | free slots");
    println!("------+-------------------+-------+------------+--------------+-----------");

    let mut rng = Rng(0x5EED_1234_ABCD_0001);
    let mut world: Vec<Handle> = Vec::new();
    // Every address ever handed out: a spawn landing on one of them reuses a
    // slot a despawned entity left.
    let mut seen: HashSet<usize> = HashSet::new();
    let mut pages_taken_after_warm_up = 0;

    for (frame, &wanted) in POPULATION.iter().enumerate() {
        let pages_before = ENTITIES.page_allocator().taken();

        // Simulate, then despawn the dead: dropping a handle frees its slot.
        for entity in &mut world {
            entity.update(rng.below(40) as i32);
        }
        let before = world.len();
        world.retain(|entity| !entity.is_dead());
        let despawned = before - world.len();

        // Spawn up to this frame's population.
        let mut spawned = 0;
        let mut reused = 0;
        while world.len() < wanted {
            let entity = ENTITIES
                .alloc(Entity::spawn(&mut rng))
                .expect("the global allocator has pages");
            if !seen.insert(SlabBox::as_ptr(&entity).addr()) {
                reused += 1;
            }
            world.push(entity);
            spawned += 1;
        }

        let stats = ENTITIES.stats();
        let new_pages = ENTITIES.page_allocator().taken() - pages_before;
        if frame >= 3 {
            pages_taken_after_warm_up += new_pages;
        }
        println!(
            "{frame:>5} | {spawned:>7} {despawned:>9} | {:>5} | {:>5} {:>4} | {reused:>12} | {:>10}",
            stats.objects_in_use, stats.pages, new_pages, stats.free_slots
        );
        assert_eq!(stats.objects_in_use, world.len());
    }

    println!(
        "\nAfter the warm-up (frames 0-2), frames took {pages_taken_after_warm_up} new pages: \
         despawned entities' slots served every spawn."
    );
    assert_eq!(pages_taken_after_warm_up, 0);

    println!("\n== the pool at the end ==");
    print!("{}", ENTITIES.stats());

    drop(world);
    // The last despawns rest in this thread's cache until they go back.
    ENTITIES.flush_thread_cache();
    let kept = ENTITIES.stats().pages;
    let released = ENTITIES.shrink();
    println!(
        "\nAll despawned: {kept} pages still held, empty, for the next burst (the reserve and \
         the recent peak's pages); shrink() gave back {released}."
    );
    assert_eq!(ENTITIES.stats().pages, 0);
}

/// A small deterministic pseudo-random generator (xorshift64*), so every run
/// prints the same frames.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number in `0..n`.
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

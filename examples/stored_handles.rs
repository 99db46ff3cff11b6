//! Handles that live anywhere: in a struct beside the front that made them,
//! out of a `thread_local!` front, in another thread.
//!
//! With the `std` feature, `cache.alloc(v)` already goes through a cache of
//! free slots kept per thread, and its `SlabBox` can be stored anywhere.
//! This tutorial shows the explicit front, `LocalCache` — what `no_std`
//! programs use, one per core or task — and the two patterns programs write
//! with one:
//!
//! 1. a front beside its live objects, in one struct (an ECS world, a
//!    connection table): `alloc_shared` returns a `SlabBox` that borrows
//!    the shared cache, not the front;
//! 2. a front in a `thread_local!`, handing objects out of `with`.
//!
//! Run it with `cargo run --example stored_handles`.

use std::cell::RefCell;

use minimal_slab::{LocalCache, SlabBox, SlabCache};

#[derive(Debug, PartialEq)]
struct Particle {
    position: [f32; 3],
    velocity: [f32; 3],
}

static PARTICLES: SlabCache<Particle> = SlabCache::new();

/// Pattern 1: the front and the objects it made, side by side.
struct World {
    front: LocalCache<'static, Particle>,
    live: Vec<SlabBox<'static, Particle>>,
}

impl World {
    fn new() -> Self {
        Self {
            front: PARTICLES.local(),
            live: Vec::new(),
        }
    }

    fn spawn(&mut self, x: f32) {
        let particle = Particle {
            position: [x, 0.0, 0.0],
            velocity: [0.0, 1.0, 0.0],
        };
        let handle = self.front.alloc_shared(particle).expect("memory");
        self.live.push(handle);
    }

    fn step(&mut self) {
        for p in &mut self.live {
            let p: &mut Particle = p; // one deref, then the fields apart
            for (x, v) in p.position.iter_mut().zip(p.velocity) {
                *x += v;
            }
        }
        // Despawn the ones that flew too far: their slots go back into
        // this front's magazine, no lock taken.
        let (keep, gone): (Vec<_>, Vec<_>) = self.live.drain(..).partition(|p| p.position[1] < 3.0);
        self.live = keep;
        for p in gone {
            self.front.recycle(p);
        }
    }
}

// Pattern 2: one front per thread, in thread-local storage.
thread_local! {
    static FRONT: RefCell<Option<LocalCache<'static, Particle>>> = const { RefCell::new(None) };
}

/// A particle from this thread's front; the handle leaves `with` freely.
fn spawn_here(x: f32) -> SlabBox<'static, Particle> {
    FRONT.with(|front| {
        let mut front = front.borrow_mut();
        let front = front.get_or_insert_with(|| PARTICLES.local());
        let particle = Particle {
            position: [x, 0.0, 0.0],
            velocity: [0.0; 3],
        };
        front.alloc_shared(particle).expect("memory")
    })
}

fn main() {
    let mut world = World::new();
    for i in 0..1000 {
        world.spawn(i as f32);
    }
    for _ in 0..5 {
        world.step();
    }
    println!(
        "pattern 1: {} particles left, {} slots resting in the world's front",
        world.live.len(),
        world.front.cached()
    );
    assert!(
        world.live.is_empty(),
        "every particle flew off after 3 steps"
    );
    drop(world); // the front flushes its magazine

    // Pattern 2: handles made on worker threads, collected on this one.
    let handles: Vec<SlabBox<'static, Particle>> = (0..4)
        .map(|t| {
            std::thread::spawn(move || {
                (0..250)
                    .map(|i| spawn_here((t * 250 + i) as f32))
                    .collect::<Vec<_>>()
            })
        })
        .flat_map(|worker| worker.join().expect("worker"))
        .collect();
    println!(
        "pattern 2: {} particles from 4 threads' fronts",
        handles.len()
    );
    assert_eq!(handles.len(), 1000);
    assert_eq!(handles[999].position[0], 999.0);
    drop(handles); // freed on this thread

    PARTICLES.shrink();
    let stats = PARTICLES.stats();
    println!("after shrink: {stats:?}");
    assert_eq!(stats.objects_in_use, 0);
}

//! Ordinary collections living in slabs, on stable Rust.
//!
//! What this teaches:
//!
//! - with the `allocator-api2` feature, `&SlabAllocator` is an allocator for
//!   `allocator_api2::vec::Vec` and `hashbrown::HashMap` (`new_in`,
//!   `with_capacity_in`): small buffers go to the size classes, large ones to
//!   the fallback (`std::alloc::System` here);
//! - a growing `Vec` walks up the classes (32, 64, 128, 256 bytes) and then
//!   leaves for the fallback; `shrink_to_fit` brings it back into a class;
//! - a block from a class is the whole slot: ask for 24 bytes, get 32;
//! - a `hashbrown` map puts its table where its size says: a map of three
//!   entries in a class, a map of fifty at the fallback;
//! - `stats()` shows every live block; after the collections are dropped no
//!   object is in use, the emptied slabs are kept for the next burst, and
//!   `shrink_to_fit()` gives their pages back.
//!
//! Run it with:
//!
//! ```text
//! cargo run --example collections_in_slab --features allocator-api2
//! ```

use core::alloc::Layout;
use std::alloc::System;

use allocator_api2::alloc::Allocator;
use allocator_api2::vec::Vec;
use hashbrown::DefaultHashBuilder;
use hashbrown::HashMap;
use minimal_slab::{ChunkedGlobalPages, SlabAllocator};

/// Size classes of 8 to 256 bytes on 4 KiB pages cut from 256 KiB chunks of
/// the global allocator (the default page source); anything larger goes to
/// `System`.
type Heap = SlabAllocator<ChunkedGlobalPages, System>;

/// Where a buffer of `bytes` bytes lives.
fn home(bytes: usize) -> String {
    match Heap::size_class(Layout::from_size_align(bytes, 8).unwrap()) {
        Some(class) => format!("size-{class}"),
        None => "fallback".to_string(),
    }
}

fn main() {
    let heap: Heap = SlabAllocator::new_in(ChunkedGlobalPages::global(), System);
    println!("== before: nothing allocated ==");
    print!("{}", heap.stats());

    // 1. One block through the trait: the whole slot comes back. (Called as
    //    a method, `allocate` would be the inherent one: name the trait.)
    let asked = Layout::from_size_align(24, 8).unwrap();
    let block = Allocator::allocate(&&heap, asked).expect("a 32-byte slot");
    println!(
        "\n== one block ==\n  asked for {} bytes, got {}",
        asked.size(),
        block.len()
    );
    // SAFETY: allocated just above with `asked`, and not used again.
    unsafe { Allocator::deallocate(&&heap, block.cast(), asked) };

    // 2. A vector growing element by element: every reallocation moves it to
    //    the next class, and past 256 bytes to the fallback.
    println!("\n== a Vec<u64> growing ==");
    let mut samples: Vec<u64, &Heap> = Vec::new_in(&heap);
    let mut last_capacity = 0;
    for i in 0..200u64 {
        samples.push(i * i);
        if samples.capacity() != last_capacity {
            last_capacity = samples.capacity();
            println!(
                "  len {:>3}: capacity {:>3} = {:>4} bytes -> {}",
                samples.len(),
                last_capacity,
                last_capacity * 8,
                home(last_capacity * 8)
            );
        }
    }

    // 3. Hash maps. An index from `i % 50` to the samples with that
    //    remainder: 50 small vectors of 4 samples (32 bytes each, in the
    //    32-byte class), and a table of 50 entries, too large for a class.
    let mut by_remainder: HashMap<u64, Vec<u64, &Heap>, DefaultHashBuilder, &Heap> =
        HashMap::new_in(&heap);
    for (i, &sample) in samples.iter().enumerate() {
        by_remainder
            .entry(i as u64 % 50)
            .or_insert_with(|| Vec::new_in(&heap))
            .push(sample);
    }
    //    A map of three entries: its whole table fits a size class.
    let mut small: HashMap<u8, u8, DefaultHashBuilder, &Heap> = HashMap::new_in(&heap);
    small.extend([(1, 10), (2, 20), (3, 30)]);
    println!("\n== hash maps ==");
    println!(
        "  by_remainder: {} keys, each a Vec of {} samples ({} bytes -> {})",
        by_remainder.len(),
        by_remainder[&7].len(),
        by_remainder[&7].capacity() * 8,
        home(by_remainder[&7].capacity() * 8)
    );
    println!(
        "  small: {} entries, sum of values {}",
        small.len(),
        small.values().map(|&v| u32::from(v)).sum::<u32>()
    );

    println!("\n== while the collections live ==");
    let live = heap.stats();
    print!("{live}");
    println!(
        "  {} objects in the classes, {} blocks ({} bytes) at the fallback",
        live.objects_in_use(),
        live.fallback_allocations,
        live.fallback_bytes
    );
    println!(
        "  (the 50 small vectors and the small map's table in classes; the samples' buffer \
         and the index's table at the fallback)"
    );

    // 4. Shrinking brings the vector back into a size class.
    samples.truncate(20);
    samples.shrink_to_fit();
    println!(
        "\n== samples.truncate(20) + shrink_to_fit() ==\n  capacity {} = {} bytes -> {}",
        samples.capacity(),
        samples.capacity() * 8,
        home(samples.capacity() * 8)
    );
    assert_eq!(samples[19], 19 * 19, "the contents came along");

    // 5. Drop everything: no object is in use, but the emptied slabs stay,
    //    for the next burst, until `shrink_to_fit`.
    drop((by_remainder, small, samples));
    let after = heap.stats();
    println!("\n== after drop ==");
    print!("{after}");
    assert_eq!((after.objects_in_use(), after.fallback_allocations), (0, 0));
    println!(
        "  0 objects in use; {} empty page(s) kept for the next burst",
        after.pages()
    );

    let released = heap.shrink_to_fit();
    println!("\n== after shrink_to_fit ==");
    print!("{}", heap.stats());
    println!("  shrink_to_fit() gave back {released} page(s)");
    assert_eq!(heap.stats().pages(), 0);
}

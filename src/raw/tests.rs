//! The allocator's own tests: class tables and the fallback.

use core::alloc::Layout;

use super::*;
use crate::page_allocator::GlobalPages;
use typenum::{U4096, U16384};

fn layout(size: usize, align: usize) -> Layout {
    Layout::from_size_align(size, align).unwrap()
}

#[test]
fn the_class_table_length_is_computed_from_the_limit() {
    let small = SlabAllocator::new_in(GlobalPages::new(), NoFallback);
    assert_eq!(small.stats().classes().len(), 6);
    let big = SlabAllocator::<_, _, U4096>::with_size_classes(
        GlobalPages::<U16384>::with_page_size(),
        NoFallback,
        CacheConfig::new(),
    );
    assert_eq!(big.stats().classes().len(), 10);
    let p = big.allocate(layout(3000, 8)).unwrap();
    assert_eq!(big.stats().classes()[9].objects_in_use, 1);
    // SAFETY: allocated just above with this layout.
    unsafe { big.deallocate(p, layout(3000, 8)) };
}

#[test]
fn fallback_requests_are_counted() {
    let heap = SlabAllocator::new_in(GlobalPages::new(), std::alloc::System);
    let big = layout(1000, 8);
    let p = heap.allocate(big).unwrap();
    assert_eq!(
        (
            heap.stats().fallback_allocations,
            heap.stats().fallback_bytes
        ),
        (1, 1000)
    );
    // SAFETY: allocated just above with this layout.
    let p = unsafe { heap.reallocate(p, big, 2000) }.unwrap();
    assert_eq!(heap.stats().fallback_bytes, 2000);
    // SAFETY: reallocated just above to 2000 bytes.
    unsafe { heap.deallocate(p, layout(2000, 8)) };
    assert_eq!(heap.stats().fallback_allocations, 0);
}

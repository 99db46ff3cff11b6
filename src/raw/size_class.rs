//! Size classes: which class serves a layout, and how many classes a limit
//! makes.

use core::alloc::Layout;
use core::ops::Sub;

use generic_array::ArrayLength;
use typenum::{Diff, IsGreaterOrEqual, Log2, Logarithm2, PowerOfTwo, True, U2, U8, Unsigned};

use crate::cache::MIN_CLASS;

/// The largest size class of a `SlabAllocator`, as a type-level number: a
/// power of two, at least 8 bytes (the smallest class). `Classes` is how
/// many size classes that makes (8, 16, …, up to the limit).
///
/// Implemented for exactly those numbers; there is nothing to implement by
/// hand.
pub trait SizeClassLimit: Unsigned + PowerOfTwo + Send + Sync + 'static {
    /// The number of size classes, `log2(limit) − 2`.
    type Classes: ArrayLength;
}

impl<M> SizeClassLimit for M
where
    M: Unsigned
        + PowerOfTwo
        + IsGreaterOrEqual<U8, Output = True>
        + Logarithm2
        + Send
        + Sync
        + 'static,
    Log2<M>: Sub<U2>,
    Diff<Log2<M>, U2>: ArrayLength,
{
    type Classes = Diff<Log2<M>, U2>;
}

/// The size class serving `layout` among classes up to `largest` bytes, as
/// an index, or `None` if no class can: the smallest power of two at least
/// both the size and the alignment (class slots are aligned to their size).
/// Arithmetic on the layout, not a search.
#[inline]
pub(crate) fn class_of(layout: Layout, largest: usize) -> Option<usize> {
    let need = layout.size().max(layout.align());
    if need > largest {
        return None;
    }
    let class_size = need.max(MIN_CLASS).next_power_of_two();
    Some((class_size.trailing_zeros() - MIN_CLASS.trailing_zeros()) as usize)
}

/// Names of the size classes in stats tables, 8 bytes to 1 GiB.
pub(crate) const CLASS_NAMES: [&str; 28] = [
    "size-8",
    "size-16",
    "size-32",
    "size-64",
    "size-128",
    "size-256",
    "size-512",
    "size-1024",
    "size-2048",
    "size-4096",
    "size-8192",
    "size-16384",
    "size-32768",
    "size-65536",
    "size-131072",
    "size-262144",
    "size-524288",
    "size-1048576",
    "size-2097152",
    "size-4194304",
    "size-8388608",
    "size-16777216",
    "size-33554432",
    "size-67108864",
    "size-134217728",
    "size-268435456",
    "size-536870912",
    "size-1073741824",
];

#[cfg(test)]
mod tests {
    use super::*;

    fn layout(size: usize, align: usize) -> Layout {
        Layout::from_size_align(size, align).unwrap()
    }

    #[test]
    fn each_layout_goes_to_the_smallest_class_covering_size_and_align() {
        assert_eq!(class_of(layout(1, 1), 256), Some(0));
        assert_eq!(class_of(layout(8, 8), 256), Some(0));
        assert_eq!(class_of(layout(9, 1), 256), Some(1));
        assert_eq!(class_of(layout(8, 32), 256), Some(2));
        assert_eq!(class_of(layout(256, 1), 256), Some(5));
        assert_eq!(class_of(layout(257, 1), 256), None);
        assert_eq!(class_of(layout(1, 512), 256), None);
        for size in 1..=256 {
            let class = MIN_CLASS << class_of(layout(size, 1), 256).unwrap();
            assert!(
                class >= size && class / 2 < size.max(8),
                "size {size} -> class {class}"
            );
        }
    }
}

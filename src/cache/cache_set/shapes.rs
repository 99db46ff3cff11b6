//! Where a set finds the geometry of its caches: stored in the set (the
//! size classes), or a constant of the front's type (a typed cache).
//!
//! The cores store no geometry (see `CacheCore::new`); the set passes each
//! its own. A typed cache's geometry is `SlabCache::<T, P>::GEOMETRY`,
//! known when the program is compiled: its shape is a zero-sized type
//! whose [`Shapes::geometry`] returns that constant, so every use folds to
//! constants — no field to load, and none that a `static` cache would have
//! to initialise (its bytes stay all zeros, in a firmware's `.bss`).
//!
//! A type rather than an enum with a stored geometry: an enum's geometry
//! would be a field of every typed cache. A type parameter of its own
//! rather than an associated type of the class count: a field whose type
//! is a projection makes the set invariant in the parameter, and the
//! typed shape names the cache's `T` and `P`, which may hold lifetimes (a
//! cache on `&'a RegionPages` must stay covariant in `'a`).

use generic_array::{ArrayLength, GenericArray};

use super::class_size;
use crate::slab::SlabGeometry;

/// The geometries of a set's caches.
pub(crate) trait Shapes {
    /// Whether the caches expose each page's provenance, for frees through
    /// narrowed pointers ([`SlotReach::Object`](crate::cache::SlotReach)).
    const EXPOSE_PAGES: bool;

    /// The geometry of cache `class`.
    fn geometry(&self, class: usize) -> SlabGeometry;
}

/// Size classes: cache `i` has slots of `8 << i` bytes aligned to their
/// size, and exposes its pages' provenance for frees through narrowed
/// pointers (`GlobalAlloc`). The geometries are stored: computing one
/// takes divisions, and a class is chosen at run time.
pub(crate) struct PowersOfTwo<C: ArrayLength>(GenericArray<SlabGeometry, C>);

impl<C: ArrayLength> PowersOfTwo<C> {
    /// The `C` size classes of pages of `page_size` bytes.
    ///
    /// # Panics
    ///
    /// If a class does not fit a page (callers check that at compile time).
    pub(crate) const fn new(page_size: usize) -> Self {
        let mut geometries = GenericArray::<SlabGeometry, C>::uninit();
        let slots = geometries.as_mut_slice();
        let mut i = 0;
        while i < slots.len() {
            let size = class_size(i);
            slots[i] = match SlabGeometry::new(page_size, size, size) {
                Ok(geometry) => core::mem::MaybeUninit::new(geometry),
                Err(_) => panic!("every size class fits a page"),
            };
            i += 1;
        }
        // SAFETY: the loop initialised every element.
        Self(unsafe { GenericArray::assume_init(geometries) })
    }
}

impl<C: ArrayLength> Shapes for PowersOfTwo<C> {
    const EXPOSE_PAGES: bool = true;

    #[inline(always)]
    fn geometry(&self, class: usize) -> SlabGeometry {
        self.0[class]
    }
}

//! An intrusive, doubly linked list with a length.
//!
//! Invariant: the elements reachable from `head` through `next` are exactly
//! the `len` elements pushed and not removed since; each one's `prev` is the
//! element before it (`None` for the head).

/// An element that keeps its list links in itself: a pointer to a header
/// that has room for `prev` and `next`.
///
/// # Safety
///
/// `links` returns what `set_links` last stored for the same element; an
/// element's links are stored nowhere else. The methods are called only
/// with exclusive access to the element, which the list's user guarantees.
pub(crate) unsafe trait Linked: Copy + PartialEq {
    /// The element's neighbours: `(prev, next)`.
    ///
    /// # Safety
    ///
    /// The element is live, and the caller has exclusive access to it.
    unsafe fn links(self) -> (Option<Self>, Option<Self>);

    /// Stores the element's neighbours.
    ///
    /// # Safety
    ///
    /// As for [`links`](Self::links).
    unsafe fn set_links(self, prev: Option<Self>, next: Option<Self>);
}

/// A list of [`Linked`] elements. Its `unsafe fn`s share one contract: every
/// element passed in or on the list is live, and the caller has exclusive
/// access to all of them (in this crate, the lock of whatever owns the list).
///
/// `no_std` builds call [`push_front`](Self::push_front) and
/// [`remove`](Self::remove) rather than inline them: a cache moves slabs
/// between lists at a dozen places, none on the path of an allocation or a
/// free that keeps its slab where it is, and a firmware links each once.
/// `std` builds inline them, as before.
pub(crate) struct List<L> {
    head: Option<L>,
    len: usize,
}

impl<L: Linked> List<L> {
    /// An empty list.
    pub(crate) const fn new() -> Self {
        Self { head: None, len: 0 }
    }

    /// The first element, if any.
    #[inline]
    pub(crate) fn head(&self) -> Option<L> {
        self.head
    }

    /// How many elements are on the list.
    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Puts `element`, which is on no list, at the front.
    ///
    /// # Safety
    ///
    /// The list's shared contract; `element` is on no list.
    #[cfg_attr(not(feature = "std"), inline(never))]
    #[cfg_attr(feature = "std", inline)]
    pub(crate) unsafe fn push_front(&mut self, element: L) {
        // SAFETY: the element is live and ours (shared contract).
        unsafe { element.set_links(None, self.head) };
        if let Some(old_head) = self.head {
            // SAFETY: elements on the list are live and ours.
            let (_, next) = unsafe { old_head.links() };
            // SAFETY: as above.
            unsafe { old_head.set_links(Some(element), next) };
        }
        self.head = Some(element);
        self.len += 1;
    }

    /// Unlinks `element`.
    ///
    /// # Safety
    ///
    /// The list's shared contract; `element` is on this list.
    #[cfg_attr(not(feature = "std"), inline(never))]
    #[cfg_attr(feature = "std", inline)]
    pub(crate) unsafe fn remove(&mut self, element: L) {
        // SAFETY: the element is on this list, so live and ours.
        let (prev, next) = unsafe { element.links() };
        match prev {
            Some(prev) => {
                // SAFETY: neighbours on this list are live and ours.
                let (before, _) = unsafe { prev.links() };
                // SAFETY: as above.
                unsafe { prev.set_links(before, next) };
            }
            None => {
                debug_assert!(
                    self.head == Some(element),
                    "an element without prev heads its list"
                );
                self.head = next;
            }
        }
        if let Some(next) = next {
            // SAFETY: neighbours on this list are live and ours.
            let (_, after) = unsafe { next.links() };
            // SAFETY: as above.
            unsafe { next.set_links(prev, after) };
        }
        self.len -= 1;
    }

    /// The element after `element` on the list, for walking it.
    ///
    /// # Safety
    ///
    /// The list's shared contract; `element` is on this list.
    #[inline]
    pub(crate) unsafe fn next_of(&self, element: L) -> Option<L> {
        // SAFETY: the caller's guarantees.
        unsafe { element.links() }.1
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::cell::Cell;
    use std::vec::Vec;

    /// Elements are indices into a table of links.
    #[derive(Clone, Copy, PartialEq, Debug)]
    struct Node<'t>(usize, &'t [Cell<(Option<usize>, Option<usize>)>]);

    // SAFETY: links live in the table cell of the node alone.
    unsafe impl Linked for Node<'_> {
        unsafe fn links(self) -> (Option<Self>, Option<Self>) {
            let (p, n) = self.1[self.0].get();
            (p.map(|i| Node(i, self.1)), n.map(|i| Node(i, self.1)))
        }
        unsafe fn set_links(self, prev: Option<Self>, next: Option<Self>) {
            self.1[self.0].set((prev.map(|p| p.0), next.map(|n| n.0)));
        }
    }

    fn order(list: &List<Node<'_>>) -> Vec<usize> {
        let mut out = Vec::new();
        let mut cursor = list.head();
        while let Some(node) = cursor {
            out.push(node.0);
            // SAFETY: the table outlives the walk; one thread.
            cursor = unsafe { list.next_of(node) };
        }
        out
    }

    #[test]
    fn push_and_remove_anywhere_keep_order_and_length() {
        let table: Vec<_> = (0..4).map(|_| Cell::new((None, None))).collect();
        let node = |i| Node(i, &table);
        let mut list = List::new();
        for i in 0..4 {
            // SAFETY: each node is pushed once.
            unsafe { list.push_front(node(i)) };
        }
        assert_eq!(order(&list), [3, 2, 1, 0]);
        // SAFETY: nodes on the list.
        unsafe { list.remove(node(2)) };
        assert_eq!(order(&list), [3, 1, 0]);
        // SAFETY: as above: the head, then the tail.
        unsafe { list.remove(node(3)) };
        // SAFETY: as above.
        unsafe { list.remove(node(0)) };
        assert_eq!((order(&list), list.len()), (std::vec![1], 1));
        // SAFETY: as above.
        unsafe { list.remove(node(1)) };
        assert_eq!((list.head(), list.len()), (None, 0));
    }
}

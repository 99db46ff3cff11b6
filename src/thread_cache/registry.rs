//! Which caches with per-thread caching are alive, and the slots that
//! threads gave back to them from outside any borrow of the cache.
//!
//! # What the registry owns
//!
//! A fixed table of [`CAPACITY`] places. A cache takes one the first time a
//! thread caches its slots, and receives a [`Ticket`]: the place's index
//! and a generation that the place never repeats. The cache gives the place
//! back when it is dropped ([`retire`]). A ticket is *live* from [`register`]
//! to [`retire`]; after that no live cache will ever hold it again.
//!
//! Each place also holds the cache's *orphans*: slots that a thread's table
//! gave up without the cache at hand — when the thread exits, or when its
//! table needs the entry for another cache — kept by address (in memory
//! from the system allocator: see `orphans`), never read nor written. They stay counted as handed out by the cache
//! until it adopts them ([`adopt`]) on its next refill, `shrink`, `stats` or
//! drop, and checks them then, its pages alive.
//!
//! # Why a registry at all
//!
//! A thread's table outlives every borrow of the caches whose slots it
//! keeps: it gives them up when the thread exits. By then the cache may have
//! been moved (its slots are in pages, which do not move, but the cache
//! itself may) or dropped, its pages back in their source. So the table
//! never keeps the cache's address; it keeps the ticket, and gives slots up
//! through the registry: under the place's lock, slots of a live ticket are
//! listed as its orphans, slots of a retired one are forgotten. Neither
//! touches the slots: a ticket stays live for ever if its cache is leaked
//! (`mem::forget` is safe), while the cache's page source — borrowed, say —
//! may be gone; only the live cache reads its orphans, when it adopts them.
//!
//! # Invariants
//!
//! - A place is live iff a cache holds its current generation's ticket.
//! - Orphans are listed only at a live place, and only slots of that
//!   place's cache, resting (no user holds them).
//! - `pending` is set whenever orphans are listed (it may stay set a moment
//!   after they are adopted, never the other way round).
//!
//! # Under loom
//!
//! The places and the cursor are built afresh in each execution of a model
//! (see `sync`), and there are two places, not 1024: each is a loom lock
//! and atomic, and with two a model that drops a cache and makes others
//! soon has a new cache at a retired cache's place, a generation on — the
//! case the generations are for.

use core::sync::atomic::Ordering;

pub(crate) use super::orphans::Orphans;
use crate::sync::threaded::{AtomicBool, AtomicUsize};
use crate::sync::{Mutex, const_fn_unless_loom, static_unless_loom};

/// How many caches may use per-thread caching at once; the others take the
/// locked path, correct and slower. (At least 2: raw values below it are
/// no tickets, and 1 means "the locked path for good".)
pub(crate) const CAPACITY: usize = if cfg!(loom) { 2 } else { 1024 };

/// A cache's claim on a place of the registry.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct Ticket(u64);

impl Ticket {
    /// The ticket whose [`raw`](Self::raw) value is `raw`, if it is one (not
    /// 0, which stands for "none yet").
    pub(crate) const fn from_raw(raw: u64) -> Option<Self> {
        if raw >= CAPACITY as u64 {
            Some(Self(raw))
        } else {
            None
        }
    }

    /// The ticket as one number, never 0 (nor below [`CAPACITY`]).
    pub(crate) const fn raw(self) -> u64 {
        self.0
    }

    /// The index of its place.
    pub(crate) const fn index(self) -> usize {
        (self.0 % CAPACITY as u64) as usize
    }

    /// The generation of its place, at least 1.
    const fn generation(self) -> u64 {
        self.0 / CAPACITY as u64
    }
}

/// One place: the generation it is at, whether a cache holds it, and that
/// cache's orphans.
struct Place {
    state: Mutex<PlaceState>,
    /// Orphans may be listed: lets a cache's slow path skip the lock.
    pending: AtomicBool,
}

struct PlaceState {
    generation: u64,
    live: bool,
    orphans: Orphans,
}

impl Place {
    const_fn_unless_loom! {
        const fn new() -> Self {
            Self {
                state: Mutex::new(PlaceState {
                    generation: 0,
                    live: false,
                    orphans: Orphans::new(),
                }),
                pending: AtomicBool::new(false),
            }
        }
    }
}

#[cfg(not(loom))]
static PLACES: [Place; CAPACITY] = [const { Place::new() }; CAPACITY];

#[cfg(loom)]
loom::lazy_static! {
    /// Per execution of a model (see `sync`).
    static ref PLACES: [Place; CAPACITY] = core::array::from_fn(|_| Place::new());
}

static_unless_loom! {
    /// Where the next search for a free place starts: places are handed out
    /// in turn, so that caches made one after another land in different
    /// entries of the threads' tables.
    static CURSOR: AtomicUsize = AtomicUsize::new(0);
}

/// A fresh ticket, or `None` if all [`CAPACITY`] places are taken.
pub(crate) fn register() -> Option<Ticket> {
    let start = CURSOR.fetch_add(1, Ordering::Relaxed);
    (0..CAPACITY).find_map(|step| {
        let index = (start + step) % CAPACITY;
        let mut state = PLACES[index].state.lock();
        if state.live {
            return None;
        }
        state.live = true;
        state.generation += 1;
        Some(Ticket(state.generation * CAPACITY as u64 + index as u64))
    })
}

/// Gives `ticket`'s place back, and returns the orphans still listed there
/// (now the caller's). From here on, slots given up for this ticket are
/// forgotten untouched.
pub(crate) fn retire(ticket: Ticket) -> Orphans {
    let place = &PLACES[ticket.index()];
    let mut state = place.state.lock();
    debug_assert!(state.live && state.generation == ticket.generation());
    state.live = false;
    place.pending.store(false, Ordering::Relaxed);
    core::mem::replace(&mut state.orphans, Orphans::new())
}

/// Runs `give` with `ticket`'s orphan list, under its place's lock, if the
/// ticket is live; returns whether it ran. A retired ticket's cache is gone
/// and its pages with it: the caller must then forget its slots without
/// touching them.
pub(crate) fn give_up(ticket: Ticket, give: impl FnOnce(&mut Orphans)) -> bool {
    let place = &PLACES[ticket.index()];
    let mut state = place.state.lock();
    if !state.live || state.generation != ticket.generation() {
        return false;
    }
    give(&mut state.orphans);
    if state.orphans.len() > 0 {
        place.pending.store(true, Ordering::Relaxed);
    }
    true
}

/// Takes the orphans listed for `ticket` (the caller is its cache).
pub(crate) fn adopt(ticket: Ticket) -> Orphans {
    let place = &PLACES[ticket.index()];
    if !place.pending.load(Ordering::Relaxed) {
        return Orphans::new();
    }
    let mut state = place.state.lock();
    debug_assert!(state.live && state.generation == ticket.generation());
    place.pending.store(false, Ordering::Relaxed);
    core::mem::replace(&mut state.orphans, Orphans::new())
}

/// How many orphans of size class `class` are listed for `ticket`.
pub(crate) fn orphans(ticket: Ticket, class: usize) -> usize {
    PLACES[ticket.index()].state.lock().orphans.len_of(class)
}

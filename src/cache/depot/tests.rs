//! The depot's unit tests: batches in and out, the limit, the reports
//! to the clock, the surplus of a window.

use super::*;

fn slot(i: usize) -> NonNull<u8> {
    NonNull::<u64>::dangling()
        .map_addr(|a| a.saturating_add(i * 8))
        .cast()
}

/// A slot size whose depot holds `MIN_BATCHES` batches.
const LARGE: usize = MAX_BYTES;

const KEPT: Pushed = Pushed {
    passed: 0,
    surplus: 0,
};

#[test]
fn batches_go_out_last_in_first_and_whole() {
    let slots: std::vec::Vec<NonNull<u8>> = (0..MIN_BATCHES * 5).map(slot).collect();
    let depot = Depot::new();
    for batch in slots.chunks(5) {
        assert_eq!(depot.push(batch, LARGE), Some(KEPT));
    }
    assert_eq!(depot.slots(), MIN_BATCHES * 5);
    assert!(depot.looks_full(LARGE));
    assert!(!depot.looks_full(8), "small slots: a deeper depot");
    assert_eq!(
        depot.push(&slots[..1], LARGE),
        None,
        "a full depot takes nothing"
    );
    let mut out = [NonNull::dangling(); BATCH_MAX];
    assert_eq!(
        depot.pop_into(&mut out[..4]),
        0,
        "a batch of 5 does not fit 4"
    );
    for batch in slots.chunks(5).rev() {
        assert_eq!(depot.pop_into(&mut out), 5);
        assert_eq!(&out[..5], batch);
    }
    assert_eq!(depot.slots(), 0);
    assert_eq!(depot.pop_into(&mut out), 0);
    assert_eq!(depot.push(&slots[..BATCH_MAX], LARGE), Some(KEPT));
    assert_eq!(depot.try_slots(), Some(BATCH_MAX));
    depot.forget_all();
    assert_eq!((depot.slots(), depot.pop_into(&mut out)), (0, 0));
}

#[test]
fn the_limit_is_the_bytes_of_slots_within_bounds() {
    assert_eq!(limit(MAX_BYTES), MIN_BATCHES);
    assert_eq!(limit(8), MAX_BATCHES);
    if !cfg!(loom) {
        assert_eq!(limit(64), 2048, "10 000 objects of 64 bytes fit");
        assert_eq!(limit(1024), 128);
    }
}

#[test]
fn slots_passing_through_are_reported_to_the_clock() {
    let batch = [slot(1); BATCH_MAX];
    let depot = Depot::new();
    let mut out = [NonNull::dangling(); BATCH_MAX];
    let mut reported = 0;
    for _ in 0..REPORT_EVERY / BATCH_MAX * 3 {
        reported += depot.push(&batch, 64).expect("room").passed;
        assert_eq!(depot.pop_into(&mut out), BATCH_MAX);
    }
    assert_eq!(reported, 3 * REPORT_EVERY);
}

/// Rounds that fill the depot and drain it keep their batches; once the
/// draining stops, what the windows never needed goes back.
#[test]
fn a_level_no_window_needed_is_surplus() {
    let batch = [slot(1); BATCH_MAX];
    let depot = Depot::new();
    let mut out = [NonNull::dangling(); BATCH_MAX];
    let deep = MIN_BATCHES * 6;
    let mut surplus = 0;
    for _ in 0..20 {
        for _ in 0..deep {
            surplus += depot.push(&batch, 64).expect("room").surplus;
        }
        while depot.pop_into(&mut out) > 0 {}
    }
    assert_eq!(surplus, 0, "every window drained the depot");
    // A burst that stays: the depot sits at `deep` while batches pass
    // through its top.
    for _ in 0..deep {
        surplus += depot.push(&batch, 64).expect("room").surplus;
    }
    let mut given_back = 0;
    for _ in 0..SHORTEST_WINDOW.max(deep * 4) * 3 {
        let pushed = depot.push(&batch, 64).expect("room");
        for _ in 0..pushed.surplus {
            assert_eq!(depot.pop_into(&mut out), BATCH_MAX);
            given_back += 1;
        }
        assert_eq!(depot.pop_into(&mut out), BATCH_MAX);
    }
    assert_eq!(surplus, 0);
    assert_eq!(given_back, deep - MIN_BATCHES, "all but the minimum");
    assert_eq!(depot.slots(), MIN_BATCHES * BATCH_MAX);
    assert!(
        depot.batches.lock().shelf.capacity() <= 2 * (MIN_BATCHES + 1),
        "the shelf shrank to twice what the windows since needed"
    );
    while depot.pop_into(&mut out) > 0 {}
    depot.emptied();
    assert_eq!(depot.batches.lock().levels.window, SHORTEST_WINDOW);
}

/// The surplus a window's end finds goes back oldest first: the batches
/// below its lowest level, which no one touched all window, while the
/// batch just pushed stays on top for the next refill.
#[test]
fn the_surplus_goes_back_oldest_first() {
    let deep = MIN_BATCHES * 3;
    let slots: std::vec::Vec<NonNull<u8>> = (0..deep + 1).map(slot).collect();
    let depot = Depot::new();
    let mut out = [NonNull::dangling(); BATCH_MAX];
    let mut surplus = 0;
    // The first window, from nothing, has no surplus: fill the depot
    // and pass the top batch in and out until a second window ends.
    for batch in slots[..deep].chunks(1) {
        surplus += depot.push(batch, 64).expect("room").surplus;
    }
    let top = &slots[deep..];
    for _ in 0..SHORTEST_WINDOW.max(deep * 4) * 3 {
        surplus += depot.push(top, 64).expect("room").surplus;
        if surplus > 0 {
            break;
        }
        assert_eq!(depot.pop_into(&mut out), 1);
        assert_eq!(&out[..1], top);
    }
    assert_eq!(
        surplus,
        deep - MIN_BATCHES,
        "the window's lowest was `deep`"
    );
    let mut given_back: std::vec::Vec<NonNull<u8>> = (0..surplus)
        .map(|_| {
            assert_eq!(depot.pop_into(&mut out), 1);
            out[0]
        })
        .collect();
    given_back.sort_by_key(|slot| slot.addr());
    assert_eq!(given_back, slots[..surplus], "the oldest batches");
    assert_eq!(depot.pop_into(&mut out), 1);
    assert_eq!(&out[..1], top, "the batch just pushed stays on top");
    for i in (surplus..deep).rev() {
        assert_eq!(depot.pop_into(&mut out), 1);
        assert_eq!(out[0], slots[i], "then the rest, last in first out");
    }
}

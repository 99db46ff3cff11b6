//! `SlabAllocator` as `#[global_allocator]` at its edges: reallocation
//! across the fallback boundary,
//! thread exit in every order relative to the exit guard (Rust thread-locals
//! and POSIX thread-specific data), counters read while threads exit, and a
//! misuse reported from inside the allocator.
//!
//! No test harness: the harness would allocate through the allocator under
//! test while the counters are read. `cargo test --test global_alloc_edges
//! -- NAME` runs the scenarios whose name contains `NAME`.
//!
//! Three scenarios are regression tests of faults the per-thread path of
//! `GlobalAlloc` once had (see `src/raw/global_alloc.rs`): a `Box` freed
//! while protected, a fallback block shrunk into a class, and a table first
//! used from a POSIX thread-specific-data destructor. They pass on the
//! locked path too (`MINIMAL_SLAB_GLOBAL_TLS=0`).

use std::alloc::{Layout, System};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use minimal_slab::{GlobalAllocPages, SlabAllocator};

#[global_allocator]
static HEAP: SlabAllocator<GlobalAllocPages<System>, System> =
    SlabAllocator::new_in(GlobalAllocPages::new(System), System);

const SCALE: usize = if cfg!(miri) { 20 } else { 5_000 };

fn cached() -> usize {
    HEAP.stats().classes().iter().map(|c| c.cached_slots).sum()
}

fn in_use() -> usize {
    HEAP.stats().objects_in_use()
}

/// Runs `body` on a helper thread and exits the process with a failure if
/// it has not finished within `secs` seconds (a hang, e.g. a cycle in a
/// list walked under a spin lock).
fn within(secs: u64, what: &str, body: impl FnOnce() + Send + 'static) {
    let done = std::sync::Arc::new(AtomicBool::new(false));
    let flag = done.clone();
    let worker = std::thread::spawn(move || {
        body();
        flag.store(true, Ordering::Release);
    });
    let step = Duration::from_millis(10);
    let mut waited = Duration::ZERO;
    while !done.load(Ordering::Acquire) {
        if waited >= Duration::from_secs(secs) {
            eprintln!("FAILED: {what} did not finish within {secs} s (hang)");
            // Not `exit`: the main thread's own exit guard would wait for
            // the lock the hung thread holds.
            std::process::abort();
        }
        std::thread::sleep(step);
        waited += step;
    }
    worker.join().unwrap();
}

// ---------------------------------------------------------------------------
// Provenance
// ---------------------------------------------------------------------------

/// Takes its `Box` by value and frees it inside: the `Box`'s tag is
/// (weakly) protected until the function returns, as in std's
/// `ThreadInit::init(self: Box<Self>)` that every spawned thread runs, or a
/// `Box<dyn FnOnce>` called.
#[inline(never)]
fn consume(b: Box<[u64; 4]>) -> u64 {
    let sum = b.iter().sum();
    drop(b);
    sum
}

/// Checked builds (every debug build) poison a freed slot. Were the poison
/// written through a pointer rebuilt with the page's exposed provenance,
/// the write would be foreign to the `Box` still protected by the caller's
/// frame: undefined behaviour under Stacked Borrows ("would remove [Unique]
/// which is weakly protected") and Tree Borrows ("write access through
/// <wildcard> is forbidden"). The object's bytes must go through the
/// caller's own pointer (`SlotReach::Object`), in the per-thread path as in
/// the locked one. Miri tells; natively it passes either way. std's
/// `thread::spawn` frees such a `Box` too.
fn box_freed_while_protected_is_written_through_its_own_pointer() {
    assert_eq!(consume(Box::new([1, 2, 3, 4])), 10);
}

// ---------------------------------------------------------------------------
// Reallocation
// ---------------------------------------------------------------------------

/// A block of the fallback (beyond 256 bytes) shrunk into a size class:
/// `resize` allocates a slot, copies, and frees the old block. Only a slot
/// may have its pointer swapped for one rebuilt with the page's exposed
/// provenance; `System`'s block never exposed its provenance, so such a
/// pointer handed to `System.dealloc` would have none that is valid:
/// undefined behaviour that Miri (permissive provenance) reports. Natively
/// it passes either way.
fn realloc_fallback_into_class_frees_the_fallback_pointer() {
    let mut v: Vec<u8> = Vec::with_capacity(1000); // the fallback (System)
    v.extend_from_slice(&[7; 10]);
    v.shrink_to_fit(); // realloc 1000 -> 10: into the 16-byte class
    assert_eq!(v, [7; 10]);
    drop(v);
    // The same through `GlobalAlloc::realloc` itself.
    let old = Layout::from_size_align(512, 8).unwrap();
    // SAFETY: a non-zero-size layout.
    let p = unsafe { std::alloc::alloc(old) };
    assert!(!p.is_null());
    // SAFETY: `p` is valid for 512 bytes.
    unsafe { p.write_bytes(3, 512) };
    // SAFETY: `p` came from `alloc` with `old`; 64 is a valid size.
    let q = unsafe { std::alloc::realloc(p, old, 64) };
    assert!(!q.is_null());
    // SAFETY: `q` is valid for 64 bytes.
    assert_eq!(unsafe { q.read() }, 3);
    // SAFETY: `q` came from `realloc` with the new size.
    unsafe { std::alloc::dealloc(q, Layout::from_size_align(64, 8).unwrap()) };
}

/// `realloc` within a class (in place), across classes, from a class to
/// the fallback, with pointers whose borrow a `Box` narrowed; over-aligned
/// layouts, and alignments beyond the largest class.
fn realloc_within_and_across_classes() {
    let before = in_use();
    for round in 0..SCALE / 10 + 1 {
        // A `Box<[u8]>` of 9 bytes: its pointer's borrow covers 9 bytes.
        let boxed: Box<[u8]> = vec![round as u8; 9].into_boxed_slice();
        let mut v = boxed.into_vec();
        v.extend_from_slice(&[1; 7]); // 16: same class, in place
        v.extend_from_slice(&[2; 40]); // 56: the 64-byte class
        v.extend_from_slice(&[3; 300]); // the fallback
        assert_eq!(v[0], round as u8);
        assert_eq!(v[15], 1);
        assert_eq!(v[16], 2);
        assert_eq!(v[356 - 1], 3);
        drop(v); // a fallback block (see realloc_fallback_into_class_*)
        let mut v = vec![round as u8; 30]; // the 32-byte class
        v.shrink_to_fit();
        let b = v.into_boxed_slice();
        let mut v = b.into_vec();
        v.truncate(3);
        v.shrink_to_fit(); // 32 -> 8: across classes, downwards
        assert_eq!(v, [round as u8; 3]);
    }
    for align in [16, 64, 128, 256, 512, 4096, 8192] {
        for size in [1, 8, 24, 100, 256] {
            let layout = Layout::from_size_align(size, align).unwrap();
            // SAFETY: non-zero size.
            let p = unsafe { std::alloc::alloc(layout) };
            assert!(!p.is_null());
            assert_eq!(p as usize % align, 0, "{layout:?}");
            // SAFETY: valid for `size` bytes.
            unsafe { p.write_bytes(0xAB, size) };
            // SAFETY: `p` from `alloc(layout)`; the new size is valid.
            let q = unsafe { std::alloc::realloc(p, layout, size * 2) };
            assert!(!q.is_null());
            assert_eq!(q as usize % align, 0, "{layout:?} grown");
            let last = q.wrapping_add(size - 1);
            // SAFETY: the first `size` bytes were kept.
            assert_eq!(unsafe { last.read() }, 0xAB);
            let grown = Layout::from_size_align(size * 2, align).unwrap();
            // SAFETY: `q` from `realloc` to `grown`.
            unsafe { std::alloc::dealloc(q, grown) };
        }
    }
    assert_eq!(in_use(), before, "every block came back");
}

// ---------------------------------------------------------------------------
// Thread exit
// ---------------------------------------------------------------------------

#[allow(clippy::vec_box)] // many small heap blocks, on purpose
struct FreesAndAllocates(Option<Vec<Box<u64>>>);

impl Drop for FreesAndAllocates {
    fn drop(&mut self) {
        // Frees blocks allocated while the thread ran (cached or not), then
        // allocates and frees some more, then keeps one in another
        // thread-local that may already be gone.
        drop(self.0.take());
        let more: Vec<String> = (0..50).map(|i| format!("late {i}")).collect();
        assert_eq!(more.len(), 50);
        let _ = KEEP.try_with(|k| k.borrow_mut().push(Box::new(1)));
    }
}

std::thread_local! {
    static EARLY: std::cell::RefCell<Option<FreesAndAllocates>> =
        const { std::cell::RefCell::new(None) };
    static LATE: std::cell::RefCell<Option<FreesAndAllocates>> =
        const { std::cell::RefCell::new(None) };
    #[allow(clippy::vec_box)] // many small heap blocks, on purpose
    static KEEP: std::cell::RefCell<Vec<Box<u64>>> =
        const { std::cell::RefCell::new(Vec::new()) };
}

/// Thread-locals registered before and after the allocator's exit guard,
/// each freeing blocks the thread allocated (some resting in its cache) and
/// allocating more while the thread exits; one keeps a block in a third
/// thread-local that another destructor fills after its own ran.
fn tls_destructors_free_and_allocate_in_every_order() {
    let before = in_use();
    for round in 0..if cfg!(miri) { 1 } else { 20 } {
        let threads: Vec<_> = (0..4_u64)
            .map(|t| {
                std::thread::spawn(move || {
                    let own = |n: u64| Some((0..n).map(Box::new).collect::<Vec<_>>());
                    if t % 2 == 0 {
                        EARLY.with(|s| *s.borrow_mut() = Some(FreesAndAllocates(own(64))));
                        KEEP.with(|k| k.borrow_mut().push(Box::new(t)));
                    }
                    let warm: Vec<Box<[u8; 24]>> = (0..100).map(|_| Box::new([0; 24])).collect();
                    drop(warm);
                    if t % 2 == 1 {
                        KEEP.with(|k| k.borrow_mut().push(Box::new(t)));
                        LATE.with(|s| *s.borrow_mut() = Some(FreesAndAllocates(own(64))));
                    }
                    if t == 3 {
                        EARLY.with(|s| *s.borrow_mut() = Some(FreesAndAllocates(own(10))));
                    }
                    let _ = round;
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
    }
    HEAP.flush_thread_cache(); // the main thread's own
    let after = HEAP.stats();
    assert_eq!(after.objects_in_use(), before, "balanced: {after}");
    assert_eq!(cached(), 0, "no exited thread still counts cached slots");
}

/// `stats`, `shrink_to_fit` and `flush_thread_cache` from two threads while
/// others cache blocks and exit, over and over; the counters balance.
fn counters_while_threads_exit() {
    let before = in_use();
    let stop = std::sync::Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..2)
        .map(|r| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut rounds = 0_usize;
                while !stop.load(Ordering::Relaxed) || rounds < 3 {
                    let s = HEAP.stats();
                    assert!(s.pages() < 1 << 20);
                    if r == 0 {
                        HEAP.shrink_to_fit();
                    } else {
                        HEAP.flush_thread_cache();
                    }
                    let noise: Vec<Box<[u64; 5]>> = (0..20).map(|i| Box::new([i; 5])).collect();
                    drop(noise);
                    rounds += 1;
                }
            })
        })
        .collect();
    for _ in 0..if cfg!(miri) { 2 } else { 200 } {
        let workers: Vec<_> = (0..3_usize)
            .map(|t| {
                std::thread::spawn(move || {
                    let v: Vec<Vec<u8>> = (0..SCALE / 50 + 5)
                        .map(|i| vec![t as u8; 1 + (i * 13) % 200])
                        .collect();
                    drop(v);
                })
            })
            .collect();
        for w in workers {
            w.join().unwrap();
        }
    }
    stop.store(true, Ordering::Relaxed);
    for r in readers {
        r.join().unwrap();
    }
    drop(stop);
    HEAP.flush_thread_cache();
    let after = HEAP.stats();
    assert_eq!(after.objects_in_use(), before, "balanced: {after}");
    assert_eq!(cached(), 0, "nothing cached: {after}");
}

// ---------------------------------------------------------------------------
// POSIX thread-specific data destructors (glibc)
// ---------------------------------------------------------------------------

#[cfg(all(target_os = "linux", target_env = "gnu", not(miri)))]
mod pthread {
    use std::ffi::c_void;

    /// `pthread_key_t` on Linux.
    pub type Key = u32;

    unsafe extern "C" {
        pub fn pthread_key_create(
            key: *mut Key,
            destructor: Option<unsafe extern "C" fn(*mut c_void)>,
        ) -> i32;
        pub fn pthread_setspecific(key: Key, value: *const c_void) -> i32;
        pub fn pthread_create(
            thread: *mut u64,
            attr: *const c_void,
            start: extern "C" fn(*mut c_void) -> *mut c_void,
            arg: *mut c_void,
        ) -> i32;
        pub fn pthread_join(thread: u64, result: *mut *mut c_void) -> i32;
        pub fn fork() -> i32;
        pub fn waitpid(pid: i32, status: *mut i32, options: i32) -> i32;
        pub fn _exit(code: i32) -> !;
    }

    /// Runs `start` on a thread of C's own making, and joins it.
    pub fn run_c_thread(start: extern "C" fn(*mut c_void) -> *mut c_void, arg: *mut c_void) {
        let mut thread = 0_u64;
        // SAFETY: `thread` is writable, default attributes, `start` a valid
        // start routine taking `arg`.
        let made = unsafe { pthread_create(&mut thread, core::ptr::null(), start, arg) };
        assert_eq!(made, 0);
        // SAFETY: `thread` was just created and is joined once.
        let joined = unsafe { pthread_join(thread, core::ptr::null_mut()) };
        assert_eq!(joined, 0);
    }
}

/// A thread that first caches blocks in the *last* round of glibc's
/// thread-specific-data destructors (`PTHREAD_DESTRUCTOR_ITERATIONS`, 4):
/// glibc never runs the allocator's key again, so its table is never given
/// back. It must stay a leak (the table listed, its slots counted as
/// cached), never a dangling pointer: the next thread, which reuses the
/// exited one's stack and static TLS, must not find or relink it there,
/// and `stats()` must still walk a sound list.
#[cfg(all(target_os = "linux", target_env = "gnu", not(miri)))]
fn table_first_used_in_the_last_destructor_round_is_a_leak_not_a_dangle() {
    use std::ffi::c_void;
    use std::sync::atomic::AtomicUsize;

    static KEY: AtomicUsize = AtomicUsize::new(0);
    static CALLS: AtomicUsize = AtomicUsize::new(0);

    unsafe extern "C" fn again(_: *mut c_void) {
        let call = CALLS.fetch_add(1, Ordering::SeqCst) + 1;
        if call < 4 {
            // Set again: glibc runs another round.
            // SAFETY: a key of this process; any value may be set.
            unsafe {
                pthread::pthread_setspecific(KEY.load(Ordering::SeqCst) as pthread::Key, 1 as _)
            };
        } else {
            let v: Vec<Box<[u64; 2]>> = (0..40).map(|i| Box::new([i; 2])).collect();
            drop(v);
        }
    }
    extern "C" fn sets_the_key(_: *mut c_void) -> *mut c_void {
        // SAFETY: a key of this process; any value may be set.
        let set = unsafe {
            pthread::pthread_setspecific(KEY.load(Ordering::SeqCst) as pthread::Key, 1 as _)
        };
        assert_eq!(set, 0);
        core::ptr::null_mut()
    }
    extern "C" fn caches(_: *mut c_void) -> *mut c_void {
        let v: Vec<Box<u64>> = (0..10).map(Box::new).collect();
        drop(v);
        core::ptr::null_mut()
    }

    // The allocator's key was created when the main thread first cached a
    // block, so it comes before this one in each round.
    let mut key: pthread::Key = 0;
    // SAFETY: `key` is writable; the destructor is a valid function.
    let created = unsafe { pthread::pthread_key_create(&mut key, Some(again)) };
    assert_eq!(created, 0);
    KEY.store(key as usize, Ordering::SeqCst);
    pthread::run_c_thread(sets_the_key, core::ptr::null_mut());
    assert_eq!(CALLS.load(Ordering::SeqCst), 4, "glibc ran four rounds");
    within(10, "stats() after a table was stranded", || {
        for _ in 0..4 {
            pthread::run_c_thread(caches, core::ptr::null_mut());
            std::thread::spawn(|| drop((0..10).map(Box::new).collect::<Vec<_>>()))
                .join()
                .unwrap();
            let _ = HEAP.stats();
        }
    });
}

/// `fork` while another thread owns a table: in the child that thread does
/// not exist, its exit guard never runs, and glibc hands its cached stack
/// to the child's next thread. The stranded table must stay a leak; the
/// child's threads and `stats()` must work.
#[cfg(all(target_os = "linux", target_env = "gnu", not(miri)))]
fn fork_strands_other_threads_tables_soundly() {
    let stop = std::sync::Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let worker = std::thread::spawn(move || {
        drop((0..10).map(Box::new).collect::<Vec<_>>());
        while !flag.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(5));
        }
    });
    std::thread::sleep(Duration::from_millis(50));
    // SAFETY: the child only spawns threads, allocates and exits; no lock of
    // the allocator is held now (the worker sleeps).
    let pid = unsafe { pthread::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        let done = std::sync::Arc::new(AtomicBool::new(false));
        let seen = done.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_secs(10));
            if !seen.load(Ordering::SeqCst) {
                eprintln!("FAILED: the forked child hung (a cycle in the list of tables)");
                // SAFETY: ends the child at once.
                unsafe { pthread::_exit(3) };
            }
        });
        for _ in 0..3 {
            std::thread::spawn(|| drop((0..10).map(Box::new).collect::<Vec<_>>()))
                .join()
                .unwrap();
            let _ = HEAP.stats();
        }
        done.store(true, Ordering::SeqCst);
        // SAFETY: ends the child without running the parent's exit code.
        unsafe { pthread::_exit(0) };
    }
    let mut status = 0;
    // SAFETY: `pid` is our child; `status` is writable.
    assert_eq!(unsafe { pthread::waitpid(pid, &mut status, 0) }, pid);
    stop.store(true, Ordering::Relaxed);
    worker.join().unwrap();
    assert_eq!(status, 0, "the child failed (status {status:#x})");
}

/// A POSIX thread-specific-data destructor that allocates, on a thread that
/// had not used the allocator's per-thread cache before: glibc runs these
/// (`__nptl_deallocate_tsd`) *after* the thread-local destructors
/// (`__call_tls_dtors`). An exit guard that were a Rust thread-local
/// destructor, armed then, would never run: the table would stay on
/// `TABLES` after its thread is gone (its slots counted as cached for
/// ever), and the next thread whose static TLS lands at the same address
/// would link a table to itself, so that `stats()` loops for ever under the
/// `TABLES` lock. On Linux the guard is a thread-specific-data key, which
/// glibc runs in a further round.
#[cfg(all(target_os = "linux", target_env = "gnu", not(miri)))]
fn pthread_key_destructor_does_not_leave_a_table_listed() {
    use std::ffi::c_void;

    unsafe extern "C" fn allocates(_: *mut c_void) {
        let v: Vec<Box<[u64; 2]>> = (0..40).map(|i| Box::new([i; 2])).collect();
        drop(v);
    }

    let mut key: pthread::Key = 0;
    // SAFETY: `key` is writable; the destructor is a valid function.
    let created = unsafe { pthread::pthread_key_create(&mut key, Some(allocates)) };
    assert_eq!(created, 0);
    /// A thread started by C code (a C library's pool, say): it sets its
    /// thread-specific value and returns, using no allocator before exit.
    extern "C" fn start(key: *mut c_void) -> *mut c_void {
        // SAFETY: `key` carries a key from `pthread_key_create`.
        let set = unsafe {
            pthread::pthread_setspecific(key as usize as pthread::Key, core::ptr::dangling())
        };
        assert_eq!(set, 0);
        core::ptr::null_mut()
    }

    HEAP.flush_thread_cache();
    let before_cached = cached();
    let mut thread = 0_u64;
    // SAFETY: `thread` is writable, default attributes, `start` a valid
    // start routine, its argument a plain number.
    let made = unsafe {
        pthread::pthread_create(
            &mut thread,
            core::ptr::null(),
            start,
            key as usize as *mut c_void,
        )
    };
    assert_eq!(made, 0);
    // SAFETY: `thread` was just created and is joined once.
    let joined = unsafe { pthread::pthread_join(thread, core::ptr::null_mut()) };
    assert_eq!(joined, 0);
    HEAP.flush_thread_cache();
    let leftover = cached().saturating_sub(before_cached);
    if leftover > 0 {
        eprintln!(
            "  a thread that exited still counts {leftover} cached slots: \
             its table is on TABLES, its exit guard never ran"
        );
    }
    // A thread reusing the exited thread's stack (and static TLS) lists its
    // table, then something walks the list.
    within(10, "stats() after a thread reused the stack", || {
        for _ in 0..4 {
            std::thread::spawn(|| {
                let v: Vec<Box<u64>> = (0..10).map(Box::new).collect();
                drop(v);
            })
            .join()
            .unwrap();
            let _ = HEAP.stats();
        }
    });
    assert_eq!(leftover, 0, "slots cached by an exited thread's table");
}

// ---------------------------------------------------------------------------
// Misuse inside the global allocator
// ---------------------------------------------------------------------------

/// A double free through `GlobalAlloc` in a checked build: the per-thread
/// path reports it with a panic (`Misuse::report`) from inside `dealloc`;
/// formatting and boxing the panic re-enter the allocator; the process must
/// abort with the message, not hang or recurse. Run in a child process.
fn double_free_through_global_alloc_aborts() {
    if !cfg!(debug_assertions) || cfg!(miri) {
        return;
    }
    let exe = std::env::current_exe().unwrap();
    let out = std::process::Command::new(exe)
        .arg("--child-double-free")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "the child must abort: {stderr}");
    assert!(stderr.contains("double free"), "the message: {stderr}");
}

fn child_double_free() {
    let layout = Layout::new::<[u64; 3]>();
    // SAFETY: non-zero size.
    let p = unsafe { std::alloc::alloc(layout) };
    // SAFETY: `p` from `alloc(layout)`.
    unsafe { std::alloc::dealloc(p, layout) };
    // SAFETY: deliberately not: the double free under test.
    unsafe { std::alloc::dealloc(p, layout) };
    // Not reached.
    std::process::exit(0);
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--child-double-free") {
        child_double_free();
    }
    let filter: Vec<&str> = args
        .iter()
        .filter(|a| !a.starts_with('-'))
        .map(String::as_str)
        .collect();
    #[allow(unused_mut)] // pushed to on glibc only
    let mut tests: Vec<(&str, fn())> = vec![
        (
            "box_freed_while_protected_is_written_through_its_own_pointer",
            box_freed_while_protected_is_written_through_its_own_pointer,
        ),
        (
            "realloc_within_and_across_classes",
            realloc_within_and_across_classes,
        ),
        (
            "tls_destructors_free_and_allocate_in_every_order",
            tls_destructors_free_and_allocate_in_every_order,
        ),
        ("counters_while_threads_exit", counters_while_threads_exit),
        (
            "double_free_through_global_alloc_aborts",
            double_free_through_global_alloc_aborts,
        ),
        (
            "realloc_fallback_into_class_frees_the_fallback_pointer",
            realloc_fallback_into_class_frees_the_fallback_pointer,
        ),
    ];
    #[cfg(all(target_os = "linux", target_env = "gnu", not(miri)))]
    tests.extend([
        (
            "pthread_key_destructor_does_not_leave_a_table_listed",
            pthread_key_destructor_does_not_leave_a_table_listed as fn(),
        ),
        (
            "table_first_used_in_the_last_destructor_round_is_a_leak_not_a_dangle",
            table_first_used_in_the_last_destructor_round_is_a_leak_not_a_dangle,
        ),
        (
            "fork_strands_other_threads_tables_soundly",
            fork_strands_other_threads_tables_soundly,
        ),
    ]);
    let mut passed = 0;
    for (name, test) in tests {
        if !filter.is_empty() && !filter.iter().any(|f| name.contains(f)) {
            continue;
        }
        println!("test {name} ...");
        test();
        println!("test {name} ... ok");
        passed += 1;
    }
    println!("global_alloc_edges: {passed} passed");
}

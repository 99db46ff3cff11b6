//! A hobby kernel's heap: slabs for small objects, a bump arena for big ones,
//! all in static memory.
//!
//! What this teaches:
//!
//! - the set-up a kernel does once at boot: hand a `static` memory region to
//!   `RegionPages` (the slab pages) and another to the allocator for big
//!   requests; nothing here ever calls a global allocator;
//! - the heap is a `SlabAllocator` in a plain `static`, built by a `const fn`
//!   before any code runs; its fallback, a small bump allocator written
//!   below, is any `GlobalAlloc`;
//! - kernel objects on it: task structs in a typed `SlabCache` sharing the
//!   same pages, and a growable log buffer written against the raw
//!   `allocate` / `reallocate` / `deallocate` API, which moves from class to
//!   class and on to the fallback as it grows;
//! - running out is an `Err`, never a panic: the kernel decides what to do.
//!
//! The heap is not made the process's `#[global_allocator]` here: std's
//! runtime allocates before `main`, before any boot code could hand over the
//! memory. A kernel has no such runtime and would install it (see the
//! `global_allocator` example for the std way).
//!
//! Run it with:
//!
//! ```text
//! cargo run --example kernel_heap
//! cargo run --example kernel_heap --features allocator-api2   # plus a Vec on HEAP
//! ```

use core::alloc::{GlobalAlloc, Layout};
use core::mem::MaybeUninit;
use core::ptr::{self, NonNull};
use core::sync::atomic::{AtomicBool, Ordering};

use minimal_slab::{AllocError, RegionPages, SlabAllocator, SlabCache};

const PAGE: usize = 4096;
const SLAB_PAGES: usize = 32;
const ARENA_BYTES: usize = 64 * 1024;

/// Page-aligned storage, so that no part of a region is lost to alignment.
#[repr(C, align(4096))]
struct PageAligned<T>(T);

/// The memory the slabs live in (128 KiB of `.bss`), and the memory for big
/// blocks (64 KiB). A kernel would pass the free RAM its boot loader reported.
static mut SLAB_MEMORY: PageAligned<[MaybeUninit<u8>; SLAB_PAGES * PAGE]> =
    PageAligned([MaybeUninit::uninit(); SLAB_PAGES * PAGE]);
static mut ARENA_MEMORY: PageAligned<[MaybeUninit<u8>; ARENA_BYTES]> =
    PageAligned([MaybeUninit::uninit(); ARENA_BYTES]);

/// The page source of every cache in the kernel, empty until boot.
static PAGES: RegionPages = RegionPages::empty();

/// The kernel heap: size classes of 8 to 256 bytes on `PAGES`, bigger
/// requests to the bump arena. Built at compile time.
static HEAP: SlabAllocator<&RegionPages, BumpArena> =
    SlabAllocator::new_in(&PAGES, BumpArena::empty());

/// Task structs get a cache of their own (exactly sized slots), on the same
/// pages as the heap.
static TASKS: SlabCache<Task, &RegionPages> = SlabCache::new_in(&PAGES);

/// Hands both regions over. Runs once, first thing at boot.
fn boot() {
    static BOOTED: AtomicBool = AtomicBool::new(false);
    assert!(!BOOTED.swap(true, Ordering::AcqRel), "boot runs once");
    // Raw pointers to a `static mut` are safe to take; references are not.
    let (slab_memory, arena_memory) = (&raw mut SLAB_MEMORY, &raw mut ARENA_MEMORY);
    // SAFETY: the guard above lets this line run once in the program's life,
    // and nothing else makes a reference to `SLAB_MEMORY`, so this
    // `&'static mut` is unique; from here on the memory belongs to `PAGES`.
    let slab_memory = unsafe { &mut (*slab_memory).0 };
    // SAFETY: as above, for `ARENA_MEMORY`, which then belongs to the arena.
    let arena_memory = unsafe { &mut (*arena_memory).0 };
    let pages = PAGES.add_memory(slab_memory);
    HEAP.fallback().add_memory(arena_memory);
    println!("== boot ==");
    println!("  slab region: {pages} pages of {PAGE} bytes");
    println!("  big-block arena: {ARENA_BYTES} bytes");
}

/// The fallback for big requests: a bump allocator over a region of its own.
/// It moves a cursor forward; a free only counts down the live blocks, and
/// once every block is back the whole arena is reused. Simple and O(1) —
/// enough for the few, mostly short-lived big buffers a small kernel has.
struct BumpArena {
    state: spin::Mutex<Arena>,
}

struct Arena {
    /// The region, once given; its provenance covers all `len` bytes.
    start: Option<NonNull<u8>>,
    len: usize,
    /// Offset of the first byte not handed out since the last reset.
    next: usize,
    /// Blocks handed out and not yet freed.
    live: usize,
}

// SAFETY: `start` leads only to memory the arena owns exclusively (it was
// given up as a `&'static mut`); moving the state to another thread moves that
// ownership, and every access goes through the lock.
unsafe impl Send for Arena {}

impl BumpArena {
    const fn empty() -> Self {
        Self {
            state: spin::Mutex::new(Arena {
                start: None,
                len: 0,
                next: 0,
                live: 0,
            }),
        }
    }

    fn add_memory(&self, memory: &'static mut [MaybeUninit<u8>]) {
        let mut arena = self.state.lock();
        assert!(arena.start.is_none(), "the arena takes one region");
        arena.len = memory.len();
        arena.start = Some(NonNull::from(memory).cast());
    }

    /// Bytes used since the last reset, and live blocks.
    fn usage(&self) -> (usize, usize) {
        let arena = self.state.lock();
        (arena.next, arena.live)
    }
}

// SAFETY: a block is a range of the region past the cursor, aligned as asked,
// and the cursor moves past it, so no two live blocks overlap; the cursor
// goes back to the start only when no block is live. The region is valid for
// the program's life (a `&'static mut` given up to the arena).
unsafe impl GlobalAlloc for BumpArena {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let mut arena = self.state.lock();
        let Some(start) = arena.start else {
            return ptr::null_mut(); // before boot
        };
        let cursor = start.as_ptr().wrapping_add(arena.next);
        let padding = cursor.align_offset(layout.align());
        let end = arena
            .next
            .checked_add(padding)
            .and_then(|offset| offset.checked_add(layout.size()));
        match end {
            Some(end) if end <= arena.len => {
                arena.next = end;
                arena.live += 1;
                cursor.wrapping_add(padding)
            }
            _ => ptr::null_mut(), // out of memory: the caller sees an `Err`
        }
    }

    unsafe fn dealloc(&self, _ptr: *mut u8, _layout: Layout) {
        let mut arena = self.state.lock();
        arena.live -= 1;
        if arena.live == 0 {
            arena.next = 0;
        }
    }
}

/// A kernel task's control block.
#[derive(Debug)]
#[allow(dead_code)] // a real scheduler would read every field
struct Task {
    pid: u32,
    priority: u8,
    state: TaskState,
    name: [u8; 16],
    saved_stack_pointer: usize,
    ticks: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(dead_code)]
enum TaskState {
    Ready,
    Running,
    Blocked,
}

impl Task {
    fn new(pid: u32, name: &str) -> Self {
        let mut bytes = [0; 16];
        let len = name.len().min(16);
        bytes[..len].copy_from_slice(&name.as_bytes()[..len]);
        Self {
            pid,
            priority: (pid % 4) as u8,
            state: TaskState::Ready,
            name: bytes,
            saved_stack_pointer: 0,
            ticks: 0,
        }
    }
}

/// A growable byte buffer on `HEAP`'s raw API, the way kernel code without
/// `alloc` writes one: a pointer, a length and a capacity.
struct KernelLog {
    ptr: NonNull<u8>,
    len: usize,
    capacity: usize,
}

impl KernelLog {
    const fn new() -> Self {
        Self {
            ptr: NonNull::dangling(),
            len: 0,
            capacity: 0,
        }
    }

    fn layout(capacity: usize) -> Layout {
        Layout::from_size_align(capacity, 1).expect("a log fits in memory")
    }

    /// Appends a line, growing the buffer (to twice its size, at least 32
    /// bytes) when it is full.
    fn write_line(&mut self, line: &str) -> Result<(), AllocError> {
        let needed = self.len + line.len() + 1;
        if needed > self.capacity {
            let capacity = needed.max(self.capacity * 2).max(32);
            self.ptr = if self.capacity == 0 {
                HEAP.allocate(Self::layout(capacity))?
            } else {
                // SAFETY: `ptr` is the pointer `allocate`/`reallocate`
                // returned for a block of `capacity` bytes, and on success it
                // is replaced at once.
                unsafe { HEAP.reallocate(self.ptr, Self::layout(self.capacity), capacity)? }
            };
            self.capacity = capacity;
        }
        for &byte in line.as_bytes().iter().chain(b"\n") {
            // SAFETY: `len < needed <= capacity`: inside the block.
            let end = unsafe { self.ptr.add(self.len) };
            // SAFETY: as above; the block is ours to write.
            unsafe { end.write(byte) };
            self.len += 1;
        }
        Ok(())
    }

    fn text(&self) -> &str {
        // SAFETY: the first `len` bytes of the block (or none, dangling) were
        // written by `write_line`, and `&self` keeps them from changing.
        let bytes = unsafe { core::slice::from_raw_parts(self.ptr.as_ptr(), self.len) };
        core::str::from_utf8(bytes).expect("only whole `str`s are written")
    }
}

impl Drop for KernelLog {
    fn drop(&mut self) {
        if self.capacity > 0 {
            // SAFETY: the block came from `HEAP` with this capacity, and the
            // log is gone after this.
            unsafe { HEAP.deallocate(self.ptr, Self::layout(self.capacity)) };
        }
    }
}

/// Where `HEAP` serves a block of `bytes` bytes from.
fn home(bytes: usize) -> String {
    let layout = Layout::from_size_align(bytes, 1).unwrap();
    match SlabAllocator::<&RegionPages, BumpArena>::size_class(layout) {
        Some(class) => format!("size-{class}"),
        None => "arena".to_string(),
    }
}

fn memory_line(when: &str) {
    let (arena_used, arena_blocks) = HEAP.fallback().usage();
    println!(
        "  [{when}] slab region: {} of {} pages free; arena: {arena_blocks} blocks, \
         {arena_used} bytes used",
        PAGES.available(),
        PAGES.capacity()
    );
}

fn kernel_main() {
    boot();
    memory_line("boot");

    // 1. Tasks: a typed cache, one exactly sized slot per task.
    println!("\n== tasks ==");
    let names = [
        "init", "idle", "shell", "netd", "logd", "timer", "fsd", "kbd",
    ];
    let mut tasks = Vec::new();
    for (pid, name) in (1..).zip(names) {
        tasks.push(TASKS.alloc(Task::new(pid, name)).expect("room for tasks"));
    }
    tasks[0].state = TaskState::Running;
    println!(
        "  {} tasks, {} bytes each (slot {}), {} per page; pid 1 is {:?}",
        tasks.len(),
        size_of::<Task>(),
        SlabCache::<Task, &RegionPages>::SLOT_SIZE,
        SlabCache::<Task, &RegionPages>::SLOTS_PER_SLAB,
        tasks[0].state
    );

    // 2. A log buffer growing through the raw API: each reallocation moves it
    //    to a bigger class, and past 256 bytes into the arena.
    println!("\n== kernel log on the raw API ==");
    let mut log = KernelLog::new();
    let mut capacity = 0;
    for tick in 0..40 {
        let task = &tasks[tick % tasks.len()];
        let name = core::str::from_utf8(&task.name)
            .unwrap()
            .trim_end_matches('\0');
        log.write_line(&format!("[{tick:>4}] switch to pid {} ({name})", task.pid))
            .expect("the log fits");
        if log.capacity != capacity {
            capacity = log.capacity;
            println!(
                "  {:>4} bytes written: buffer of {capacity:>4} bytes -> {}",
                log.len,
                home(capacity)
            );
        }
    }
    println!("  last line: {}", log.text().lines().last().unwrap_or(""));
    memory_line("tasks + log");

    // 3. Small raw requests share the size classes with everything else.
    let request = Layout::new::<[u64; 6]>();
    let packet = HEAP.allocate(request).expect("a 64-byte slot");

    // 4. Too big for the arena: an error the kernel can handle.
    let huge = Layout::from_size_align(ARENA_BYTES, 8).unwrap();
    let error = HEAP
        .allocate(huge)
        .expect_err("the arena is smaller than that");
    println!("\n  allocate({} bytes): Err({error})", huge.size());

    #[cfg(feature = "allocator-api2")]
    collections_on_the_heap();
    #[cfg(not(feature = "allocator-api2"))]
    println!("\n  (with --features allocator-api2, a Vec on HEAP would be shown here)");

    println!("\n== HEAP.stats() ==");
    print!("{}", HEAP.stats());
    println!("\n== TASKS.stats() ==");
    print!("{}", TASKS.stats());

    // 5. Tear down: every block back, every page back to the region.
    // SAFETY: `packet` came from `HEAP.allocate(request)` and is not used
    // again.
    unsafe { HEAP.deallocate(packet, request) };
    drop(log);
    drop(tasks);
    let released = HEAP.shrink_to_fit() + TASKS.shrink();
    println!("\n== after freeing everything and shrinking ({released} pages) ==");
    memory_line("end");
    assert_eq!(PAGES.available(), PAGES.capacity());
    assert_eq!(HEAP.fallback().usage(), (0, 0));
}

/// With the `allocator-api2` feature, `&HEAP` is an allocator for ordinary
/// collections too: a run queue as an `allocator_api2` `Vec`.
#[cfg(feature = "allocator-api2")]
fn collections_on_the_heap() {
    use allocator_api2::vec::Vec;

    let mut run_queue: Vec<u32, _> = Vec::new_in(&HEAP);
    run_queue.extend([3, 1, 4, 1, 5, 9, 2, 6]);
    run_queue.sort_unstable();
    run_queue.dedup();
    println!(
        "\n  run queue on HEAP (allocator-api2 Vec): {:?}, buffer of {} bytes -> {}",
        run_queue,
        run_queue.capacity() * 4,
        home(run_queue.capacity() * 4)
    );
}

fn main() {
    // A kernel's entry point would call this after setting up a stack.
    kernel_main();
}

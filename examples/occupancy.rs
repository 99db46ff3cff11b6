//! A picture of the slabs: fragmentation, reuse, and pages given back.
//!
//! What this teaches:
//!
//! - `for_each_slab` shows every slab of a cache (or of every size class of a
//!   `SlabAllocator`): which slots are used and which are free;
//! - freeing objects at random leaves holes in their slabs, and the pages stay
//!   held: a page goes back only when every slot on it is free;
//! - the next allocations fill those holes before any new page is taken, the
//!   slab at the head of the free list first, its most recently freed slot
//!   first;
//! - when everything is freed a cache keeps its empty slabs for the next
//!   burst (its reserve, and the pages of its recent peak:
//!   `CacheConfig::decay`), and `shrink()` gives those back too.
//!
//! Each stage is printed as a text grid, one row per slab, and all of them are
//! drawn in one SVG picture. Run it with:
//!
//! ```text
//! cargo run --example occupancy                          # SVG in the temp dir
//! cargo run --example occupancy -- docs/occupancy.svg    # or where you say
//! ```

use std::alloc::Layout;
use std::collections::BTreeMap;
use std::env;
use std::fmt::Write as _;
use std::fs;
use std::path::PathBuf;
use std::ptr::{self, NonNull};

use minimal_slab::{SlabAllocator, SlabCache, SlabOccupancy};

/// Every random choice comes from this seed, so every run draws the same
/// picture (only page addresses differ, and they are left out of the SVG).
const SEED: u64 = 0x0cc0_9a9c_5eed_2024;
/// Records allocated from the typed cache at the start.
const RECORDS: usize = 240;
/// Raw requests to the size classes at the start, each of one of `RAW_SIZES`.
const RAW_REQUESTS: usize = 120;
/// Request sizes in bytes: they land in the 64-, 128- and 256-byte classes.
const RAW_SIZES: [usize; 3] = [40, 100, 200];
/// Share of the live objects freed, in random order, to fragment the slabs.
const FREED_PERCENT: usize = 60;
/// Slots per line of the slot maps, terminal and SVG alike.
const WRAP: usize = 64;

/// The pooled object: about 100 bytes of something worth keeping.
#[derive(Debug, PartialEq)]
struct Record {
    id: u64,
    timestamp: u64,
    name: [u8; 28],
    readings: [f32; 14],
}

impl Record {
    fn new(id: u64) -> Self {
        let mut name = [b' '; 28];
        let label = format!("record-{id}");
        name[..label.len()].copy_from_slice(label.as_bytes());
        Self {
            id,
            timestamp: 1_700_000_000 + 7 * id,
            name,
            readings: std::array::from_fn(|i| id as f32 + i as f32 / 2.0),
        }
    }

    /// Whether the record still holds what it was built with: reusing the
    /// slots around it must not have touched it.
    fn is_intact(&self) -> bool {
        *self == Self::new(self.id)
    }
}

/// A raw allocation from the size classes, tagged with its number so its
/// memory can be checked before it is freed.
struct Request {
    ptr: NonNull<u8>,
    layout: Layout,
    tag: u64,
}

/// A tiny xorshift generator: deterministic and dependency-free.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, bound: usize) -> usize {
        (self.next() % bound as u64) as usize
    }
}

/// The cache under study, and the allocator whose size classes are shown
/// beside it.
struct Heaps {
    records: SlabCache<Record>,
    raw: SlabAllocator,
}

impl Heaps {
    fn allocate_record(&self, id: u64) -> minimal_slab::SlabBox<'_, Record> {
        self.records
            .alloc(Record::new(id))
            .expect("the global allocator has pages to spare")
    }

    fn request(&self, layout: Layout, tag: u64) -> Request {
        let ptr = self
            .raw
            .allocate(layout)
            .expect("every request fits a size class");
        // SAFETY: `ptr` was just allocated with `layout`, at least 40 bytes
        // aligned to 8: room and alignment for a `u64`.
        unsafe { ptr.cast::<u64>().write(tag) };
        Request { ptr, layout, tag }
    }

    fn give_back(&self, request: Request) {
        // SAFETY: written by `request` and not freed yet.
        let tag = unsafe { request.ptr.cast::<u64>().read() };
        assert_eq!(tag, request.tag, "a live request was overwritten");
        // SAFETY: allocated from `self.raw` with this layout, freed once (the
        // `Request` is consumed), and not used after this line.
        unsafe { self.raw.deallocate(request.ptr, request.layout) };
    }
}

/// What `for_each_slab` showed of one slab, copied out while the cache was
/// locked.
struct SeenSlab {
    page: usize,
    first_slot: usize,
    slot_size: usize,
    used: Vec<bool>,
}

impl SeenSlab {
    fn of(slab: &SlabOccupancy<'_>) -> Self {
        Self {
            page: slab.page_address(),
            first_slot: slab.slot_address(0),
            slot_size: slab.slot_size(),
            used: slab.slots().collect(),
        }
    }

    fn holds(&self, address: usize) -> bool {
        (self.first_slot..self.first_slot + self.used.len() * self.slot_size).contains(&address)
    }

    fn slot_index(&self, address: usize) -> usize {
        (address - self.first_slot) / self.slot_size
    }
}

/// The slabs of the typed cache, in `for_each_slab` order: the head of the
/// free list first.
fn record_slabs(records: &SlabCache<Record>) -> Vec<SeenSlab> {
    let mut seen = Vec::new();
    // The closure runs under the cache's lock, so it only copies; `seen` grows
    // from the global allocator, not from this cache.
    records.for_each_slab(|slab| seen.push(SeenSlab::of(&slab)));
    seen
}

/// The slabs of every size class that holds any, keyed by class size.
fn class_slabs(raw: &SlabAllocator) -> BTreeMap<usize, Vec<SeenSlab>> {
    let mut seen: BTreeMap<usize, Vec<SeenSlab>> = BTreeMap::new();
    raw.for_each_slab(|class, slab| seen.entry(class).or_default().push(SeenSlab::of(&slab)));
    seen
}

/// Numbers a cache's pages in the order they were first taken, so that rows
/// keep their place from stage to stage and the picture does not depend on
/// where the pages happen to be.
#[derive(Default)]
struct PageOrder {
    pages: Vec<usize>,
}

impl PageOrder {
    fn number(&mut self, page: usize) -> usize {
        match self.pages.iter().position(|&p| p == page) {
            Some(index) => index + 1,
            None => {
                self.pages.push(page);
                self.pages.len()
            }
        }
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Slot {
    Free,
    Used,
    /// Used now, free (or not there) in the previous stage.
    Taken,
}

impl Slot {
    fn symbol(self) -> char {
        match self {
            Slot::Free => '.',
            Slot::Used => '#',
            Slot::Taken => '+',
        }
    }
}

struct Row {
    number: usize,
    page: usize,
    slots: Vec<Slot>,
}

impl Row {
    fn in_use(&self) -> usize {
        self.slots.iter().filter(|&&s| s != Slot::Free).count()
    }
}

/// The slabs of one cache (the typed one, or one size class) at one stage.
struct Group {
    name: String,
    heading: String,
    rows: Vec<Row>,
}

struct Stage {
    title: &'static str,
    caption: String,
    groups: Vec<Group>,
}

impl Stage {
    fn row(&self, group: &str, number: usize) -> Option<&Row> {
        let group = self.groups.iter().find(|g| g.name == group)?;
        group.rows.iter().find(|r| r.number == number)
    }
}

/// Every stage taken so far, and the page numbering they share.
#[derive(Default)]
struct Album {
    record_pages: PageOrder,
    class_pages: BTreeMap<usize, PageOrder>,
    stages: Vec<Stage>,
}

impl Album {
    fn page_of(address: usize, page_size: usize) -> usize {
        address & !(page_size - 1)
    }

    /// Notes the page of a new record, so pages are numbered as taken.
    fn saw_record(&mut self, address: usize, page_size: usize) {
        self.record_pages.number(Self::page_of(address, page_size));
    }

    fn saw_request(&mut self, class: usize, address: usize, page_size: usize) {
        let pages = self.class_pages.entry(class).or_default();
        pages.number(Self::page_of(address, page_size));
    }

    /// Takes a picture of both heaps, prints it, and keeps it for the SVG.
    fn take(&mut self, title: &'static str, caption: String, heaps: &Heaps) {
        let mut groups = Vec::new();
        let records = record_slabs(&heaps.records);
        if !records.is_empty() {
            let geometry = heaps.records.stats();
            let heading = format!(
                "SlabCache<Record>: {}-byte slots, {} per slab",
                geometry.slot_size, geometry.slots_per_slab
            );
            groups.push(self.group("Record", heading, records, None));
        }
        for (class, slabs) in class_slabs(&heaps.raw) {
            let heading = format!(
                "SlabAllocator size-{class}: {} per slab",
                slabs[0].used.len()
            );
            groups.push(self.group(&format!("size-{class}"), heading, slabs, Some(class)));
        }
        let stage = Stage {
            title,
            caption,
            groups,
        };
        print_stage(self.stages.len() + 1, &stage, heaps);
        self.stages.push(stage);
    }

    fn group(
        &mut self,
        name: &str,
        heading: String,
        slabs: Vec<SeenSlab>,
        class: Option<usize>,
    ) -> Group {
        let previous = self.stages.last();
        let pages = match class {
            None => &mut self.record_pages,
            Some(class) => self.class_pages.entry(class).or_default(),
        };
        let mut rows: Vec<Row> = slabs
            .into_iter()
            .map(|slab| {
                let number = pages.number(slab.page);
                let before = previous.map(|stage| stage.row(name, number));
                let slots = slab
                    .used
                    .iter()
                    .enumerate()
                    .map(|(index, &used)| match (used, before) {
                        (false, _) => Slot::Free,
                        (true, None) => Slot::Used,
                        (true, Some(Some(row))) if row.slots[index] != Slot::Free => Slot::Used,
                        (true, Some(_)) => Slot::Taken,
                    })
                    .collect();
                Row {
                    number,
                    page: slab.page,
                    slots,
                }
            })
            .collect();
        rows.sort_by_key(|row| row.number);
        Group {
            name: name.to_owned(),
            heading,
            rows,
        }
    }
}

fn print_stage(number: usize, stage: &Stage, heaps: &Heaps) {
    println!("== {number}. {} ==", stage.title);
    println!("{}", stage.caption);
    if stage.groups.is_empty() {
        println!("  (no slabs: every page given back)");
    }
    for group in &stage.groups {
        println!("{}", group.heading);
        for row in &group.rows {
            let map: String = row.slots.iter().map(|s| s.symbol()).collect();
            let capacity = row.slots.len();
            let prefix = format!(
                "  slab {:<2} {:#014x} {:>3}/{:<3} ",
                row.number,
                row.page,
                row.in_use(),
                capacity
            );
            let mut lines = map.as_bytes().chunks(WRAP);
            if let Some(first) = lines.next() {
                println!("{prefix}{}", String::from_utf8_lossy(first));
            }
            for line in lines {
                println!(
                    "{:width$}{}",
                    "",
                    String::from_utf8_lossy(line),
                    width = prefix.len()
                );
            }
        }
    }
    println!("legend: # used   + used, taken since the previous stage   . free");
    print!("{}", heaps.records.stats());
    // The allocator's own table has a row per class, most of them idle here.
    let raw = heaps.raw.stats();
    println!(
        "  SlabAllocator: {} objects in use, {} pages held ({} bytes)\n",
        raw.objects_in_use(),
        raw.pages(),
        raw.bytes_held()
    );
}

/// Frees `FREED_PERCENT` of the live entries of `live`, in random order,
/// handing each to `free`.
fn free_at_random<T>(live: &mut [Option<T>], rng: &mut XorShift, mut free: impl FnMut(T)) {
    let mut order: Vec<usize> = (0..live.len()).filter(|&i| live[i].is_some()).collect();
    for i in (1..order.len()).rev() {
        order.swap(i, rng.below(i + 1));
    }
    let count = order.len() * FREED_PERCENT / 100;
    for index in order.into_iter().take(count) {
        free(live[index].take().expect("picked among the live entries"));
    }
}

fn main() -> std::io::Result<()> {
    let svg_path = env::args_os()
        .nth(1)
        .map_or_else(|| env::temp_dir().join("occupancy.svg"), PathBuf::from);
    let heaps = Heaps {
        records: SlabCache::new(),
        raw: SlabAllocator::new(),
    };
    let page_size = heaps.records.stats().page_size;
    let mut rng = XorShift(SEED);
    let mut album = Album::default();

    // 1. Fill: pages are taken one after the other, each filled in turn.
    let mut records: Vec<_> = (0..RECORDS as u64)
        .map(|id| {
            let record = heaps.allocate_record(id);
            album.saw_record(ptr::from_ref(&*record).addr(), page_size);
            Some(record)
        })
        .collect();
    let mut requests: Vec<_> = (0..RAW_REQUESTS as u64)
        .map(|tag| {
            let size = RAW_SIZES[rng.below(RAW_SIZES.len())];
            let layout = Layout::from_size_align(size, 8).expect("a valid layout");
            let class =
                <SlabAllocator>::size_class(layout).expect("every request fits a size class");
            let request = heaps.request(layout, tag);
            album.saw_request(class, request.ptr.addr().get(), page_size);
            Some(request)
        })
        .collect();
    album.take(
        "Filled",
        format!(
            "{RECORDS} Records and {RAW_REQUESTS} raw requests of {}, {} and {} bytes: \
             every slab full but the last of each cache.",
            RAW_SIZES[0], RAW_SIZES[1], RAW_SIZES[2]
        ),
        &heaps,
    );

    // 2. Fragment: free most objects, in random order.
    let pages_held = (heaps.records.stats().pages, heaps.raw.stats().pages());
    let mut freed_records = Vec::new();
    free_at_random(&mut records, &mut rng, |record| {
        assert!(record.is_intact(), "record {} was overwritten", record.id);
        freed_records.push(ptr::from_ref(&*record).addr());
    });
    let mut freed_layouts = Vec::new();
    free_at_random(&mut requests, &mut rng, |request| {
        freed_layouts.push(request.layout);
        heaps.give_back(request);
    });
    // Freed slots rest in this thread's cache first; give them back to their
    // slabs so that the pictures show the holes where they are.
    heaps.records.flush_thread_cache();
    heaps.raw.flush_thread_cache();
    assert_eq!(
        (heaps.records.stats().pages, heaps.raw.stats().pages()),
        pages_held,
        "no slab was emptied, so no page went back"
    );
    album.take(
        "Fragmented",
        format!(
            "{FREED_PERCENT}% freed in random order: the holes stay in their slabs, \
             and every page stays held."
        ),
        &heaps,
    );

    // Where the next record goes: the slab at the head of the free list (the
    // first one `for_each_slab` shows), in one of its free slots — the one
    // that went back to it last.
    let slabs = record_slabs(&heaps.records);
    let head = &slabs[0];

    // 3. Reuse: allocate two thirds as many as were freed.
    let refill = freed_records.len() * 2 / 3;
    for id in 0..refill as u64 {
        let record = heaps.allocate_record(RECORDS as u64 + id);
        if id == 0 {
            let address = ptr::from_ref(&*record).addr();
            assert!(
                head.holds(address) && freed_records.contains(&address),
                "the next record reuses a freed slot of the head slab"
            );
            println!(
                "The next Record goes to slab {} (head of the free list), slot {}: \
                 the last one given back to it.\n",
                album.record_pages.number(head.page),
                head.slot_index(address)
            );
        }
        records.push(Some(record));
    }
    let raw_refill = freed_layouts.len() * 2 / 3;
    for (tag, &layout) in freed_layouts.iter().take(raw_refill).enumerate() {
        requests.push(Some(heaps.request(layout, (RAW_REQUESTS + tag) as u64)));
    }
    assert_eq!(
        (heaps.records.stats().pages, heaps.raw.stats().pages()),
        pages_held,
        "reuse took no new page"
    );
    album.take(
        "Reused",
        format!(
            "{refill} Records and {raw_refill} raw requests again: freed slots are \
             handed out before any new page, one slab at a time."
        ),
        &heaps,
    );

    // 4. Free everything: the empty slabs stay, for the next burst.
    for record in records.drain(..).flatten() {
        assert!(record.is_intact(), "record {} was overwritten", record.id);
    }
    for request in requests.drain(..).flatten() {
        heaps.give_back(request);
    }
    // The last frees rest in this thread's cache: back to their slabs.
    heaps.records.flush_thread_cache();
    heaps.raw.flush_thread_cache();
    let kept = heaps.records.stats();
    assert_eq!(kept.objects_in_use, 0);
    assert_eq!(kept.pages, kept.empty_slabs, "only empty slabs are left");
    album.take(
        "Freed all",
        "Every object freed: each cache keeps its empty slabs for the next burst, \
         up to the pages it had in use at its recent peak."
            .to_owned(),
        &heaps,
    );

    // 5. Shrink: the kept slabs go back too.
    let raw_kept = heaps.raw.stats().pages();
    assert_eq!(heaps.records.shrink(), kept.pages);
    assert_eq!(heaps.raw.shrink_to_fit(), raw_kept);
    assert_eq!(heaps.records.stats().pages + heaps.raw.stats().pages(), 0);
    album.take(
        "Shrunk",
        "shrink() gives back every empty slab: no page is held.".to_owned(),
        &heaps,
    );

    fs::write(&svg_path, svg(&album.stages))?;
    println!("picture written to {}", svg_path.display());
    Ok(())
}

// The SVG layout, in pixels.
const WIDTH: usize = 800;
const PANEL_X: usize = 10;
const LABEL_X: usize = 22;
const NUMBER_END_X: usize = 142;
const GRID_X: usize = 150;
const PITCH: usize = 9;
const CELL: usize = 7;
const ROW_HEIGHT: usize = 11;

/// Draws every stage as a panel, one row of squares per slab.
fn svg(stages: &[Stage]) -> String {
    let columns = stages
        .iter()
        .flat_map(|stage| &stage.groups)
        .flat_map(|group| &group.rows)
        .map(|row| row.slots.len().min(WRAP))
        .max()
        .unwrap_or(WRAP);
    let occupancy_x = GRID_X + columns * PITCH + 8;

    let mut body = String::new();
    let mut y = 20;
    // Title, subtitle and legend.
    let _ = writeln!(
        body,
        r#"<text x="{LABEL_X}" y="{}" class="title">Slab occupancy: fragmentation, reuse, shrink</text>"#,
        y + 14
    );
    let _ = writeln!(
        body,
        r#"<text x="{LABEL_X}" y="{}" class="caption">One row per slab (a 4 KiB page), one square per slot. Record: a SlabCache&lt;Record&gt;; size-N: the size classes of a SlabAllocator.</text>"#,
        y + 34
    );
    y += 48;
    let legend = [
        ("u", "used"),
        ("n", "used, taken since the previous stage"),
        ("f", "free"),
    ];
    let mut x = LABEL_X;
    for (class, label) in legend {
        let _ = writeln!(
            body,
            r#"<path class="{class}" d="{}"/>"#,
            cell(x, y + 2, class)
        );
        let _ = writeln!(
            body,
            r#"<text x="{}" y="{}" class="legend">{label}</text>"#,
            x + CELL + 5,
            y + 9
        );
        x += CELL + 5 + label.len() * 6 + 24;
    }
    y += 22;

    for (index, stage) in stages.iter().enumerate() {
        let top = y;
        let mut panel = String::new();
        let _ = writeln!(
            panel,
            r#"<text x="{LABEL_X}" y="{}" class="heading">{}. {}</text>"#,
            top + 20,
            index + 1,
            stage.title
        );
        let _ = writeln!(
            panel,
            r#"<text x="{LABEL_X}" y="{}" class="caption">{}</text>"#,
            top + 36,
            escape(&stage.caption)
        );
        y = top + 46;
        if stage.groups.is_empty() {
            let _ = writeln!(
                panel,
                r#"<text x="{GRID_X}" y="{}" class="label">no slabs: every page given back</text>"#,
                y + 8
            );
            y += ROW_HEIGHT;
        }
        for (g, group) in stage.groups.iter().enumerate() {
            if g > 0 {
                y += 5;
            }
            let _ = writeln!(
                panel,
                r#"<text x="{LABEL_X}" y="{}" class="group">{}</text>"#,
                y + 7,
                escape(&group.name)
            );
            for row in &group.rows {
                draw_row(&mut panel, row, y, occupancy_x);
                y += row.slots.len().div_ceil(WRAP) * ROW_HEIGHT;
            }
        }
        y += 8;
        let _ = writeln!(
            body,
            r#"<rect x="{PANEL_X}" y="{top}" width="{}" height="{}" rx="6" class="panel"/>"#,
            WIDTH - 2 * PANEL_X,
            y - top
        );
        body.push_str(&panel);
        y += 10;
    }

    let mut out = String::new();
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{y}" viewBox="0 0 {WIDTH} {y}" role="img" aria-labelledby="title">"#
    );
    out.push_str(
        "<title id=\"title\">Slab occupancy of a SlabCache and a SlabAllocator: filled, \
         fragmented, reused, freed, shrunk</title>\n",
    );
    out.push_str(concat!(
        "<style>\n",
        "text{font-family:ui-sans-serif,system-ui,-apple-system,'Segoe UI',Helvetica,Arial,sans-serif;fill:#1f2933}\n",
        ".title{font-size:18px;font-weight:bold}\n",
        ".heading{font-size:14px;font-weight:bold}\n",
        ".caption{font-size:11.5px;fill:#52606d}\n",
        ".group{font-size:10px;font-weight:bold}\n",
        ".legend{font-size:11px}\n",
        ".label,.number{font-size:10px;font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace}\n",
        ".number{text-anchor:end;fill:#52606d}\n",
        ".panel{fill:#f4f6f9;stroke:#dde3ea}\n",
        ".u{fill:#3b6ea8}\n",
        ".n{fill:#e07b24}\n",
        ".f{fill:#ffffff;stroke:#a9b4c2;stroke-width:1}\n",
        "</style>\n",
    ));
    let _ = writeln!(out, r#"<rect width="{WIDTH}" height="{y}" fill="white"/>"#);
    out.push_str(&body);
    out.push_str("</svg>\n");
    out
}

/// One slab: its number, a path of squares per kind of slot, its occupancy.
fn draw_row(out: &mut String, row: &Row, y: usize, occupancy_x: usize) {
    let _ = writeln!(
        out,
        r#"<text x="{NUMBER_END_X}" y="{}" class="number">slab {}</text>"#,
        y + 7,
        row.number
    );
    for (kind, class) in [(Slot::Used, "u"), (Slot::Taken, "n"), (Slot::Free, "f")] {
        let mut d = String::new();
        for (index, _) in row.slots.iter().enumerate().filter(|(_, s)| **s == kind) {
            let x = GRID_X + index % WRAP * PITCH;
            let y = y + index / WRAP * ROW_HEIGHT;
            d.push_str(&cell(x, y, class));
        }
        if !d.is_empty() {
            let _ = writeln!(out, r#"<path class="{class}" d="{d}"/>"#);
        }
    }
    let in_use = row.in_use();
    let capacity = row.slots.len();
    let _ = writeln!(
        out,
        r#"<text x="{occupancy_x}" y="{}" class="label">{in_use}/{capacity} {}%</text>"#,
        y + 7,
        in_use * 100 / capacity
    );
}

/// One square as path data. Outlined squares sit on half pixels so their
/// one-pixel border stays sharp and they cover the same area as filled ones.
fn cell(x: usize, y: usize, class: &str) -> String {
    if class == "f" {
        format!("M{x}.5 {y}.5h{0}v{0}h-{0}z", CELL - 1)
    } else {
        format!("M{x} {y}h{CELL}v{CELL}h-{CELL}z")
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

//! Notices an AddressSanitizer build and tells the crate, which then marks
//! free slots for the sanitizer (see `src/poison.rs`). Stable Rust has no
//! `cfg` for sanitizers, so the flags are read here.
//!
//! Also tells the crate whether `SlabAllocator` as `#[global_allocator]`
//! may keep per-thread caches: its exit guard must not need a thread-local
//! destructor registered from inside the global allocator, which the
//! standard library allows from Rust 1.92 (rust-lang/rust#144465). On Linux
//! the guard is a POSIX thread-specific-data key, so any compiler will do;
//! elsewhere it is a `thread_local!` destructor, so the compiler must be
//! 1.92 or later, or `GlobalAlloc` keeps to the locked path (see
//! `src/raw/global_alloc.rs`). `MINIMAL_SLAB_GLOBAL_TLS=0` in the
//! environment keeps it to the locked path anyway.

fn main() {
    println!("cargo::rustc-check-cfg=cfg(minimal_slab_asan)");
    println!("cargo::rerun-if-env-changed=CARGO_ENCODED_RUSTFLAGS");
    let flags = std::env::var("CARGO_ENCODED_RUSTFLAGS").unwrap_or_default();
    // `-Zsanitizer=address`, `-Z sanitizer=address,leak`, ...
    let asan = flags
        .split(['\u{1f}', ' '])
        .filter_map(|flag| flag.split_once("sanitizer="))
        .any(|(_, list)| list.split(',').any(|name| name == "address"));
    if asan {
        println!("cargo::rustc-cfg=minimal_slab_asan");
    }

    println!("cargo::rustc-check-cfg=cfg(minimal_slab_global_tls)");
    println!("cargo::rerun-if-env-changed=MINIMAL_SLAB_GLOBAL_TLS");
    let refused = std::env::var_os("MINIMAL_SLAB_GLOBAL_TLS").is_some_and(|v| v == "0");
    let linux = std::env::var("CARGO_CFG_TARGET_OS").is_ok_and(|os| os == "linux");
    if !refused && (linux || rustc_minor().is_some_and(|minor| minor >= 92)) {
        println!("cargo::rustc-cfg=minimal_slab_global_tls");
    }
}

/// The minor version of the compiler building the crate (`rustc 1.95.0
/// (...)` gives 95), if it can be read.
fn rustc_minor() -> Option<u32> {
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let output = std::process::Command::new(rustc)
        .arg("--version")
        .output()
        .ok()?;
    let text = String::from_utf8(output.stdout).ok()?;
    let version = text.split_whitespace().nth(1)?;
    let mut parts = version.split('.');
    match (parts.next()?, parts.next()?) {
        ("1", minor) => minor.parse().ok(),
        _ => None,
    }
}

//! Notices an AddressSanitizer build and tells the crate, which then marks
//! free slots for the sanitizer (see `src/poison.rs`). Stable Rust has no
//! `cfg` for sanitizers, so the flags are read here.

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
}

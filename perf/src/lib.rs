//! Benchmarks of `minimal_slab` against the allocators and pools a user
//! would pick instead.

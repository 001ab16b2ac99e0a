//! Benchmark harness (see bench/README.md).
fn main() {}

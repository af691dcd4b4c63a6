//! Benchmark figures (placeholder while building).
fn main() {}

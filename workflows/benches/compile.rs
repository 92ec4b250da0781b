//! Compile-time benchmark (filled in below).
fn main() {}

//! The `intake` command line.
fn main() {}

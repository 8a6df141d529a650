//! loom model checks of zio-core's concurrent state machines. The tests
//! in `tests/` compile zio-core's own `lock.rs`, `claim.rs`, `once.rs` and
//! `cover.rs` with `cfg(zio_loom)` (set by `build.rs`), where those files
//! take loom's atomics and a modelled futex; this library itself is empty.

//! The mechanisms of zio, kept apart from the exported hooks.
//!
//! `libzio.so` (the `libzio` crate) is a thin layer of exported C symbols;
//! everything it decides or keeps lives here, in one module per mechanism, so
//! that each can be read and tested in-process without `LD_PRELOAD`:
//!
//! - [`config`]: the options table (`ZIO_*` environment), read once at start.
//! - [`log`]: messages to a private dup of stderr or `ZIO_LOG_FILE`, never
//!   allocating.
//! - [`stats`]: per-thread counters for every hook, summed on read;
//!   [`claim`]: how a thread takes a counter slot and gives it back.
//! - [`statfile`]: the live counters file `zio-stat` reads, where the
//!   counter slots live; and its reader.
//! - [`summary`]: the stats summary read back from a log (pure `std`).
//! - [`thread`]: the per-thread state (re-entrancy guard, counter slot).
//! - [`real`]: the real libc functions, resolved once, with safe fallbacks.
//! - [`pins`]: memory the kernel or a device holds pinned (io_uring
//!   registered buffers, RDMA regions), which zio never elides into.
//! - [`process`]: which `clone` and `syscall` calls copy the address space.
//! - [`uffd`]: the userfaultfd descriptor and the availability probe;
//!   [`selftest`]: its round trip, tested before the engine first starts.
//! - [`usermem`]: which caller memory (iovecs, message headers) zio may
//!   read without faulting.
//! - [`signals`]: the program's signal handlers behind a trampoline that
//!   holds signals arriving while zio's code runs on the thread.
//! - [`resources`]: zio's own resources running out (and `ZIO_INJECT`):
//!   elision stops, said once.
//! - [`runtime`]: start-up and exit of the library as a whole.
//! - [`engine`]: the copy-elision algorithm, one file per mechanism, over
//!   a memory trait ([`engine::Mem`]), on top of [`tracker`] (the record
//!   index) and [`ranges`] (page arithmetic). Pure: no system calls.
//! - [`elide`]: the engine in the running process: its lock ([`lock`]), the
//!   userfaultfd backend, the handler and collector threads, and the entry
//!   points the hooks call. [`vma`] says which memory may be elided into;
//!   [`heap`] is the private allocator zio's own data lives in; [`cover`]
//!   is what the engine tracks, as hooks read it without the lock.
//! - `model` (tests only): the engine against a simulated address space,
//!   byte for byte against plain copies.
//!
//! Where a `memcpy` is decided: libzio's exported `memcpy` (below the
//! threshold, or with nothing tracked, straight to libc) → [`elide::copy`]
//! (the lock; the plan executed after it) → [`engine::Engine::copy`]
//! (`engine/copy.rs`: the decision).
//!
//! Code in this crate may call libc (and emit `memcpy`) freely: inside
//! `libzio.so` such calls are redirected at link time to the real functions
//! (`-Wl,--wrap`), never to the hooks.

#![deny(missing_docs)]

pub mod claim;
pub mod config;
pub mod cover;
pub mod elide;
pub mod engine;
pub mod heap;
pub mod lock;
pub mod log;
mod model;
pub mod once;
pub mod pins;
pub mod process;
pub mod ranges;
pub mod real;
pub mod resources;
pub mod runtime;
pub mod selftest;
pub mod signals;
pub mod statfile;
pub mod stats;
pub mod summary;
pub mod thread;
pub mod tracker;
pub mod uffd;
pub mod usermem;
pub mod vma;

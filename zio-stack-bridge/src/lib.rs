//! The bridge between user-space IO stacks and zio (not built yet).
//!
//! zio removes the copies a program makes inside itself. A user-space IO
//! stack whose buffers live in the program's memory (smoltcp's socket rings,
//! iceoryx2's shared-memory samples) can let zio remove the copies at its API
//! too. This crate will hold that contract, as a C ABI and a Rust API:
//!
//! - **register**: the stack declares memory it received data into as an
//!   original it owns;
//! - **release**: before the stack reuses that memory, zio materializes every
//!   copy that still depends on it;
//! - **resolve**: when the stack transmits from a program buffer, zio tells it
//!   where the bytes really are.
//!
//! libzio.so will export these functions; this crate will find them with
//! `dlsym` at run time and do nothing when zio is not loaded, so a program
//! built with the bridge runs the same without zio. See `shared/DESIGN.md`,
//! "IO-stack bridge". Nothing is exported yet: the copy-elision engine it
//! depends on comes first.

#![deny(missing_docs)]

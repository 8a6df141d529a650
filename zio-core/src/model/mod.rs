//! Model-based tests of the engine: a simulated address space with
//! userfaultfd semantics, driven by random sequences of input, copy, touch,
//! write-to-original, output, free, realloc, discard and fork, and compared
//! byte for byte with a reference memory where every copy is real.
//!
//! The simulation plays both the program and the kernel: a load or store to
//! a missing page calls the engine's missing-fault handler, a store to a
//! write-protected page calls its write-protect handler, exactly as the
//! handler thread does in the real system. Copy plans are executed with those
//! same loads and stores, after the engine call returns (as the hooks do
//! after releasing the lock).
//!
//! - `sim`: the simulated memory (the engine's [`crate::engine::Mem`]);
//! - `world`: the program's and kernel's view of it, and the reference;
//! - `ops`: the operations, the random sequences, the run of a sequence;
//! - `props`: the property tests over random sequences, which also prove
//!   that the sequences reach each of the engine's paths;
//! - `cases`: one test per behaviour, on hand-written sequences;
//! - `chain`: the chain of fresh allocations real servers make;
//! - `rebuild`: rebuilding pages that several pieces share, and fills
//!   the kernel refuses;
//! - `regret`: every order of reading an elided copy against the bound on
//!   its faults;
//! - `lent`: memory an IO stack lends zio (the bridge contract);
//! - `costs`: what eliding costs beyond touches, and the policy weighing
//!   it: memory going back and forth between elided copies and other uses,
//!   redirects nothing is copied from, protection kept on idle originals.

#![cfg(test)]

mod cases;
mod chain;
mod costs;
mod lent;
mod ops;
mod props;
mod rebuild;
mod regret;
mod sim;
mod world;

//! bridge_ring: a user-space IO stack in Rust over `zio-stack-bridge`
//! (integration/tests/bridge.rs), the twin of integration/c/stack_bridge.c.
//!
//! usage: bridge_ring OUT_FILE
//!
//! The stack fills a page-aligned ring of SLOTS slots by its own stores and
//! lends each slot; the program copies every message into a `Vec` and that
//! into a second one, writes the first to OUT_FILE, and the stack's
//! transmit gathers the second into its transmit buffer (`Bridge::gather`),
//! which is written too. Slots are released before reuse while the second
//! copies of the last KEEP rounds are kept and checked at the end. Then the
//! bound: a copy of a lent slot is written into a pipe nobody reads yet, so
//! the write blocks with the slot pinned; a release then answers `Hold`
//! (reported on stderr: "release during an output: hold"), and `Done` once
//! the pipe is drained. stdout is the same with zio and without.

use std::alloc::{alloc_zeroed, Layout};
use std::fs::File;
use std::io::{Read, Write};
use std::time::Duration;

use zio_integration::mix;
use zio_stack_bridge::{Bridge, Released};

const SLOT: usize = 256 << 10;
const SLOTS: usize = 4;
const ROUNDS: u64 = 64;
const KEEP: usize = 8;

/// The stack receives message `round` into `slot` (its own stores).
fn receive(slot: &mut [u8], round: u64) {
    for (i, w) in slot.chunks_exact_mut(8).enumerate() {
        w.copy_from_slice(&mix((round << 32) | i as u64).to_le_bytes());
    }
}

fn holds(buf: &[u8], round: u64) -> bool {
    buf.chunks_exact(8)
        .enumerate()
        .all(|(i, w)| w == mix((round << 32) | i as u64).to_le_bytes())
}

/// The stack takes `slot` back before it changes it.
fn take_back(zio: &Bridge, slot: &[u8]) {
    while zio.release(slot.as_ptr(), slot.len(), Duration::from_millis(1)) == Released::Hold {}
}

fn main() {
    let out_path = std::env::args()
        .nth(1)
        .expect("usage: bridge_ring OUT_FILE");
    let zio = Bridge::get();
    let mut out = File::create(out_path).expect("create OUT_FILE");
    let layout = Layout::from_size_align(SLOTS * SLOT, 4096).unwrap();
    // SAFETY: a non-zero size; the ring lives until the process exits.
    let ring = unsafe { std::slice::from_raw_parts_mut(alloc_zeroed(layout), SLOTS * SLOT) };
    let mut tx = vec![0u8; SLOT];
    let mut kept: Vec<Vec<u8>> = Vec::new();
    for r in 0..ROUNDS {
        let s = (r as usize % SLOTS) * SLOT;
        if r as usize >= SLOTS {
            take_back(zio, &ring[s..s + SLOT]);
        }
        receive(&mut ring[s..s + SLOT], r);
        let slot = &ring[s..s + SLOT];
        // SAFETY: released (take_back) before the stack writes it again.
        unsafe { zio.register(slot.as_ptr(), SLOT) };
        let a = slot.to_vec();
        let b = a.clone();
        out.write_all(&a).expect("write");
        drop(a);
        zio.gather(&mut tx, &b);
        out.write_all(&tx).expect("write");
        kept.push(b);
        if kept.len() > KEEP {
            kept.remove(0);
        }
    }
    for s in 0..SLOTS {
        take_back(zio, &ring[s * SLOT..(s + 1) * SLOT]);
    }
    ring.fill(0xA5);
    for (k, b) in kept.iter().enumerate() {
        let r = ROUNDS - KEEP as u64 + k as u64;
        println!(
            "round {r} kept copy {}",
            if holds(b, r) { "intact" } else { "DIFFERS" }
        );
    }
    bound(zio, &mut ring[..SLOT]);
    println!("done");
}

/// The stack releases a slot while an output of a copy of it is blocked in
/// the kernel: `Hold`, then `Done` once the output has finished.
fn bound(zio: &Bridge, slot: &mut [u8]) {
    receive(slot, 1000);
    // SAFETY: released below before anything writes the slot.
    unsafe { zio.register(slot.as_ptr(), SLOT) };
    let copy = slot.to_vec();
    let (rd, wr) = nix::unistd::pipe().expect("pipe");
    let (mut rd, mut wr) = (File::from(rd), File::from(wr));
    let writer = std::thread::spawn(move || {
        wr.write_all(&copy).expect("pipe write");
        copy
    });
    // The writer fills the pipe and blocks, its gather list pinning the
    // slot under zio.
    std::thread::sleep(Duration::from_millis(100));
    let first = zio.release(slot.as_ptr(), SLOT, Duration::from_millis(1));
    eprintln!(
        "bridge_ring: release during an output: {}",
        if first == Released::Hold {
            "hold"
        } else {
            "done"
        }
    );
    let mut got = Vec::new();
    rd.read_to_end(&mut got).expect("pipe read");
    let copy = writer.join().expect("writer");
    take_back(zio, slot);
    slot.fill(0x5A);
    let ok = holds(&got, 1000) && holds(&copy, 1000);
    println!("bound: {}", if ok { "intact" } else { "DIFFERS" });
}

//! A server's copies along fresh heap chunks whose memory glibc unmaps and
//! maps again every message (integration/c/heap_chain.c): every copy is
//! elided, the output is byte for byte what it is without zio, and zio's
//! system calls per message stay within what re-registering the chunks
//! glibc trimmed needs. At a size too small to elide, the copies, frees
//! and writes of memory holding nothing zio tracks skip its engine, most
//! inputs soon go unrecorded, and zio starts no thread.

use std::process::Command;

use zio_integration::{compile_c, differential, pattern_file, TempDir};

const MESSAGES: u64 = 400;
const COPIES: u64 = 5;

#[test]
fn trimmed_heap_chunks_are_elided_with_few_system_calls() {
    let dir = TempDir::new("heap_chain");
    let bin = compile_c("heap_chain", dir.path());
    let input = pattern_file(&dir, (512 << 10) + 8 * 4096, 7);
    let run = differential("heap_chain", || {
        let mut c = Command::new(&bin);
        c.arg(&input)
            .arg(dir.path().join("out.bin"))
            .arg(MESSAGES.to_string());
        c
    });
    let elided = run.counter("elided_copies");
    assert!(
        elided >= (MESSAGES - 2) * COPIES,
        "copies not elided: {elided} of {}\n{}",
        MESSAGES * COPIES,
        run.log
    );
    // Per message: the two chunks glibc unmapped and mapped again are each
    // registered (one check, one or two memory-map queries, a
    // registration, a discard); the three reused ones need one check each.
    // Asking twice whether a trimmed chunk is registered adds two.
    let sys = ["syscalls_uffd", "syscalls_madvise", "syscalls_maps"]
        .iter()
        .map(|c| run.counter(c))
        .sum::<u64>() as f64
        / MESSAGES as f64;
    assert!(
        sys <= 12.5,
        "{sys:.2} system calls per message\n{}",
        run.log
    );
}

#[test]
fn copies_too_small_to_elide_skip_the_engine() {
    let dir = TempDir::new("heap_chain_small");
    let bin = compile_c("heap_chain", dir.path());
    let size: u64 = 64 << 10;
    let input = pattern_file(&dir, size as usize + 8 * 4096, 11);
    let run = differential("heap_chain at 64 KiB", || {
        let mut c = Command::new(&bin);
        c.arg(&input)
            .arg(dir.path().join("out.bin"))
            .arg(MESSAGES.to_string())
            .arg(size.to_string());
        c
    });
    assert_eq!(run.counter("elided_copies"), 0, "{}", run.log);
    // No copy could be elided, so zio never armed: no handler or
    // collector thread, and glibc's allocator stays single-threaded.
    assert!(
        run.stderr().contains("threads 1\n"),
        "zio started threads: {}",
        run.stderr()
    );
    // A recorded message takes the lock about five times: around the
    // pread, at the first copy (which reads the input and counts against
    // recording it) and at a free or two until the cover settles; the
    // other copies and the pwrite skip it (the cover). Once 64 copies in a row elided
    // nothing, the inputs go unrecorded for stretches of 64, 128, ...
    // inputs, and their messages skip it entirely.
    let unrecorded = run.counter("inputs_unrecorded");
    assert!(
        unrecorded >= MESSAGES / 3,
        "{unrecorded} of {MESSAGES} inputs left unrecorded\n{}",
        run.log
    );
    let calls = run.counter("engine_calls_program") as f64 / MESSAGES as f64;
    assert!(
        calls <= 3.0,
        "{calls:.2} engine calls per message\n{}",
        run.log
    );
}

//! A program that reads every byte it copies (integration/c/read_copies.c):
//! the policy refuses its copies, and then zio stops recording its inputs
//! for a while, so that its copies, writes and frees no longer pass
//! through the engine. The output is byte for byte what it is without zio.

use std::process::Command;

use zio_integration::{compile_c, differential, pattern_file, TempDir};

const MESSAGES: u64 = 1000;

fn run_read_copies(buffers: &str) {
    let dir = TempDir::new("read_copies");
    let bin = compile_c("read_copies", dir.path());
    let input = pattern_file(&dir, (512 << 10) + 8 * 4096, 3);
    let what = format!("read_copies {buffers}");
    let run = differential(&what, || {
        let mut c = Command::new(&bin);
        c.arg(&input)
            .arg(dir.path().join("out.bin"))
            .arg(MESSAGES.to_string())
            .arg(buffers);
        c
    });
    let unrecorded = run.counter("inputs_unrecorded");
    let skips = run.counter("policy_skips");
    let calls = run.counter("engine_calls_program") as f64 / MESSAGES as f64;
    // Left unrecorded: 64, 128, 256 and 512 inputs in turn, each after 64
    // refusals in a row (the first ones after the policy's sample).
    assert!(
        unrecorded >= MESSAGES / 2,
        "{what}: {unrecorded} inputs left unrecorded, {skips} skips\n{}",
        run.log
    );
    // Recorded, a message takes the lock about five times (its input, the
    // copy, the write, the frees); unrecorded, at most once.
    assert!(
        calls <= 2.5,
        "{what}: {calls:.2} engine calls per message\n{}",
        run.log
    );
    assert!(
        run.counter("elided_copies") < MESSAGES / 10,
        "{what}: the policy should refuse these copies\n{}",
        run.log
    );
}

#[test]
fn inputs_copied_into_refused_copies_go_unrecorded_into_heap_buffers() {
    run_read_copies("malloc");
}

#[test]
fn inputs_copied_into_refused_copies_go_unrecorded_into_a_reused_buffer() {
    run_read_copies("static");
}

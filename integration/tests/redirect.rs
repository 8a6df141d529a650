//! Input redirection in a real process: a program that reads every message
//! (in two calls) into one reused buffer, copies it twice (elided copies)
//! and writes the second copy out (integration/c/reused_buffer.c).
//!
//! Proves, with zio's engine counters and byte-exact output:
//!
//! * with `ZIO_REDIRECT_INPUT=1` (the default), from the second round on
//!   every read lands in zio's memory and the buffer becomes an unmapped
//!   copy of it: the old message needs no backup (that two reads of one
//!   message join into one piece is the model test
//!   `chunked_redirected_input_stays_one_piece`: here each read asks for
//!   exactly its part, so the second has no room to continue the first);
//! * with `ZIO_REDIRECT_INPUT=0`, the reads land in the buffer, and the old
//!   message is backed up inside the first read of each round.
//!
//! Either way the copies really are elided, the output file holds exactly
//! the messages read, stdout (the program's own checksums of its copies,
//! read at the end) is the same as without zio, and the copies still hold
//! the last message.

use std::path::PathBuf;
use std::process::Command;

use zio_integration::{compile_c, differential, engine_block, mix, Run, TempDir};

/// Size of one message (and of the program's buffers).
const CHUNK: usize = 512 << 10;
/// Messages read, copied and written by the program (its `ROUNDS`).
const ROUNDS: u64 = 200;
/// Copies that may go unelided (none did in practice).
const SLACK: u64 = 4;

/// The program, its input (ROUNDS different messages) and its output file.
struct Setup {
    dir: TempDir,
    bin: PathBuf,
    messages: Vec<u8>,
}

impl Setup {
    fn new(tag: &str) -> Setup {
        let dir = TempDir::new(tag);
        let bin = compile_c("reused_buffer", dir.path());
        // Word i of the file is mix(i): no two messages (or words) alike.
        let mut messages = vec![0u8; ROUNDS as usize * CHUNK];
        for (i, w) in messages.chunks_exact_mut(8).enumerate() {
            w.copy_from_slice(&mix(i as u64).to_le_bytes());
        }
        std::fs::write(dir.path().join("messages.bin"), &messages).unwrap();
        Setup { dir, bin, messages }
    }

    /// Runs the program without and with zio (same stdout, success), checks
    /// its own verdict and that the zio run's output file holds exactly the
    /// messages, and returns the zio run.
    fn run(&self, what: &str, redirect: &str) -> Run {
        let run = differential(what, || {
            let mut c = Command::new(&self.bin);
            c.arg(self.dir.path().join("messages.bin"))
                .arg(self.dir.path().join("out.bin"))
                .env("ZIO_REDIRECT_INPUT", redirect);
            c
        });
        assert!(run.stdout().ends_with("done\n"), "{}", run.stdout());
        let out = std::fs::read(self.dir.path().join("out.bin")).unwrap();
        if out != self.messages {
            let first_bad = out
                .chunks(CHUNK)
                .zip(self.messages.chunks(CHUNK))
                .position(|(a, b)| a != b);
            panic!(
                "{what}: output file differs from the messages ({} vs {} bytes, first bad round {first_bad:?})\n{}",
                out.len(),
                self.messages.len(),
                engine_block(&run.log)
            );
        }
        println!("{what}:\n{}", engine_block(&run.log));
        // Every round's two copies were elided and its write substituted:
        // each round's buffer really had copies depending on it.
        run.assert_counters(
            what,
            &[
                ("elided_copies", 2 * ROUNDS - SLACK),
                ("outputs_substituted", ROUNDS - SLACK),
            ],
        );
        run
    }
}

/// The default: reads land in zio's memory, and nothing is backed up after
/// the first redirection.
#[test]
fn redirected_input_needs_no_backup() {
    let setup = Setup::new("redirect-on");
    let what = "reused_buffer, ZIO_REDIRECT_INPUT=1";
    let run = setup.run(what, "1");
    // Both reads of every round but the first (round 0 lands in the buffer:
    // nothing depends on it yet).
    run.assert_counters(
        what,
        &[
            ("inputs_redirected", 2 * (ROUNDS - 1)),
            ("bytes_redirected", (ROUNDS - 1) * CHUNK as u64),
        ],
    );
    // Only the first redirection backs up: round 0's copies need its bytes
    // when round 1 arrives.
    assert_eq!(
        run.counter("bytes_backed_up"),
        CHUNK as u64,
        "{what}: redirected rounds were backed up\n{}",
        engine_block(&run.log)
    );
    // The page where the two reads meet becomes zio's memory too: nothing
    // of any round is written or copied for real.
    assert_eq!(
        run.counter("copied_bytes"),
        0,
        "{what}: bytes copied for real\n{}",
        engine_block(&run.log)
    );
}

/// `ZIO_REDIRECT_INPUT=0`: the reads land in the buffer, and each round's
/// first read backs the old message up for its copies.
#[test]
fn without_redirection_the_old_message_is_backed_up() {
    let setup = Setup::new("redirect-off");
    let what = "reused_buffer, ZIO_REDIRECT_INPUT=0";
    let run = setup.run(what, "0");
    assert_eq!(
        run.counter("inputs_redirected"),
        0,
        "{what}\n{}",
        engine_block(&run.log)
    );
    run.assert_counters(
        what,
        &[("bytes_backed_up", (ROUNDS - 1 - SLACK) * CHUNK as u64)],
    );
}

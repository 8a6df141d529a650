//! `ZIO_BACKUP_AHEAD` in a real process (with `ZIO_REDIRECT_INPUT=0`, under
//! which input lands in the reused buffer and needs backups): a program
//! that reads every message
//! into one reused buffer, copies it twice (elided copies that point at the
//! buffer) and writes the second copy out (integration/c/reused_buffer.c).
//!
//! Proves, with zio's engine counters and byte-exact output:
//!
//! * with `ZIO_BACKUP_AHEAD=1`, after most writes zio's collector thread
//!   (woken by the output) backs the buffer up for its copies before the
//!   next read reuses it (`backups_ahead`);
//! * with the default `ZIO_BACKUP_AHEAD=0`, the same backups are made
//!   inside the next read instead (`bytes_backed_up`, no `backups_ahead`);
//! * with `ZIO_BACKUP_AHEAD=1` in a process confined to one CPU (taskset),
//!   the option is ignored: the backups are made inside the reads.
//!
//! In every configuration the copies really are elided, the output file
//! holds exactly the messages read, stdout (the program's own checksums of
//! its copies, read at the end) is the same as without zio, and the copies
//! still hold the last message.
//!
//! After each write the program gives zio's thread time to run before its
//! next read: under zio it polls `backups_ahead` (libzio's `zio_counter`)
//! and goes on as soon as it grew, or after a bounded wait, so a machine
//! busy with other work delays the backups ahead instead of failing the
//! test. The counter only counts backups that zio's thread made while the
//! buffer still needed one, so waiting for it cannot make one up.

use std::path::PathBuf;
use std::process::Command;
use std::sync::Mutex;
use std::time::Instant;

use zio_integration::{compile_c, differential, engine_block, Run, TempDir};

/// Size of one message (and of the program's buffers).
const CHUNK: usize = 512 << 10;
/// Messages read, copied and written by the program (its `ROUNDS`).
const ROUNDS: usize = 200;
/// How long the program gives zio's thread after each write, at most, in
/// microseconds, when a backup ahead is expected: it goes on as soon as
/// zio's `backups_ahead` grew (after ~0.1-0.3 ms on an idle machine), so
/// this only matters on a busy one.
const WAIT_AHEAD_US: u32 = 10_000;
/// The same when no backup ahead is expected (the program then always
/// waits this long: zio's thread would have had time to run).
const WAIT_US: u32 = 1000;
/// Copies that may go unelided (none did in practice).
const SLACK: u64 = 4;
/// Rounds whose backup must be made in the expected place, ahead or in
/// the read (out of the 199 whose buffer is reread; all 199 in practice).
const MOST_ROUNDS: u64 = 150;

/// The tests measure what zio's background thread managed to do between
/// rounds, so they must not compete with each other for the CPUs.
static SERIAL: Mutex<()> = Mutex::new(());

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
        let mut messages = vec![0u8; ROUNDS * CHUNK];
        for (i, w) in messages.chunks_exact_mut(8).enumerate() {
            w.copy_from_slice(&mix(i as u64).to_le_bytes());
        }
        std::fs::write(dir.path().join("messages.bin"), &messages).unwrap();
        Setup { dir, bin, messages }
    }

    /// The program's command with `ZIO_BACKUP_AHEAD=ahead`, under
    /// `taskset -c cpu` if `cpu` is given.
    fn cmd(&self, ahead: &str, cpu: Option<u32>, wait_us: u32) -> Command {
        let mut c = match cpu {
            Some(cpu) => {
                let mut t = Command::new("taskset");
                t.arg("-c").arg(cpu.to_string()).arg(&self.bin);
                t
            }
            None => Command::new(&self.bin),
        };
        c.arg(self.dir.path().join("messages.bin"))
            .arg(self.dir.path().join("out.bin"))
            .arg(wait_us.to_string())
            .env("ZIO_BACKUP_AHEAD", ahead)
            // Backups happen only when input lands in the reused buffer
            // itself, not in zio's memory (the redirection test below
            // turns it back on).
            .env(
                "ZIO_REDIRECT_INPUT",
                std::env::var("ZIO_TEST_REDIRECT").unwrap_or_else(|_| "0".into()),
            );
        c
    }

    /// Runs the program without and with zio (same stdout, success), checks
    /// its own verdict and that the zio run's output file holds exactly the
    /// messages, and returns the zio run.
    fn run(&self, what: &str, ahead: &str, cpu: Option<u32>, wait_us: u32) -> Run {
        let t0 = Instant::now();
        let run = differential(what, || self.cmd(ahead, cpu, wait_us));
        println!("{what}: both runs took {:?}", t0.elapsed());
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
        println!("{what}:\n{}{}", run.stderr(), engine_block(&run.log));
        // Every round's two copies were elided and its write substituted:
        // each round's buffer really had copies depending on it.
        run.assert_counters(
            what,
            &[
                ("elided_copies", 2 * ROUNDS as u64 - SLACK),
                ("outputs_substituted", ROUNDS as u64 - SLACK),
            ],
        );
        run
    }
}

/// splitmix64's finalizer: a bijection, so distinct inputs give distinct
/// words.
fn mix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The CPUs this process may run on, from /proc/self/status
/// (`Cpus_allowed_list: 0-1,4`).
fn allowed_cpus() -> Vec<u32> {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let list = status
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
        .expect("no Cpus_allowed_list in /proc/self/status")
        .trim();
    let mut cpus = Vec::new();
    for part in list.split(',').filter(|p| !p.is_empty()) {
        let (lo, hi) = part.split_once('-').unwrap_or((part, part));
        cpus.extend(lo.parse::<u32>().unwrap()..=hi.parse::<u32>().unwrap());
    }
    cpus
}

fn assert_backups_in_reads(run: &Run, what: &str) {
    assert_eq!(
        run.counter("backups_ahead"),
        0,
        "{what}: no backup should be made ahead\n{}{}",
        run.stderr(),
        engine_block(&run.log)
    );
    run.assert_counters(what, &[("bytes_backed_up", MOST_ROUNDS * CHUNK as u64)]);
}

/// `ZIO_BACKUP_AHEAD=1` with 2+ CPUs: the collector thread backs the
/// reused buffer up after most writes, before the next read needs it.
#[test]
fn backups_are_made_ahead_by_zios_thread() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let setup = Setup::new("ahead-on");
    let what = "reused_buffer, ZIO_BACKUP_AHEAD=1";
    let run = setup.run(what, "1", None, WAIT_AHEAD_US);
    if allowed_cpus().len() < 2 {
        // Nothing to prove here: the option is ignored on one CPU.
        println!("{what}: only one CPU allowed, so the option is ignored");
        assert_backups_in_reads(&run, what);
        return;
    }
    assert!(
        run.counter("backups_ahead") >= MOST_ROUNDS,
        "{what}: backups_ahead = {} (expected >= {MOST_ROUNDS})\n{}{}",
        run.counter("backups_ahead"),
        run.stderr(),
        engine_block(&run.log)
    );
    run.assert_counters(what, &[("bytes_backed_up", MOST_ROUNDS * CHUNK as u64)]);
    // Each backup ahead is the whole buffer, counted in bytes_backed_up.
    assert!(
        run.counter("bytes_backed_up") >= run.counter("backups_ahead") * CHUNK as u64,
        "{what}: backups ahead are not in bytes_backed_up\n{}",
        engine_block(&run.log)
    );
}

/// `ZIO_BACKUP_AHEAD=0` (the default): the backups are made inside the
/// reads that reuse the buffer.
#[test]
fn without_the_option_backups_are_made_in_reads() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let setup = Setup::new("ahead-off");
    let what = "reused_buffer, ZIO_BACKUP_AHEAD=0";
    let run = setup.run(what, "0", None, WAIT_US);
    assert_backups_in_reads(&run, what);
}

/// `ZIO_BACKUP_AHEAD=1` in a process confined to one CPU: ignored, the
/// backups are made inside the reads.
#[test]
fn the_option_is_ignored_on_one_cpu() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let setup = Setup::new("ahead-1cpu");
    let cpu = allowed_cpus()[0];
    let what = format!("reused_buffer, ZIO_BACKUP_AHEAD=1, taskset -c {cpu}");
    let run = setup.run(&what, "1", Some(cpu), WAIT_US);
    assert_backups_in_reads(&run, &what);
}

/// `ZIO_REDIRECT_INPUT=1` (the default): from the second round on, each
/// read lands in zio's memory and the reused buffer becomes an unmapped copy
/// of it, so the old message needs no backup at all; the copies and the
/// output are still exact.
#[test]
fn redirected_input_needs_no_backup() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let setup = Setup::new("redirect");
    let what = "reused_buffer, ZIO_REDIRECT_INPUT=1";
    // Read by `cmd` only; the tests of this file run one at a time (SERIAL).
    std::env::set_var("ZIO_TEST_REDIRECT", "1");
    let run = setup.run(what, "0", None, WAIT_US);
    std::env::remove_var("ZIO_TEST_REDIRECT");
    run.assert_counters(
        what,
        &[
            ("inputs_redirected", ROUNDS as u64 - 1),
            ("bytes_redirected", (ROUNDS as u64 - 1) * CHUNK as u64),
            ("elided_copies", 2 * ROUNDS as u64 - 4),
            ("outputs_substituted", ROUNDS as u64 - 4),
        ],
    );
    // Only the first redirection backs up: round 0 landed in the buffer
    // itself, and its copies need its bytes when round 1 arrives.
    assert_eq!(
        run.counter("bytes_backed_up"),
        CHUNK as u64,
        "{what}: redirected rounds were backed up\n{}",
        engine_block(&run.log)
    );
}

//! Copy elision under load: C programs whose every large copy is elided,
//! run with and without zio. The output (checksums of everything they wrote
//! out) must be identical, and the engine's counters must show the copies
//! really were elided and the outputs really were substituted, so a zio that
//! stopped eliding would fail here as surely as one that corrupted bytes.
//!
//! - `elide_threads.c`: eight threads, each reading chunks of its own file,
//!   copying them in chains of private buffers, touching the copies,
//!   changing the originals and writing the copies out; all of them copying
//!   from one shared original at once, and taking turns (under a mutex) with
//!   one shared destination. Run three times to shake out races, the
//!   last with input redirection off (freed originals quarantined).
//!   Once more with a 1 MiB quarantine budget, which the freed input buffers
//!   overflow.
//! - `elide_nonblock.c`: elided copies sent through a non-blocking stream
//!   socket with a 32 KiB send buffer (a socketpair, then TCP on 127.0.0.1):
//!   partial writes and EAGAIN must behave exactly as without zio.

use std::process::Command;
use std::time::Instant;

use zio_integration::{compile_c, differential, TempDir};

const MIB: u64 = 1 << 20;

#[test]
fn eight_threads_copying_io_data_at_once_keep_every_byte() {
    let dir = TempDir::new("elide-threads");
    let bin = compile_c("elide_threads", dir.path());
    let mut first: Option<String> = None;
    for round in 1..=3 {
        let t = Instant::now();
        let what = format!("elide_threads, round {round}");
        let run = differential(&what, || {
            let mut c = Command::new("timeout");
            c.args(["-s", "KILL", "60"])
                .arg(&bin)
                .arg(dir.path())
                .arg("200");
            // The threads read parts of their copies on purpose; this test is
            // about concurrent elision, so the policy must keep eliding.
            c.env("ZIO_FAULT_RATIO", "1");
            // The last round lands every input in the program's buffers, so
            // that freed originals go through the quarantine.
            if round == 3 {
                c.env("ZIO_REDIRECT_INPUT", "0");
            }
            c
        });
        let out = run.stdout();
        assert_eq!(out.lines().count(), 10, "{what}: {out}");
        assert!(
            out.contains("unchanged") && out.contains("shared_dst=ok\n"),
            "{what}: a shared buffer went wrong\n{out}"
        );
        // The same program prints the same thing every time.
        match &first {
            None => first = Some(out.clone()),
            Some(f) => assert_eq!(f, &out, "{what}: output differs from round 1"),
        }

        // About 1.8 GiB of copies are elidable; a zio that elides nothing
        // fails every line below.
        run.assert_counters(&what, &[("elided_copies", 1000)]);
        run.assert_counters(&what, &[("elided_bytes", 256 * MIB)]);
        run.assert_counters(&what, &[("outputs_substituted", 100)]);
        run.assert_counters(&what, &[("bytes_substituted", 64 * MIB)]);
        // Touched copies were filled by the handler; changed originals were
        // write-protected and their dependents' bytes preserved first.
        run.assert_counters(&what, &[("faults_missing", 1)]);
        run.assert_counters(&what, &[("faults_wp", 1)]);
        assert!(run.preserved_bytes() > 0, "{what}: nothing preserved");
        // Eight threads share the engine's lock: their wait is reported, a
        // part of their time in the engine.
        let (wait, engine) = (
            run.counter("lock_wait_us_program"),
            run.counter("engine_us_program"),
        );
        assert!(
            wait > 0 && wait <= engine,
            "{what}: lock wait {wait} us of {engine} us in the engine"
        );
        // Each thread frees its input buffers while copies still depend on
        // them: redirected, they are copies of zio's memory themselves;
        // otherwise they are quarantined.
        if round == 3 {
            run.assert_counters(&what, &[("quarantined_total", 1)]);
        } else {
            run.assert_counters(&what, &[("inputs_redirected", 1)]);
        }
        eprintln!(
            "{what}: {:.2} s; elided_copies {} elided_bytes {} faults_missing {} faults_zero {} \
             faults_wp {} pages_by_fault {} pages_by_write {} outputs_substituted {} \
             bytes_substituted {} bytes_dropped {} live_records {} quarantined_total {} \
             policy_skips {} refused {}",
            t.elapsed().as_secs_f64(),
            run.counter("elided_copies"),
            run.counter("elided_bytes"),
            run.counter("faults_missing"),
            run.counter("faults_zero"),
            run.counter("faults_wp"),
            run.counter("pages_by_fault"),
            run.counter("pages_by_write"),
            run.counter("outputs_substituted"),
            run.counter("bytes_substituted"),
            run.counter("bytes_dropped"),
            run.counter("live_records"),
            run.counter("quarantined_total"),
            run.counter("policy_skips"),
            run.counter("refused"),
        );
    }
}

/// The same threads with a 1 MiB quarantine budget (default 64 MiB): freed
/// input buffers that copies still depend on overflow the quarantine, so the
/// oldest give up their dependents (materialized) and are freed at once,
/// while other threads keep copying from their own buffers.
#[test]
fn eight_threads_overflowing_a_small_quarantine_keep_every_byte() {
    let dir = TempDir::new("elide-threads-quarantine");
    let bin = compile_c("elide_threads", dir.path());
    let what = "elide_threads, ZIO_QUARANTINE=1M";
    let run = differential(what, || {
        let mut c = Command::new("timeout");
        c.args(["-s", "KILL", "60"])
            .arg(&bin)
            .arg(dir.path())
            .arg("200");
        c.env("ZIO_QUARANTINE", "1M").env("ZIO_FAULT_RATIO", "1");
        c
    });
    let out = run.stdout();
    assert!(
        out.contains("unchanged") && out.contains("shared_dst=ok\n"),
        "{what}: a shared buffer went wrong\n{out}"
    );
    run.assert_counters(what, &[("elided_bytes", 256 * MIB)]);
    run.assert_counters(what, &[("bytes_substituted", 64 * MIB)]);
    run.assert_counters(what, &[("quarantined_total", 1)]);
    // Over budget: the oldest quarantined buffers' dependents preserved
    // (backed up, or rebuilt once the backup budget is spent too).
    assert!(run.preserved_bytes() > 0, "{what}: nothing preserved");
    eprintln!(
        "{what}: elided_bytes {} bytes_substituted {} quarantined_total {} pages_by_gc {} \
         pages_by_write {}",
        run.counter("elided_bytes"),
        run.counter("bytes_substituted"),
        run.counter("quarantined_total"),
        run.counter("pages_by_gc"),
        run.counter("pages_by_write"),
    );
}

#[test]
fn nonblocking_writer_sees_the_same_partial_writes_and_eagain() {
    let dir = TempDir::new("elide-nonblock");
    let bin = compile_c("elide_nonblock", dir.path());
    for mode in ["unix", "tcp"] {
        let what = format!("elide_nonblock {mode}");
        let run = differential(&what, || {
            let mut c = Command::new("timeout");
            c.args(["-s", "KILL", "60"])
                .arg(&bin)
                .arg(dir.path())
                .arg(mode);
            c
        });
        let out = run.stdout();
        assert!(out.contains(" equals-file\n"), "{what}: {out}");
        assert!(out.contains("eagain_seen=yes\n"), "{what}: {out}");
        assert!(out.contains("partial_seen=yes\n"), "{what}: {out}");
        // The 8 MiB stream was copied (elided) chunk by chunk and went out
        // from the originals; a partially written chunk is offered again,
        // so the bytes substituted count at least the stream's elided part.
        run.assert_counters(&what, &[("elided_bytes", 7 * MIB)]);
        run.assert_counters(&what, &[("outputs_substituted", 16)]);
        // Counted as the kernel accepts them: the rest of a chunk that goes
        // out after the program changes its input is sent from pages
        // materialized by that change, not from the original.
        run.assert_counters(&what, &[("bytes_substituted", 4 * MIB)]);
        // The input changed while its copy was half sent.
        run.assert_counters(&what, &[("faults_wp", 1)]);
        eprintln!(
            "{what}: elided_bytes {} outputs_substituted {} bytes_substituted {} faults_wp {} \
             pages_by_write {} faults_missing {}",
            run.counter("elided_bytes"),
            run.counter("outputs_substituted"),
            run.counter("bytes_substituted"),
            run.counter("faults_wp"),
            run.counter("pages_by_write"),
            run.counter("faults_missing"),
        );
    }
}

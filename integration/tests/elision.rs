//! Copy elision under LD_PRELOAD, proven two ways at once: the output is
//! byte-for-byte what the program produces without zio (differential runs,
//! plus the programs' own predictions of every checksum from their data
//! generator), and zio's engine counters show that the copies really were
//! elided, that outputs really were substituted, and that the slow paths
//! (faults on copies, writes to originals, fork) really ran.
//!
//! Programs: integration/c/elide_chain.c and integration/c/elide_fork.c.
//! Every program arms alarm(): a run that hangs under zio ends with SIGALRM
//! (reported below as "signal: 14") instead of blocking the test suite.

use std::process::Command;

use zio_integration::{compile_c, differential, run, Run, TempDir};

const MIB: u64 = 1 << 20;
const PAGE: u64 = 4096;

fn chain_cmd(bin: &std::path::Path, dir: &TempDir, args: &[&str]) -> Command {
    let mut c = Command::new(bin);
    // elide_chain reads a few pages of some copies on purpose (to check the
    // fault path); these tests are about elision's mechanics through every
    // output call, so the policy must not stop eliding at those call sites.
    // (The policy itself is tested in zio-core's model tests.)
    c.arg(dir.path()).args(args).env("ZIO_FAULT_RATIO", "1");
    c
}

/// What elide_chain does (24 chunks of 512 KiB, 16 read from a file into
/// one reused buffer, 8 received from a socket), and what that must show:
///
/// * per chunk 5 elided copies (memcpy, memmove, mempcpy, memcpy, and the
///   copy inside realloc), of 127-128 pages each: 120 copies, ~60 MiB;
/// * per chunk 9 output calls and 8 sendmmsg messages that carry copies
///   whose pages are still unmapped (~4.9 MiB of the 5.4 MiB written per
///   chunk comes from copies);
/// * per chunk a store into a copy (a missing fault) and two stores into
///   the original after it was copied (write-protect faults);
/// * per chunk the memmove destination is freed untouched (dropped bytes);
/// * only a handful of copies are read, at the end: most elided pages are
///   never materialized by a fault.
///
/// A zio that elided nothing fails every line below.
fn assert_chain_elided(run: &Run, what: &str) {
    assert!(run.stdout().ends_with("done\n"), "{}", run.stdout());
    run.assert_counters(
        what,
        &[
            ("elided_copies", 100),
            ("elided_bytes", 48 * MIB),
            ("outputs_substituted", 200),
            ("bytes_substituted", 64 * MIB),
            ("pages_by_fault", 24),
            ("bytes_dropped", 8 * MIB),
        ],
    );
    // 24 copies read by the program fault in; 24 writes into an input
    // buffer its copies still read are caught: by write protection, or,
    // where the input was redirected into zio's memory (a buffer freed
    // and handed back by malloc), as a fault on its missing page.
    let faults = run.counter("faults_wp") + run.counter("faults_missing");
    assert!(
        run.counter("faults_missing") >= 24 && faults >= 48,
        "{what}: {faults} faults\n{}",
        zio_integration::engine_block(&run.log)
    );
    // Originals changed while copies depended on them: those bytes were
    // preserved first (backed up, or the copies rebuilt).
    assert!(
        run.preserved_bytes() >= 24 * PAGE,
        "{what}: preserved {} bytes\n{}",
        run.preserved_bytes(),
        zio_integration::engine_block(&run.log)
    );
    let touched = run.counter("pages_by_fault") * PAGE;
    let elided = run.counter("elided_bytes");
    assert!(
        touched * 10 < elided,
        "{what}: most elided pages should never be touched: {touched} of {elided} bytes faulted in\n{}",
        zio_integration::engine_block(&run.log)
    );
}

/// The main differential test: chains of copies of file and socket input,
/// written out through write, pwrite, writev, pwritev, pwritev2, send,
/// sendto, sendmsg and sendmmsg, are byte-exact under zio, and the counters
/// prove the copies were elided and the outputs substituted.
#[test]
fn copy_chains_are_byte_exact_and_really_elided() {
    let dir = TempDir::new("elide-chain");
    let bin = compile_c("elide_chain", dir.path());
    let run = differential("elide_chain", || chain_cmd(&bin, &dir, &[]));
    println!("elide_chain under zio:\n{}", run.log);
    assert_chain_elided(&run, "elide_chain");
}

/// The same program with ZIO_ENABLE=0: zio is loaded and counts the same
/// traffic, but elides nothing, and the output is identical to the plain
/// run (so the counters of the elision tests are not produced by merely
/// loading zio).
#[test]
fn disabled_zio_counts_the_traffic_and_elides_nothing() {
    let dir = TempDir::new("elide-off");
    let bin = compile_c("elide_chain", dir.path());
    let plain = run(chain_cmd(&bin, &dir, &[]), false, None);
    plain.assert_success("elide_chain without zio");
    let mut cmd = chain_cmd(&bin, &dir, &[]);
    cmd.env("ZIO_ENABLE", "0");
    let off = run(cmd, true, None);
    off.assert_success("elide_chain with ZIO_ENABLE=0");
    assert!(
        plain.output.stdout == off.output.stdout,
        "output differs with ZIO_ENABLE=0"
    );
    assert!(off.stats.processes() >= 1, "no zio summary\n{}", off.log);
    let copied: u64 = ["memcpy", "memmove", "mempcpy"]
        .iter()
        .map(|h| off.stats.hook(h).bytes)
        .sum();
    assert!(
        copied >= 48 * MIB,
        "zio should still see the copies: {copied} bytes\n{}",
        off.log
    );
    for name in [
        "elided_copies",
        "elided_bytes",
        "outputs_substituted",
        "bytes_substituted",
        "pages_by_fault",
    ] {
        assert_eq!(
            off.counter(name),
            0,
            "{name} with ZIO_ENABLE=0\n{}",
            off.log
        );
    }
}

/// As above, but every socket input buffer (an original) is freed right
/// after its chain, while copies of it live in reused buffers: zio must
/// quarantine it and keep serving the copies from it.
///
/// The danger is a hang (the run has a SIGALRM deadline): the first
/// reused-destination copy that drops the last piece of a quarantined
/// original releases it, and if zio freed it for real while that copy's
/// plan still pinned the next original, glibc's free would write the next
/// heap chunk's header on that original's write-protected first page, and
/// the write-protect fault would wait for the unpin forever. Reduced to
/// `freeing_a_quarantined_neighbour_inside_a_pinned_copy` below.
#[test]
fn originals_freed_while_their_copies_live() {
    let dir = TempDir::new("elide-free");
    let bin = compile_c("elide_chain", dir.path());
    let run = differential("elide_chain free-early", || {
        chain_cmd(&bin, &dir, &["free-early"])
    });
    println!("elide_chain free-early under zio:\n{}", run.log);
    assert_chain_elided(&run, "elide_chain free-early");
    run.assert_counters("elide_chain free-early", &[("quarantined_total", 1)]);
}

/// The smallest sequence that hangs zio (see elide_chain.c,
/// repro_pinned_free): two adjacent 64 KiB heap originals A and B with
/// elided copies X and Y; free(A) (quarantined for X); then
/// memcpy(X, Y + 1, 64 KiB - 1) drops X's pieces, which releases A, and pins
/// B for the fringe it copies from Y; zio's real free(A) writes B's chunk
/// header, on B's write-protected first page, inside that copy: the
/// write-protect fault is deferred until B is unpinned, which this very
/// thread would do after the free returns. Deadlock; SIGALRM after 5 s.
#[test]
fn freeing_a_quarantined_neighbour_inside_a_pinned_copy() {
    let dir = TempDir::new("repro-pinned");
    let bin = compile_c("elide_chain", dir.path());
    let run = differential("elide_chain repro-pinned-free", || {
        // The reproduction's buffers are 64 KiB heap blocks: their whole
        // pages only reach a 16 KiB threshold.
        let mut c = chain_cmd(&bin, &dir, &["repro-pinned-free"]);
        c.env("ZIO_THRESHOLD", "16K");
        c
    });
    assert!(run.stdout().ends_with("done\n"), "{}", run.stdout());
    run.assert_counters(
        "repro-pinned-free",
        &[("elided_copies", 3), ("quarantined_total", 1)],
    );
}

/// Freed originals beyond the quarantine budget are released by
/// materializing their copies. Materializing an original's last dependent
/// releases and deletes the original in the middle of the release, which
/// must not look it up again. 70 freed 1 MiB originals reach that with the
/// default budget, and one does with ZIO_QUARANTINE=0.
#[test]
fn quarantine_over_budget_releases_originals() {
    let dir = TempDir::new("repro-quarantine");
    let bin = compile_c("elide_chain", dir.path());
    for (rounds, budget) in [(1u64, Some("0")), (70, None)] {
        let what = format!("repro-quarantine {rounds} (ZIO_QUARANTINE={budget:?})");
        let run = differential(&what, || {
            let r = rounds.to_string();
            let mut c = chain_cmd(&bin, &dir, &["repro-quarantine", &r]);
            if let Some(b) = budget {
                c.env("ZIO_QUARANTINE", b);
            }
            c
        });
        assert!(run.stdout().ends_with("done\n"), "{}", run.stdout());
        run.assert_counters(
            &what,
            &[("elided_copies", rounds), ("quarantined_total", 1)],
        );
        // Released over budget: a copy's bytes preserved first.
        assert!(
            run.preserved_bytes() >= 255 * PAGE,
            "{what}: preserved {} bytes\n{}",
            run.preserved_bytes(),
            zio_integration::engine_block(&run.log)
        );
    }
}

/// Elided copies across fork(): the child (which inherits no userfaultfd
/// state) reads every copy correctly because zio materialized them all
/// before the fork; the parent reads the same bytes afterwards; elision
/// works in the child's fresh engine and resumes in the parent.
#[test]
fn fork_materializes_every_elided_copy_first() {
    let dir = TempDir::new("elide-fork");
    let bin = compile_c("elide_fork", dir.path());
    let run = differential("elide_fork", || {
        let mut c = Command::new(&bin);
        c.arg(dir.path());
        c
    });
    println!("elide_fork under zio:\n{}", run.log);
    let out = run.stdout();
    assert!(out.ends_with("done\n"), "{out}");
    assert!(out.contains("child exit 0\n"), "{out}");
    assert_eq!(
        out.lines().filter(|l| l.starts_with("child copy-")).count(),
        12,
        "{out}"
    );
    // 12 copies of 1 MiB made before the fork (255-256 pages each), one
    // after it in the parent (256 pages, all touched).
    run.assert_counters(
        "elide_fork",
        &[
            ("elided_copies", 13),
            ("elided_bytes", 12 * MIB),
            ("pages_by_fork", 12 * 255),
            ("pages_by_fault", 256),
        ],
    );
    // Every elided page was materialized, by the fork or by a touch after
    // it: none was left for the child to read as zeros.
    let elided_pages = run.counter("elided_bytes") / PAGE;
    let materialized = run.counter("pages_by_fork") + run.counter("pages_by_fault");
    assert!(
        materialized >= elided_pages,
        "{materialized} pages materialized of {elided_pages} elided\n{}",
        zio_integration::engine_block(&run.log)
    );
}

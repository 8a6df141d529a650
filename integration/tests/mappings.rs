//! `munmap`, `mremap` and `madvise(MADV_DONTNEED)` on memory zio tracks:
//! an original discarded or unmapped while its copy is elided (the copy
//! keeps the old bytes), an elided copy moved (its bytes move with it) or
//! discarded (zeros, as the kernel gives). Identical output with and
//! without zio, and the counters show the copies were elided first and
//! materialized by the unmap or discard. An elided copy spanning two
//! mappings is read back through faults.

use std::process::Command;

use zio_integration::{compile_c, counter, differential, last_words, pattern_file, TempDir};

#[test]
fn unmapping_moving_and_discarding_tracked_memory() {
    let dir = TempDir::new("mappings");
    let bin = compile_c("elide_mappings", dir.path());
    let input = pattern_file(&dir, 2 << 20, 5);
    let run = differential("elide_mappings", || {
        let mut c = Command::new("timeout");
        c.arg("30").arg(&bin).arg(&input);
        c
    });
    assert!(run.stdout().ends_with("done\n"), "{}", run.stdout());
    let log = &run.log;
    // Five 1 MiB copies, all elided before anything happened to them.
    assert!(
        counter(log, "elided_bytes") >= 5 * (1 << 20) - 5 * 8192,
        "{log}"
    );
    // Cases 1 and 2: the copy's 256 pages of bytes preserved before the
    // original went (backed up once, or rebuilt).
    assert!(run.preserved_bytes() >= 2 * 256 * 4096, "{log}");
    // Case 3: the moved copy's 256 pages rebuilt before the move.
    assert!(counter(log, "pages_by_other") >= 256, "{log}");
    // Cases 4 and 5: discarded or unmapped elided pages never rebuilt.
    assert!(
        counter(log, "bytes_dropped") >= (1 << 20) / 2 + (1 << 20),
        "{log}"
    );
    // Case 6: the copy over two mappings was elided (a sixth 1 MiB copy)
    // and its pages were rebuilt by faults whose read-ahead crossed from
    // one mapping into the other. The kernel refuses such a fill; done as
    // one call, the program waited on the fault for good (the run timed
    // out).
    assert!(
        counter(log, "elided_bytes") >= 6 * (1 << 20) - 6 * 8192,
        "{log}"
    );
    assert!(counter(log, "pages_by_fault") >= 256, "{log}");
    assert!(!log.contains("failed"), "{log}");
}

/// A large block of IO data grown with `realloc` (which glibc satisfies by
/// moving its pages with `mremap`) and then read backwards costs what it
/// costs without zio: no elided copy, nothing backed up, no fault. The
/// moved bytes are still IO data: the one copy made of them afterwards is
/// elided.
#[test]
fn realloc_of_io_data_follows_the_allocators_move() {
    let dir = TempDir::new("realloc-move");
    let bin = compile_c("realloc_move", dir.path());
    let input = pattern_file(&dir, 16 << 20, 51);
    let run = differential("realloc_move", || {
        let mut c = Command::new(&bin);
        c.arg(&input);
        c
    });
    let out = run.stdout();
    let sums: Vec<&str> = last_words(&out);
    assert_eq!(sums.len(), 2, "{out}");
    assert_eq!(sums[0], sums[1], "{out}");
    assert!(run.stats.hook("realloc").calls >= 2, "{}", run.log);
    // Only the explicit copy elided: not the reallocs.
    assert_eq!(run.counter("elided_copies"), 1, "{}", run.log);
    assert_eq!(run.counter("bytes_backed_up"), 0, "{}", run.log);
    // The program read the copy: its faults, and none for the moved block
    // (4096 pages of 16 MiB; fault-around fills them in runs).
    assert!(run.counter("pages_by_fault") <= 4096, "{}", run.log);
}

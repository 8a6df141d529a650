//! Memory the kernel or a device holds pinned is never elided into, nor
//! protected as an original: io_uring registered buffers (through liburing
//! and the raw system call, registered, unregistered and registered
//! again) and RDMA memory regions (the registration calls of a stand-in
//! libibverbs). Output identical with and without zio, and zio's counters
//! show the copies into and out of pinned memory were refused while those
//! into the same buffers once unpinned were elided.

use std::process::Command;

use zio_integration::{compile_c_with, differential, last_words, pattern_file, TempDir};

#[test]
fn io_uring_fixed_buffers_see_the_programs_bytes() {
    let dir = TempDir::new("uring");
    let bin = compile_c_with("uring_fixed", dir.path(), &["-luring"]);
    let input = pattern_file(&dir, 16 << 20, 31);
    let run = differential("uring_fixed", || {
        let mut c = Command::new("timeout");
        c.arg("60").arg(&bin).arg(&input).arg(dir.path());
        c
    });
    let out = run.stdout();
    let sums: Vec<&str> = last_words(&out);
    assert_eq!(sums.len(), 4, "{out}");
    assert!(
        sums.iter().all(|s| *s == sums[3]),
        "an output differs from the input:\n{out}"
    );
    // 15 copies into pinned buffers and 16 out of them refused; the first
    // copy (before registration) and the 16 after unregistration elided.
    assert!(run.counter("refused") >= 31, "{}", run.log);
    assert!(run.counter("elided_copies") >= 17, "{}", run.log);
}

/// Also zio's own `zio_pin`/`zio_unpin`, for memory zio cannot see
/// registered.
#[test]
fn an_rdma_region_is_not_elided_into_until_deregistered() {
    let dir = TempDir::new("rdma");
    let lib = compile_c_with("fake_ibverbs", dir.path(), &["-shared", "-fPIC"]);
    let dir_arg = format!("-L{}", dir.path().display());
    let rpath = format!("-Wl,-rpath,{}", dir.path().display());
    std::fs::rename(&lib, dir.path().join("libfakeibverbs.so")).unwrap();
    let bin = compile_c_with(
        "rdma_region",
        dir.path(),
        &[&dir_arg, &rpath, "-lfakeibverbs"],
    );
    let input = pattern_file(&dir, 1 << 20, 32);
    let run = differential("rdma_region", || {
        let mut c = Command::new(&bin);
        // The program reads every copy it makes: elided however touched.
        c.env("ZIO_FAULT_RATIO", "1").arg(&input);
        c
    });
    let out = run.stdout();
    let sums: Vec<&str> = last_words(&out);
    assert_eq!(sums.len(), 4, "{out}");
    assert!(sums.iter().all(|s| *s == sums[0]), "{out}");
    assert_eq!(
        run.counter("elided_copies"),
        2,
        "only the copies after deregistration and after zio_unpin:\n{}",
        run.log
    );
    assert!(run.counter("refused") >= 2, "{}", run.log);
}

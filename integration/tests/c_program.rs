//! A C program calling every hooked symbol (the `_chk` forms included), run
//! with and without zio: identical output, and every hook's counter shows the
//! call with at least the bytes the program moved through it.

use std::process::Command;

use zio_integration::{compile_c, differential, TempDir};

/// Minimum bytes each hook must have counted (from integration/c/all_hooks.c:
/// N = 100000, S = 20000, D = 4000).
const EXPECT: &[(&str, u64)] = &[
    ("memcpy", 300_000),
    ("memmove", 99_000),
    ("mempcpy", 99_999),
    ("__memcpy_chk", 100_000),
    ("__memmove_chk", 97_000),
    ("__mempcpy_chk", 100_000),
    ("read", 100_000),
    ("__read_chk", 100_000),
    ("pread", 100_000),
    ("pread64", 100_000),
    ("__pread_chk", 100_000),
    ("__pread64_chk", 100_000),
    ("readv", 100_000),
    ("preadv", 100_000),
    ("preadv2", 100_000),
    ("recv", 20_000),
    ("__recv_chk", 20_000),
    ("recvfrom", 4_000),
    ("__recvfrom_chk", 4_000),
    ("recvmsg", 20_000),
    ("recvmmsg", 12_000),
    ("write", 100_000),
    ("pwrite", 100_000),
    ("pwrite64", 100_000),
    ("writev", 100_000),
    ("pwritev", 100_000),
    ("pwritev2", 100_000),
    ("send", 24_000),
    ("sendto", 24_000),
    ("sendmsg", 20_000),
    ("sendmmsg", 12_000),
    ("free", 0),
    ("realloc", 200_000),
    ("munmap", 2 << 20),
    ("mremap", 2 << 20),
    ("madvise", 512 << 10),
    ("mprotect", 512 << 10),
    ("fork", 0),
    ("clone", 0),
    ("syscall", 0),
    ("sigaction", 0),
    ("signal", 0),
];

#[test]
fn every_hooked_symbol_is_reached_and_forwarded_exactly() {
    let dir = TempDir::new("c");
    let bin = compile_c("all_hooks", dir.path());
    let run = differential("all_hooks", || {
        let mut c = Command::new(&bin);
        c.arg(dir.path());
        c
    });
    assert!(run.stdout().ends_with("done\n"), "{}", run.stdout());

    let listed: Vec<&str> = include_str!("../../libzio/hooked-symbols.txt")
        .lines()
        .filter(|l| !l.trim().is_empty())
        .collect();
    assert_eq!(
        listed,
        EXPECT.iter().map(|e| e.0).collect::<Vec<_>>(),
        "the test must cover every hooked symbol"
    );
    let mut missing = Vec::new();
    for (name, min_bytes) in EXPECT {
        let c = run.stats.hook(name);
        if c.calls == 0 || c.bytes < *min_bytes {
            missing.push(format!("{name}: {c:?}, expected >= {min_bytes} bytes"));
        }
    }
    assert!(
        missing.is_empty(),
        "hooks not reached as expected:\n{}\nlog:\n{}",
        missing.join("\n"),
        run.log
    );
}

/// 300 threads alive at once (more than the 256 private counter slots), each
/// making 2000 copies of 777 bytes: no count is lost or doubled on either the
/// private or the shared path, and exited threads' counts reach the total.
#[test]
fn counters_are_exact_across_many_threads() {
    const THREADS: u64 = 300;
    const COPIES: u64 = 2000;
    let dir = TempDir::new("threads");
    let bin = compile_c("threads", dir.path());
    let run = differential("threads", || {
        let mut c = Command::new(&bin);
        c.args([THREADS.to_string(), COPIES.to_string()]);
        c
    });
    let m = run.stats.hook("memcpy");
    let want = THREADS * COPIES;
    // glibc itself makes a handful of memcpy calls through the PLT at
    // start-up and in pthread_create; allow a small margin above, none below.
    assert!(
        m.calls >= want && m.calls < want + 2000,
        "memcpy calls {} (expected {want} plus a few)",
        m.calls
    );
    assert!(
        m.bytes >= want * 777 && m.bytes < want * 777 + (1 << 20),
        "{m:?}"
    );
}

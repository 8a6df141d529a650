//! fork() right after an elided copy, with a `pthread_atfork` handler that
//! copies the same IO data and frees memory inside `fork` (glibc runs it
//! while zio is in the middle of its own fork handling on that thread).
//! Parent and child must both see the elided copy's bytes, and nothing may
//! hang. (zio empties its engine before the real fork, so the handler's
//! calls pass through; the re-entrancy guard zio holds across fork covers
//! the case where a pinned original keeps the engine busy.)

use std::process::Command;

use zio_integration::{compile_c, differential, pattern_file, TempDir};

#[test]
fn fork_after_elision_with_an_atfork_handler_copying_io_data() {
    let dir = TempDir::new("atfork");
    let bin = compile_c("atfork", dir.path());
    let input = pattern_file(&dir, 1 << 20, 11);
    let run = differential("atfork", || {
        let mut c = Command::new("timeout");
        c.arg("20").arg(&bin).arg(&input);
        c
    });
    let out = run.stdout();
    assert!(out.contains("child 0") && out.contains("parent 0"), "{out}");
    let elided = run.counter("elided_copies");
    assert!(
        elided >= 1,
        "the copy before fork must have been elided:\n{}",
        run.log
    );
}

/// Children made every way a process can be copied or spawned (`fork`,
/// `vfork`, `syscall(SYS_fork)`, raw `clone` and `clone3`, `clone()` with
/// and without `CLONE_VM`, `posix_spawn`), each right after fresh elided
/// copies, each reading every copied buffer: the same bytes in every child.
#[test]
fn every_fork_route_sees_every_elided_byte() {
    let dir = TempDir::new("forkroutes");
    let bin = compile_c("fork_routes", dir.path());
    let input = pattern_file(&dir, 4 << 20, 12);
    let run = differential("fork_routes", || {
        let mut c = Command::new("timeout");
        // Every copy elided, however often the children touched them.
        c.env("ZIO_FAULT_RATIO", "1")
            .arg("30")
            .arg(&bin)
            .arg(&input)
            .arg(dir.path());
        c
    });
    let out = run.stdout();
    assert!(out.ends_with("done\n"), "{out}");
    assert!(!out.contains("DIFFERENT"), "{out}");
    assert_eq!(out.matches("same bytes").count(), 9, "{out}");
    // Four 1 MiB copies elided before each of the eight routes.
    let elided = run.counter("elided_copies");
    assert!(elided >= 32, "{elided} elided copies:\n{}", run.log);
}

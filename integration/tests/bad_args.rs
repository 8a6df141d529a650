//! Every hooked call with arguments the kernel refuses (NULL, unmapped and
//! misaligned pointers, negative and oversized counts, closed descriptors,
//! bad signal numbers), each in its own child, before anything is tracked
//! and after an elided copy: identical return values and `errno` with and
//! without zio, and no case killed by a signal unless libc itself is.

use std::process::Command;

use zio_integration::{compile_c, differential, TempDir};

#[test]
fn bad_arguments_get_the_kernels_answer() {
    let dir = TempDir::new("badargs");
    let bin = compile_c("bad_args", dir.path());
    let run = differential("bad_args", || {
        let mut c = Command::new("timeout");
        c.arg("60").arg(&bin).arg(dir.path());
        c
    });
    let out = run.stdout();
    assert!(out.ends_with("done\n"), "{out}");
    // The output is the same without zio (`differential`): a case killed
    // here is killed there too. Only glibc's own `sigaction` may be, which
    // copies the action in user space before the system call.
    let killed: Vec<&str> = out
        .lines()
        .filter(|l| l.contains("killed"))
        .filter(|l| !l.starts_with("sigaction_gone ") && !l.starts_with("sigaction_old_gone "))
        .collect();
    assert!(killed.is_empty(), "cases killed:\n{}", killed.join("\n"));
    // (A child killed by a signal writes no summary.)
    let cases = out
        .lines()
        .filter(|l| l.contains("round 1") && !l.contains("killed"))
        .count() as u64;
    assert!(cases >= 60, "{out}");
    // Each second-round child elided its copy first: the calls met the
    // engine's paths, not only the pass-through one.
    let elided = run.counter("elided_copies");
    assert!(
        elided >= cases,
        "{elided} elided copies for {cases} tracked cases:\n{}",
        run.log
    );
}

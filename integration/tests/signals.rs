//! A SIGALRM handler firing every 200 µs copies, reads and writes buffers
//! zio elided while the main thread is inside zio's hooks: no deadlock (a
//! held lock would make the handler's fault wait forever), no wrong byte.

use std::process::Command;

use zio_integration::{compile_c, differential, pattern_file, TempDir};

#[test]
fn a_signal_handler_touching_elided_memory_neither_hangs_nor_misreads() {
    let dir = TempDir::new("signals");
    let bin = compile_c("signal_storm", dir.path());
    let input = pattern_file(&dir, 8 << 20, 41);
    let out = dir.path().join("out.bin");
    let run = differential("signal_storm", || {
        let mut c = Command::new("timeout");
        c.arg("60").arg(&bin).arg(&input).arg(&out).arg("2");
        c
    });
    let text = run.stdout();
    assert!(
        text.contains("mismatches in main 0, in handler 0"),
        "{text}"
    );
    assert!(text.contains("handler ran: yes"), "{text}");
    eprintln!("{}", run.stderr());
    // The main thread's copies were elided, and the handler itself
    // faulted on elided pages (the stable copy is re-elided every 16
    // rounds; the program counts the pages it found missing).
    assert!(run.counter("elided_copies") >= 50, "{}", run.log);
    assert!(run.counter("faults_missing") >= 10, "{}", run.log);
    let missing: u64 = run
        .stderr()
        .lines()
        .find_map(|l| l.strip_prefix("handler faulted on "))
        .and_then(|l| l.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no count from the program:\n{}", run.stderr()));
    assert!(missing > 0, "the handler never touched an elided page");
}

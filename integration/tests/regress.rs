//! The short form of `make regress`: every ordinary program of the suite
//! (scripts/regress.py: Python reading files and pipes, a socket relay,
//! http.server, multiprocessing with every start method, subprocess
//! pipes, dd, cat, sort, tar, gzip, zstd) runs once without and once with
//! zio, and its output must be the same bytes. (The ratios it prints are
//! figures for a reader, not assertions: one pair on a shared machine
//! proves nothing about speed.)

use std::process::Command;

use zio_integration::workspace;

#[test]
fn ordinary_programs_give_the_same_bytes_under_zio() {
    let out = Command::new("python3")
        .arg(workspace().join("scripts/regress.py"))
        .arg("--quick")
        .output()
        .expect("python3 is needed");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("{text}");
    for case in ["python read backwards", "multiprocessing spawn", "gzip"] {
        assert!(text.contains(case), "{case} did not run:\n{text}");
    }
}

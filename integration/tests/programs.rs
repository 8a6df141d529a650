//! Real programs under LD_PRELOAD: python3 doing large file and socket IO,
//! `cat` and `sort` over a large file. Output byte-identical to the run
//! without zio, and zio's counters show the hooks carried the traffic.

use std::process::Command;

use zio_integration::{differential, pattern, workspace, TempDir};

const MIB: u64 = 1 << 20;

/// The real interpreter behind `python3` (not a pyenv shim script, whose
/// extra processes would only blur the counters).
fn python() -> String {
    let out = Command::new("python3")
        .args(["-c", "import sys; print(sys.executable)"])
        .output()
        .expect("python3 is needed");
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

#[test]
fn python_file_and_socket_io() {
    let dir = TempDir::new("py");
    let script = workspace().join("integration/py/io_workload.py");
    let py = python();
    let run = differential("python io_workload", || {
        let mut c = Command::new(&py);
        c.arg(&script).arg(dir.path());
        c
    });
    assert!(run.stdout().contains("socket ") && run.stdout().ends_with("done\n"));
    let s = &run.stats;
    // 16 MiB written with os.write, read twice (os.read, readinto).
    assert!(s.hook("write").bytes >= 16 * MIB, "{:?}", s.hook("write"));
    assert!(s.hook("read").bytes >= 32 * MIB, "{:?}", s.hook("read"));
    // 8 MiB over TCP: sendall uses send(), recv_into uses recv().
    assert!(s.hook("send").bytes >= 8 * MIB, "{:?}", s.hook("send"));
    assert!(s.hook("recv").bytes >= 8 * MIB, "{:?}", s.hook("recv"));
    assert!(s.hook("memcpy").calls > 0 && s.hook("free").calls > 0);
}

fn big_text_file(dir: &TempDir) -> (std::path::PathBuf, Vec<u8>) {
    // 24 MiB of lines of random hex, so sort has real work to do.
    let raw = pattern(12 << 20, 7);
    let mut text = Vec::with_capacity(26 << 20);
    for chunk in raw.chunks(40) {
        for b in chunk {
            text.extend_from_slice(format!("{b:02x}").as_bytes());
        }
        text.push(b'\n');
    }
    let path = dir.path().join("big.txt");
    std::fs::write(&path, &text).unwrap();
    (path, text)
}

#[test]
fn cat_and_sort_over_a_large_file() {
    let dir = TempDir::new("coreutils");
    let (path, text) = big_text_file(&dir);

    let cat = differential("cat", || {
        let mut c = Command::new("cat");
        c.arg(&path);
        c
    });
    assert!(cat.output.stdout == text, "cat under zio changed the bytes");
    let size = text.len() as u64;
    assert!(
        cat.stats.hook("read").bytes >= size,
        "{:?}",
        cat.stats.hook("read")
    );
    assert!(
        cat.stats.hook("write").bytes >= size,
        "{:?}",
        cat.stats.hook("write")
    );

    let sort = differential("sort", || {
        let mut c = Command::new("sort");
        c.arg(&path).env("LC_ALL", "C");
        c
    });
    assert_eq!(sort.output.stdout.len(), text.len());
    // sort reads through stdio (invisible to any preload library) but moves
    // its lines with memcpy/memmove and manages buffers with free/realloc.
    let moves = sort.stats.hook("memcpy").calls + sort.stats.hook("memmove").calls;
    assert!(
        moves > 1000,
        "sort made only {moves} copies through the hooks"
    );
    assert!(sort.stats.hook("free").calls > 0);
}

//! `make install` and `make uninstall` into a staging directory: the
//! library, the header, both tools with their manual pages and completions;
//! the installed `zio-run` finds the installed library and runs a program
//! under it; uninstall leaves nothing behind.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use zio_integration::{workspace, TempDir};

/// `make TARGET DESTDIR=stage PREFIX=/usr/local` with the build step a
/// no-op (`make test` built everything already).
fn make(target: &str, stage: &Path) {
    let out = Command::new("make")
        .args(["-s", "-C"])
        .arg(workspace())
        .arg(target)
        .arg(format!("DESTDIR={}", stage.display()))
        .args(["PREFIX=/usr/local", "CARGO=true"])
        .output()
        .expect("make runs");
    assert!(
        out.status.success(),
        "make {target}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn files_under(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(files_under(&p));
        } else {
            out.push(p.display().to_string());
        }
    }
    out
}

#[test]
fn make_install_puts_every_file_in_place_and_uninstall_removes_them() {
    let stage = TempDir::new("install");
    make("install", stage.path());
    let root = stage.path().join("usr/local");
    let mut want = vec!["lib/libzio.so".to_string(), "include/zio.h".to_string()];
    for tool in ["zio-run", "zio-stat"] {
        want.push(format!("bin/{tool}"));
        want.push(format!("share/man/man1/{tool}.1"));
        want.push(format!("share/bash-completion/completions/{tool}"));
        want.push(format!("share/zsh/site-functions/_{tool}"));
        want.push(format!("share/fish/vendor_completions.d/{tool}.fish"));
    }
    for f in &want {
        let p = root.join(f);
        let meta = std::fs::metadata(&p).unwrap_or_else(|e| panic!("{f}: {e}"));
        assert!(meta.len() > 0, "{f} is empty");
        if f.starts_with("bin/") {
            assert_eq!(meta.permissions().mode() & 0o777, 0o755, "{f}");
        }
    }
    assert_eq!(files_under(stage.path()).len(), want.len());

    // The manual pages are roff with every section the tool documents.
    let man = std::fs::read_to_string(root.join("share/man/man1/zio-stat.1")).unwrap();
    assert!(man.starts_with(".ie") || man.starts_with(".TH"), "roff");
    for section in ["OPTIONS", "COUNTERS", "FILES"] {
        assert!(man.contains(&format!(".SH {section}")), "{section}");
    }
    let man = std::fs::read_to_string(root.join("share/man/man1/zio-run.1")).unwrap();
    assert!(man.contains(r"\-\-threshold") && man.contains("ZIO_THRESHOLD"));

    // The bash completion loads and registers itself.
    let bash = root.join("share/bash-completion/completions/zio-run");
    let out = Command::new("bash")
        .arg("-c")
        .arg(format!("source {} && complete -p zio-run", bash.display()))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The installed launcher finds ../lib/libzio.so and runs a program
    // with it preloaded.
    let zio_run = root.join("bin/zio-run");
    let out = Command::new(&zio_run)
        .arg("--check")
        .env_remove("ZIO_LIB")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let lib = std::fs::canonicalize(root.join("lib/libzio.so")).unwrap();
    assert!(
        text.contains(&lib.display().to_string()),
        "zio-run --check names the installed library:\n{text}"
    );
    let out = Command::new(&zio_run)
        .args(["sh", "-c", "echo $LD_PRELOAD"])
        .env_remove("LD_PRELOAD")
        .env_remove("ZIO_LIB")
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        lib.display().to_string()
    );

    make("uninstall", stage.path());
    assert_eq!(files_under(stage.path()), Vec::<String>::new());
}

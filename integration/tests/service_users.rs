//! Servers that run as their own users: with `vm.unprivileged_userfaultfd=0`
//! a service user's process runs pass-through until `zio-run --setup --user
//! NAME` gives it `/dev/userfaultfd`; then it elides (Debian's redis-server
//! as user `redis`, every byte verified), a user not named still passes
//! through, and `--setup --undo` puts the device, the group and the files
//! back as they were.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use zio_integration::redis::{bulk, command, Server};
use zio_integration::{
    as_user, collect_logs, compile_c, lib_path, pattern, pattern_file, require_root,
    require_unprivileged_userfaultfd_off, without_zio_env, zio_run_path, Stats, TempDir,
};

const STATE: &str = "/var/lib/zio/setup";
const RULE: &str = "/etc/udev/rules.d/60-zio-userfaultfd.rules";
const DEVICE: &str = "/dev/userfaultfd";

fn zio_run(args: &[&str]) -> String {
    let out = Command::new(zio_run_path()).args(args).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "zio-run {args:?}: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

/// Undoes the setup even when the test fails half-way.
struct Undo;

impl Drop for Undo {
    fn drop(&mut self) {
        let _ = Command::new(zio_run_path())
            .args(["--setup", "--undo"])
            .output();
    }
}

/// `drop_privileges copy FILE` as `user` (with that user's groups) under
/// zio: its stdout and its zio log.
fn copy_as(bin: &Path, input: &Path, user: &str, logs: &Path) -> (String, String) {
    let mut c = as_user(user);
    without_zio_env(&mut c)
        .arg(format!("LD_PRELOAD={}", lib_path().display()))
        .arg(bin)
        .arg("copy")
        .arg(input)
        .env("ZIO_STATS", "1")
        .env("ZIO_LOG_FILE", logs.join("zio.%p.log"));
    let out = c.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        collect_logs(logs),
    )
}

fn device() -> (u32, u32, u32) {
    let m = std::fs::metadata(DEVICE).unwrap();
    (m.uid(), m.gid(), m.mode() & 0o7777)
}

fn chown_to(p: &Path, user: &str) {
    let ok = Command::new("chown")
        .args([&format!("{user}:"), p.to_str().unwrap()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "chown {user} {}", p.display());
}

fn open_dir(dir: &TempDir, name: &str, user: &str) -> PathBuf {
    let d = dir.path().join(name);
    std::fs::create_dir(&d).unwrap();
    chown_to(&d, user);
    d
}

#[test]
fn service_users_elide_after_setup_and_pass_through_after_undo() {
    require_root("the service-user setup test");
    require_unprivileged_userfaultfd_off("the service-user setup test");
    assert!(
        !Path::new(STATE).exists(),
        "a zio setup is in place on this machine and this test would undo it: \
         run `zio-run --setup --undo` first"
    );
    let dir = TempDir::new("service-users");
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let input = pattern_file(&dir, 1 << 20, 31);
    std::fs::set_permissions(&input, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    let bin = compile_c("drop_privileges", dir.path());
    let logs = open_dir(&dir, "logs", "redis");
    let before = device();

    let (plain_sum, log) = copy_as(&bin, &input, "redis", &logs);
    assert!(
        log.contains("pass-through (userfaultfd unavailable: EPERM)")
            && log.contains("zio-run --setup --user NAME"),
        "before the setup, user redis should be refused with a hint:\n{log}"
    );

    let _undo = Undo;
    let out = zio_run(&["--setup", "--user", "redis"]);
    assert!(out.contains("added redis to group zio"), "{out}");
    assert!(
        out.contains("not everyone"),
        "the setup says what it grants: {out}"
    );
    let (_, gid, mode) = device();
    assert_eq!(mode, 0o660);
    assert_ne!(gid, before.1, "the device did not change group");
    assert!(std::fs::read_to_string(RULE)
        .unwrap()
        .contains("GROUP=\"zio\""));
    // Setting up twice changes nothing and keeps what was there first.
    zio_run(&["--setup", "--user", "redis"]);
    let check = zio_run(&["--check"]);
    assert!(check.contains("group zio may open it"), "{check}");

    let (sum, log) = copy_as(&bin, &input, "redis", &logs);
    assert_eq!(sum, plain_sum, "the copy differs");
    let stats = Stats::parse(&log);
    assert!(
        stats.counter("elided_copies") >= 1,
        "user redis, in group zio, did not elide:\n{log}"
    );
    let nobody_logs = open_dir(&dir, "logs-nobody", "nobody");
    let (_, log) = copy_as(&bin, &input, "nobody", &nobody_logs);
    assert!(
        log.contains("pass-through (userfaultfd unavailable: EPERM)"),
        "a user not named was let in:\n{log}"
    );

    // Debian's redis-server as its own user: large values verified, and
    // the replies' copies elided and sent from the stored values.
    let rdir = open_dir(&dir, "redis", "redis");
    let server = Server::start_as(&rdir, true, &["--appendonly", "no"], Some("redis"));
    let mut conn = server.connect().unwrap();
    let values: Vec<Vec<u8>> = (0..6)
        .map(|i| pattern((512 << 10) + i * 4099, 40 + i as u64))
        .collect();
    for (i, v) in values.iter().enumerate() {
        let r = command(&mut conn, &[b"SET", format!("k{i}").as_bytes(), v]);
        assert_eq!(r, b"+OK\r\n");
    }
    for round in 0..5 {
        for (i, v) in values.iter().enumerate() {
            let r = command(&mut conn, &[b"GET", format!("k{i}").as_bytes()]);
            assert!(r == bulk(v), "GET k{i} in round {round}: wrong bytes");
        }
    }
    drop(conn);
    server.stop();
    let log = collect_logs(&rdir);
    let stats = Stats::parse(&log);
    assert_eq!(stats.processes(), 1, "{log}");
    eprintln!(
        "redis-server as user redis: elided_copies {} elided_bytes {} outputs_substituted {} \
         bytes_substituted {}",
        stats.counter("elided_copies"),
        stats.counter("elided_bytes"),
        stats.counter("outputs_substituted"),
        stats.counter("bytes_substituted")
    );
    for (name, min) in [("elided_copies", 20), ("outputs_substituted", 20)] {
        assert!(
            stats.counter(name) >= min,
            "redis-server as user redis: {name} {} < {min}\n{log}",
            stats.counter(name)
        );
    }

    let out = zio_run(&["--setup", "--undo"]);
    assert!(out.contains("deleted group zio"), "{out}");
    assert_eq!(device(), before, "the device was not restored");
    assert!(!Path::new(RULE).exists() && !Path::new(STATE).exists());
    let group = Command::new("getent")
        .args(["group", "zio"])
        .output()
        .unwrap();
    assert!(!group.status.success(), "group zio is still there");
    let (_, log) = copy_as(&bin, &input, "redis", &logs);
    assert!(
        log.contains("pass-through (userfaultfd unavailable: EPERM)"),
        "after the undo, user redis still elides:\n{log}"
    );
}

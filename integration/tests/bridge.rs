//! The IO-stack bridge contract in a real process: a C "stack" that fills a
//! receive ring by its own stores, lends each slot (`zio_register`),
//! resolves the program's buffer for its transmit (`zio_resolve`) and
//! releases a slot before reusing it (`zio_release`), while the program
//! copies every message twice and keeps copies longer than the ring holds
//! them (integration/c/stack_bridge.c); and the same stack in Rust over the
//! `zio-stack-bridge` crate (integration/src/bin/bridge_ring.rs), which
//! also releases a slot while an output of a copy of it is blocked.
//!
//! Proves, byte for byte and with zio's counters: copies of lent memory
//! are elided (the ring never came from an input call, so without the
//! contract nothing would be); the program's write of a copy is sent from
//! the ring; the stack's transmit gathers from the ring; copies kept past a
//! slot's release and reuse keep their bytes; a release during an output
//! from the slot answers "hold"; and the same programs run, with the same
//! output, without zio.

use std::path::Path;
use std::process::Command;

use zio_integration::{compile_c, differential, engine_block, mix, TempDir};

/// The program's SLOT, SLOTS, ROUNDS and KEEP.
const SLOT: usize = 256 << 10;
const ROUNDS: u64 = 64;
const SLOTS: u64 = 4;
const KEEP: u64 = 8;

/// The number after the word `name` in a program's line of figures.
fn figure(text: &str, name: &str) -> u64 {
    let mut words = text.split_whitespace();
    words
        .find(|w| *w == name)
        .and_then(|_| words.next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in {text}"))
}

/// What the program writes: every message twice (its copy, the stack's
/// transmit of the second copy).
fn expected() -> Vec<u8> {
    let mut out = Vec::with_capacity(ROUNDS as usize * 2 * SLOT);
    for r in 0..ROUNDS {
        let msg: Vec<u8> = (0..(SLOT / 8) as u64)
            .flat_map(|i| mix((r << 32) | i).to_le_bytes())
            .collect();
        out.extend_from_slice(&msg);
        out.extend_from_slice(&msg);
    }
    out
}

/// Runs `bin OUT_FILE` without and with zio, checks the output file and
/// the kept copies, and returns the zio run, its counters checked for
/// `lends` slots lent and released.
fn check_stack(what: &str, bin: &Path, dir: &TempDir, lends: u64) -> zio_integration::Run {
    let out = dir.path().join("out.bin");
    let run = differential(what, || {
        let mut c = Command::new(bin);
        c.arg(&out);
        c
    });
    let stdout = run.stdout();
    assert!(stdout.ends_with("done\n"), "{stdout}");
    assert_eq!(
        stdout.matches("kept copy intact").count() as u64,
        KEEP,
        "{what}: kept copies differ\n{stdout}"
    );
    assert!(
        std::fs::read(&out).unwrap() == expected(),
        "{what}: the output file differs\n{}",
        engine_block(&run.log)
    );
    println!("{what}:\n{}", engine_block(&run.log));
    let slot = SLOT as u64;
    assert_eq!(
        run.counter("bytes_lent"),
        lends * slot,
        "{what}: every slot lent\n{}",
        engine_block(&run.log)
    );
    // Each slot released before its reuse and once at the end.
    assert_eq!(
        run.counter("lent_released"),
        lends,
        "{what}\n{}",
        engine_block(&run.log)
    );
    // The two copies of every round, and the stack's gather into its
    // transmit buffer (a copy of lent memory too), elided: pages of these
    // page-aligned buffers never hold a fringe.
    run.assert_counters(
        what,
        &[
            ("elided_copies", 3 * ROUNDS - 2),
            ("bytes_substituted", 2 * (ROUNDS - 1) * slot),
            ("bytes_resolved", (ROUNDS - 1) * slot),
        ],
    );
    // The copies kept past their slot's reuse were given its bytes.
    assert!(
        run.counter("bytes_backed_up") + run.counter("pages_by_write") * 4096
            >= (KEEP - SLOTS) * slot,
        "{what}: kept copies were not served at release\n{}",
        engine_block(&run.log)
    );
    run
}

#[test]
fn a_c_stack_lends_resolves_and_releases_its_ring() {
    let dir = TempDir::new("bridge-c");
    let bin = compile_c("stack_bridge", dir.path());
    check_stack("stack_bridge (C)", &bin, &dir, ROUNDS);
}

#[test]
fn a_rust_stack_over_the_bridge_crate_and_the_hold_bound() {
    let dir = TempDir::new("bridge-rust");
    let bin = Path::new(env!("CARGO_BIN_EXE_bridge_ring"));
    let what = "bridge_ring (Rust)";
    // Its ROUNDS and the slot of the bound.
    let run = check_stack(what, bin, &dir, ROUNDS + 1);
    assert!(
        run.stdout().contains("bound: intact"),
        "{what}: {}",
        run.stdout()
    );
    assert!(
        run.stderr()
            .contains("bridge_ring: release during an output: hold"),
        "{what}: a release during an output did not hold\n{}",
        run.stderr()
    );
}

/// The smoltcp adapter over the in-process Loopback device
/// (`echo-bench smoltcp-echo`, echo-bench/src/stack/smoltcp.rs): every
/// echoed byte checked by the client, without zio and under zio, with the adapter's bridge and with
/// the no-op one. Under zio without the bridge nothing can be elided (no
/// input call ever runs); with it, the server's receive copy and both copies
/// of the chain are elided, the transmit gathers from the receive ring, and
/// of the bytes copied at the socket API (a receive and a send of each
/// message) only the send's are copied for real.
#[test]
fn the_smoltcp_adapter_halves_the_socket_api_copies() {
    const SIZE: u64 = 256 << 10;
    const COPIES: u64 = 2;
    const MESSAGES: u64 = 64;
    let bin = zio_integration::echo_bench_path();
    let echo = |mode: &str, zio: bool| {
        let mut c = Command::new(&bin);
        c.arg("smoltcp-echo")
            .args([SIZE, COPIES, MESSAGES].map(|v| v.to_string()))
            .arg(mode);
        let r = zio_integration::run(c, zio, None);
        r.assert_success(&format!("smoltcp_echo {mode}, zio {zio}"));
        assert_eq!(
            r.stdout(),
            format!("smoltcp_echo: {MESSAGES} messages of {SIZE} bytes, 0 differed\n"),
            "{mode}, zio {zio}"
        );
        r
    };
    for mode in ["plain", "bridge"] {
        echo(mode, false);
    }
    let plain = echo("plain", true);
    assert_eq!(
        plain.counter("elided_bytes"),
        0,
        "without the bridge zio cannot know the ring holds IO data\n{}",
        plain.log
    );
    let run = echo("bridge", true);
    let figure = |name: &str| figure(&run.stderr(), name);
    let bytes = MESSAGES * SIZE;
    assert_eq!(figure("recv_bytes"), bytes);
    assert_eq!(figure("lent_bytes"), bytes, "every byte read was lent");
    assert_eq!(run.counter("bytes_lent"), bytes);
    let block = engine_block(&run.log);
    // Whole pages of each copy (a message may arrive in a few runs, each
    // with partial pages at its ends): at least 90% of the bytes.
    let whole = (1 + COPIES) * bytes * 9 / 10;
    assert!(
        run.counter("elided_bytes") >= whole,
        "receive and chain copies not elided\n{block}"
    );
    assert!(
        run.counter("bytes_resolved") >= bytes * 9 / 10,
        "the transmit did not gather from the ring\n{block}"
    );
    // Bytes copied at the socket API for real: the sends', and fringes.
    let api = figure("recv_bytes") + figure("send_bytes");
    let copied = run.counter("copied_bytes");
    assert!(
        copied * 100 <= api * 55,
        "{copied} of {api} socket API bytes copied for real\n{block}"
    );
    println!("smoltcp echo under zio with the bridge: {copied} of {api} API bytes copied\n{block}");
}

/// The iceoryx2 adapter in a three-process pipeline (`echo-bench iox`,
/// echo-bench/src/stack/iox.rs): the sink checks every byte, the echo the
/// copies it kept past their samples' release, without zio and
/// under zio, with the bridge and without. Under zio with the bridge the
/// echo's three copies per message (into its buffer, two more) are elided
/// and only the publish copy into shared memory is made; the subscriber's
/// bound is hit at every message past the first few.
#[test]
fn the_iceoryx2_pipeline_keeps_only_the_publish_copy() {
    const SIZE: u64 = 1 << 20;
    const MESSAGES: u64 = 64;
    const COPIES: u64 = 2;
    let bin = zio_integration::echo_bench_path();
    let pipeline = |mode: &str, zio: bool| -> (String, String) {
        let name = format!("zio-test-{}-{mode}-{zio}", std::process::id());
        let args = |role: &str| {
            let mut c = Command::new(&bin);
            c.args(["iox", role, &name, &SIZE.to_string(), &MESSAGES.to_string()]);
            c.env_remove("LD_PRELOAD");
            c
        };
        let logs = TempDir::new("iox-logs");
        let mut sink = args("sink");
        let sink = sink
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("sink");
        let mut echo = args("echo");
        echo.args([COPIES.to_string(), mode.to_string()]);
        echo.stderr(std::process::Stdio::piped());
        if zio {
            zio_integration::with_zio(&mut echo, logs.path());
        }
        let echo = echo.spawn().expect("echo");
        let source = args("source").status().expect("source");
        assert!(source.success(), "source {mode} {zio}");
        let echo = echo.wait_with_output().expect("echo");
        let sink = sink.wait_with_output().expect("sink");
        let echo_err = String::from_utf8_lossy(&echo.stderr).into_owned();
        assert!(echo.status.success(), "echo {mode} zio {zio}: {echo_err}");
        assert!(sink.status.success(), "sink {mode} zio {zio}");
        assert_eq!(
            String::from_utf8_lossy(&sink.stdout),
            format!("iox_pipeline: {MESSAGES} messages of {SIZE} bytes, 0 differed\n"),
            "{mode} zio {zio}"
        );
        let kept = MESSAGES / 16;
        assert!(
            echo_err.contains(&format!("kept {kept} copies, {kept} intact")),
            "{mode} zio {zio}: {echo_err}"
        );
        (echo_err, zio_integration::collect_logs(logs.path()))
    };
    for (mode, zio) in [("plain", false), ("bridge", false), ("plain", true)] {
        let (_, log) = pipeline(mode, zio);
        assert_eq!(
            zio_integration::counter(&log, "elided_bytes"),
            0,
            "{mode} {zio}"
        );
    }
    let (echo, log) = pipeline("bridge", true);
    let block = engine_block(&log);
    let c = |n: &str| zio_integration::counter(&log, n);
    let bytes = MESSAGES * SIZE;
    assert_eq!(c("bytes_lent"), bytes, "every sample lent\n{block}");
    assert!(
        c("elided_bytes") >= 3 * bytes * 95 / 100,
        "the echo's copies were not elided\n{block}"
    );
    // Only the publish copy (and the kept copies' faults) made for real.
    assert!(
        c("copied_bytes") <= bytes * 105 / 100,
        "more than the publish copy was made\n{block}"
    );
    assert!(c("bytes_resolved") >= bytes * 95 / 100, "{block}");
    // The publish copy goes into shared memory, asked about once: fewer
    // system calls than messages, start-up included (2 per message when
    // every copy asked).
    let sys = c("syscalls_uffd") + c("syscalls_maps") + c("syscalls_madvise");
    assert!(
        sys < MESSAGES,
        "{sys} system calls for {MESSAGES} messages\n{block}"
    );
    // Released at the bound, the kept copies' samples backed up for them.
    let releases = figure(&echo, "releases");
    assert!(releases >= MESSAGES - 8, "{echo}");
    assert!(
        c("bytes_backed_up") >= MESSAGES / 16 * SIZE,
        "kept copies not served at release\n{block}"
    );
    println!("iceoryx2 pipeline, bridge under zio: {echo}\n{block}");
}

/// A network namespace of the test's own, deleted when dropped: a TUN
/// device ztun0 at 127.20.0.1/24 with `route_localnet` (its loopback
/// stays down, so 127.20.0.0/24 routes to the TUN device and nowhere
/// else).
struct TunNamespace(String);

impl TunNamespace {
    fn new() -> TunNamespace {
        let ns = TunNamespace(format!("zio-tun-{}", std::process::id()));
        let ip = |args: &[&str]| {
            let st = Command::new("ip")
                .args(args)
                .status()
                .expect("ip (iproute2)");
            assert!(st.success(), "ip {args:?}");
        };
        ip(&["netns", "add", &ns.0]);
        let n = ns.0.as_str();
        ip(&["-n", n, "tuntap", "add", "dev", "ztun0", "mode", "tun"]);
        ip(&["-n", n, "addr", "add", "127.20.0.1/24", "dev", "ztun0"]);
        ip(&["-n", n, "link", "set", "ztun0", "mtu", "65000", "up"]);
        for conf in ["ztun0", "all"] {
            ip(&[
                "netns",
                "exec",
                n,
                "sysctl",
                "-qw",
                &format!("net.ipv4.conf.{conf}.route_localnet=1"),
            ]);
        }
        ns
    }

    /// `argv` run inside the namespace.
    fn command(&self, argv: &[&str]) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.0]).args(argv);
        c
    }
}

impl Drop for TunNamespace {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

/// The smoltcp adapter over a TUN device with the kernel's TCP on the
/// other side (integration/py/tun_client.py), in a network namespace the
/// test creates and deletes: every byte the kernel client gets back is
/// checked, and under zio with the bridge every byte the server read was
/// lent and its copies elided.
#[test]
fn the_smoltcp_adapter_over_tun_with_a_kernel_client() {
    zio_integration::require_root("the TUN test");
    const SIZE: u64 = 256 << 10;
    const MESSAGES: u64 = 32;
    let ns = TunNamespace::new();
    let bench = zio_integration::echo_bench_path();
    let client = zio_integration::workspace().join("integration/py/tun_client.py");
    let logs = TempDir::new("tun-logs");
    let mut server = ns.command(&[bench.to_str().unwrap(), "smoltcp-echo"]);
    server
        .args([SIZE, 2, MESSAGES].map(|v| v.to_string()))
        .args(["bridge", "--tun", "ztun0"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    zio_integration::with_zio(&mut server, logs.path());
    let server = server.spawn().expect("server");
    let out = ns
        .command(&["python3", client.to_str().unwrap()])
        .args([SIZE, MESSAGES].map(|v| v.to_string()))
        .env_remove("LD_PRELOAD")
        .output()
        .expect("client");
    let srv = server.wait_with_output().expect("server");
    let (cout, serr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&srv.stderr),
    );
    assert!(
        out.status.success(),
        "client: {cout}{}\nserver: {serr}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        cout,
        format!("tun_client: {MESSAGES} messages of {SIZE} bytes, 0 differed\n")
    );
    assert!(srv.status.success(), "server: {serr}");
    let log = zio_integration::collect_logs(logs.path());
    let c = |n: &str| zio_integration::counter(&log, n);
    let bytes = MESSAGES * SIZE;
    assert_eq!(c("bytes_lent"), bytes, "{}", engine_block(&log));
    assert!(
        c("elided_bytes") >= 2 * bytes,
        "the server's copies were not elided\n{}",
        engine_block(&log)
    );
    println!(
        "smoltcp over TUN, bridge under zio: {serr}\n{}",
        engine_block(&log)
    );
}

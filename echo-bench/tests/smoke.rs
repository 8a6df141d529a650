//! In-process smoke tests: the real server and client on a free port
//! (no zio involved), and the client's mismatch report against a server
//! that corrupts one byte.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use echo_bench::client::{self, ClientConfig};
use echo_bench::pattern::Verify;
use echo_bench::server::{Buffers, Recv, Server, ServerConfig, Touch};

fn server(size: usize, threads: usize, buffers: Buffers, touch: Touch, recv: Recv) -> Server {
    Server::bind(ServerConfig {
        threads,
        buffers,
        touch,
        recv,
        max_seconds: 1.0,
        ..ServerConfig::new(size, 2)
    })
    .expect("bind")
}

fn client(port: u16, size: usize, threads: usize, conns: usize) -> ClientConfig {
    ClientConfig {
        threads,
        conns,
        duration: 0.5,
        warmup: 0.1,
        verify: Verify::Full,
        timeout: 5.0,
        ..ClientConfig::new(port, size)
    }
}

#[test]
fn two_copies_echo_verified_in_full() {
    let size = (64 << 10) + 123; // not a whole number of pages
    let srv = server(size, 1, Buffers::Static, Touch::Pages(3), Recv::Read);
    let port = srv.port();
    let t = Instant::now();
    let h = std::thread::spawn(move || srv.serve(Arc::new(AtomicBool::new(false))));
    let r = client::run(&client(port, size, 1, 1)).expect("client");
    let stats = h.join().unwrap().expect("serve");
    assert!(r.requests > 10, "{r:?}");
    assert!(
        r.gbps > 0.0 && r.p50_us > 0.0 && r.p99_us >= r.p50_us,
        "{r:?}"
    );
    assert!(stats.messages >= r.requests, "{stats:?} {r:?}");
    assert_eq!(stats.errors, 0);
    assert!(t.elapsed() < Duration::from_secs(5));
    let json = r.to_json();
    assert!(
        json.starts_with(&format!("{{\"size\":{size},\"conns\":1,\"threads\":1,")),
        "{json}"
    );
}

#[test]
fn malloc_buffers_several_connections_per_thread() {
    // 3 connections on 2 client threads (one thread polls two), served by
    // one server thread that polls all three; recv with MSG_WAITALL.
    let size = 20000;
    let srv = server(
        size,
        1,
        Buffers::Malloc,
        Touch::Fraction(0.5),
        Recv::WaitAll,
    );
    let port = srv.port();
    let h = std::thread::spawn(move || srv.serve(Arc::new(AtomicBool::new(false))));
    let r = client::run(&client(port, size, 2, 3)).expect("client");
    let stats = h.join().unwrap().expect("serve");
    assert!(r.requests > 10, "{r:?}");
    assert_eq!((r.conns, r.threads), (3, 2));
    assert_eq!(stats.connections, 3);
    assert_eq!(stats.errors, 0);
}

/// A server on a free port that reads messages of `size` bytes on every
/// connection it accepts and answers the `n`th (from 0) with what
/// `reply(n, &mut message)` left in it, or not at all if that returns
/// false.
fn faulty_server(size: usize, reply: fn(usize, &mut [u8]) -> bool) -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut s in l.incoming().map_while(Result::ok) {
            std::thread::spawn(move || {
                let mut buf = vec![0u8; size];
                for n in 0.. {
                    if s.read_exact(&mut buf).is_err() {
                        return;
                    }
                    if reply(n, &mut buf) && s.write_all(&buf).is_err() {
                        return;
                    }
                }
            });
        }
    });
    port
}

#[test]
fn corrupted_echo_reports_the_first_differing_offset() {
    let size = 16384;
    let port = faulty_server(size, |n, buf| {
        if n == 3 {
            buf[5000] ^= 0x40;
        }
        true
    });
    let mut cfg = client(port, size, 1, 1);
    cfg.warmup = 0.0;
    let e = client::run(&cfg).unwrap_err();
    assert!(e.contains("request 3"), "{e}");
    assert!(e.contains("first differing offset 5000"), "{e}");
}

/// A server taking two input buffers in turn echoes every byte right,
/// with copies and without (then the echo is written from the input buffer
/// of its turn). Which buffer each turn takes is the unit test
/// `server::tests::turns_take_the_input_buffers_in_order`.
#[test]
fn two_input_buffers_echo_verified_in_full() {
    let size = 3 * 4096 + 5;
    for copies in [2, 0] {
        let srv = Server::bind(ServerConfig {
            inputs: 2,
            max_seconds: 1.0,
            ..ServerConfig::new(size, copies)
        })
        .expect("bind");
        let port = srv.port();
        let h = std::thread::spawn(move || srv.serve(Arc::new(AtomicBool::new(false))));
        let r = client::run(&client(port, size, 1, 1)).expect("client");
        assert!(r.requests > 10, "{copies} copies: {r:?}");
        assert_eq!(
            h.join().unwrap().expect("serve").errors,
            0,
            "{copies} copies"
        );
    }
}

/// The rotating client with two connections to each of two servers (one
/// of them with two threads): each server sees both, every echo verified,
/// every round measures both servers.
#[test]
fn rotation_drives_several_connections_per_server() {
    let size = 3 * 4096 + 77;
    let servers: Vec<Server> = [1, 2]
        .map(|threads| server(size, threads, Buffers::Chain, Touch::None, Recv::Read))
        .into();
    let ports: Vec<u16> = servers.iter().map(Server::port).collect();
    let handles: Vec<_> = servers
        .into_iter()
        .map(|s| std::thread::spawn(move || s.serve(Arc::new(AtomicBool::new(false)))))
        .collect();
    let cfg = ClientConfig {
        conns: 2,
        warmup: 0.02,
        ..client(0, size, 1, 2)
    };
    let rows = client::rotate(&cfg, &ports, 0.1, 3).expect("rotate");
    assert_eq!(rows.len(), 3);
    assert!(rows.iter().flatten().all(|&g| g > 0.0), "{rows:?}");
    for h in handles {
        let stats = h.join().unwrap().expect("serve");
        assert_eq!((stats.connections, stats.errors), (2, 0), "{stats:?}");
    }
}

/// A server that stops answering fails a rotation over several
/// connections after three slices without an echo, naming it, instead of
/// reading as 0 Gbit/s. (With one connection the client's timeout on the
/// blocked echo says so.)
#[test]
fn rotation_fails_on_a_server_that_stops_answering() {
    let size = 16384;
    // Two echoes per connection, then it reads on and answers nothing.
    let port = faulty_server(size, |n, _| n < 2);
    let cfg = ClientConfig {
        warmup: 0.0,
        ..client(0, size, 1, 2)
    };
    let e = client::rotate(&cfg, &[port], 0.1, 20).unwrap_err();
    assert!(e.contains(&format!("server on port {port}")), "{e}");
    assert!(e.contains("no echo completed in 3 slices"), "{e}");
}

/// Option errors of the rotating client and of interleave say what is
/// wrong, with status 2 (clap's, for what the command line itself says).
#[test]
fn rotation_options_are_checked() {
    // Any existing file stands for zio-run: interleave's options are
    // refused before it is used.
    let il = |rest: &[&'static str]| -> Vec<&'static str> {
        [&["interleave", "--zio-run", "/bin/true"], rest].concat()
    };
    let cases: [(Vec<&str>, i32, &str); 7] = [
        (
            vec!["client", "--port", "1", "--ports", "1,2", "--size", "64K"],
            2,
            "cannot be used with",
        ),
        (
            vec!["client", "--port", "1", "--rounds", "3", "--size", "64K"],
            2,
            "go with --ports",
        ),
        (
            vec!["client", "--ports", "1,x", "--size", "64K"],
            2,
            "invalid value 'x' for '--ports <LIST>'",
        ),
        (
            il(&["--slice", "0.1", "--warmup", "0.2"]),
            2,
            "longer than --warmup",
        ),
        (
            il(&["--ceiling-inputs", "0"]),
            2,
            "--ceiling-inputs must be at least 1",
        ),
        (
            vec![
                "client",
                "--ports",
                "1,2",
                "--threads",
                "2",
                "--size",
                "64K",
            ],
            2,
            "cannot be used with",
        ),
        (il(&["--conns", "0"]), 2, "--conns must be at least 1"),
    ];
    for (args, code, says) in cases {
        let o = std::process::Command::new(env!("CARGO_BIN_EXE_echo-bench"))
            .args(&args)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(code), "{args:?}: {err}");
        assert!(err.contains(says), "{args:?}: {err}");
    }
}

/// A congestion control the kernel does not have stops the server at start
/// with the name and the choices, rather than failing every connection.
#[test]
fn unknown_congestion_control_is_an_error_at_start() {
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_echo-bench"))
        .args([
            "server",
            "--port",
            "0",
            "--size",
            "64K",
            "--copies",
            "0",
            "--max-seconds",
            "5",
            "--congestion",
            "no-such-cc",
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("\"no-such-cc\""), "{err}");
    assert!(err.contains("available:"), "{err}");
    assert!(!String::from_utf8_lossy(&o.stdout).contains("listening"));
}

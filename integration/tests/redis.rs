//! Debian's redis-server under zio: redis-benchmark with 512 KiB values, then
//! a client that writes values of many sizes and verifies every byte it
//! reads back. The same session runs against a server without zio; both
//! transcripts must equal what was written, zio's counters must show the
//! server's reads, writes and copies went through the hooks, and its engine
//! counters that the large replies' copies were elided and their bytes went
//! out from the originals.

use std::process::Command;

use zio_integration::redis::{bulk, command, require, Server};
use zio_integration::{assert_counters, collect_logs, pattern, Stats, TempDir};

const SIZES: &[usize] = &[
    1,
    1000,
    16 << 10,
    (64 << 10) + 3,
    512 << 10,
    (1 << 20) + 7,
    3 << 20,
];
const KEYS: usize = 21;

/// The verifying client: every reply is compared with what it must be.
/// Returns the transcript of replies and the bytes of values sent and read.
fn session(server: &Server) -> (Vec<Vec<u8>>, u64, u64) {
    let mut conn = server.connect().unwrap();
    let mut transcript = Vec::new();
    let (mut sent, mut got) = (0u64, 0u64);
    let values: Vec<Vec<u8>> = (0..KEYS)
        .map(|i| pattern(SIZES[i % SIZES.len()], i as u64))
        .collect();
    for (i, v) in values.iter().enumerate() {
        let r = command(&mut conn, &[b"SET", format!("key:{i}").as_bytes(), v]);
        assert_eq!(r, b"+OK\r\n", "SET key:{i}");
        sent += v.len() as u64;
    }
    // APPEND makes the server grow (copy) a stored value.
    let tail = pattern(200 << 10, 99);
    let r = command(&mut conn, &[b"APPEND", b"key:4", &tail]);
    let mut expect4 = values[4].clone();
    expect4.extend_from_slice(&tail);
    assert_eq!(r, format!(":{}\r\n", expect4.len()).into_bytes());
    for (i, v) in values.iter().enumerate() {
        let want = if i == 4 { &expect4 } else { v };
        let r = command(&mut conn, &[b"GET", format!("key:{i}").as_bytes()]);
        assert!(
            r == bulk(want),
            "GET key:{i}: {} bytes back, {} expected",
            r.len(),
            want.len()
        );
        got += want.len() as u64;
        transcript.push(r);
    }
    let r = command(&mut conn, &[b"GETRANGE", b"key:5", b"1000", b"300999"]);
    assert!(r == bulk(&values[5][1000..=300_999]), "GETRANGE");
    transcript.push(r);
    (transcript, sent, got)
}

fn benchmark(server: &Server) {
    require("redis-benchmark");
    let out = Command::new("redis-benchmark")
        .args(["-h", "127.0.0.1", "-p", &server.port.to_string()])
        .args([
            "-t", "set,get", "-d", "524288", "-n", "200", "-c", "4", "-q",
        ])
        .env_remove("LD_PRELOAD")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "redis-benchmark failed: {text}");
    assert!(text.contains("SET: ") && text.contains("GET: "), "{text}");
}

#[test]
fn redis_under_zio_serves_every_byte_and_elides_the_copies_of_large_values() {
    let plain_dir = TempDir::new("redis-plain");
    let plain = Server::start(plain_dir.path(), false, &["--appendonly", "no"]);
    let (plain_transcript, _, _) = session(&plain);
    plain.stop();

    let dir = TempDir::new("redis-zio");
    let server = Server::start(dir.path(), true, &["--appendonly", "no"]);
    benchmark(&server);
    let (transcript, sent, got) = session(&server);
    server.stop();
    assert!(
        transcript == plain_transcript,
        "replies differ from the run without zio"
    );

    let log = collect_logs(dir.path());
    let stats = Stats::parse(&log);
    assert_eq!(stats.processes(), 1, "{log}");
    // redis-benchmark sent 200 SETs and read 200 GETs of 512 KiB on top.
    let bench = 200 * (512u64 << 10);
    let read = stats.hook("read").bytes;
    assert!(
        read >= sent + bench,
        "server read {read} bytes, clients sent {}",
        sent + bench
    );
    let written = stats.hook("write").bytes + stats.hook("writev").bytes;
    assert!(
        written >= got + bench,
        "server wrote {written} bytes, clients read {}",
        got + bench
    );
    assert!(stats.hook("memcpy").calls > 0, "{log}");
    assert!(stats.hook("free").calls > 0, "{log}");
    // Each GET of a large value copies it into a reply buffer, which the
    // server then writes: the copy is elided, and the write goes out from
    // the value itself. How much goes out from originals depends on timing
    // (a loaded machine substitutes less), so the bounds are a sixteenth of
    // the benchmark's bytes and 150 of its 200 GETs. Without elision
    // (ZIO_ENABLE=0) every one of these is 0.
    assert_counters(
        &log,
        "redis-server",
        &[
            ("elided_copies", 150),
            ("elided_bytes", bench / 16),
            ("outputs_substituted", 150),
            ("bytes_substituted", bench / 16),
        ],
    );
}

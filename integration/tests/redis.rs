//! Debian's redis-server under zio: redis-benchmark with 512 KiB values, then
//! a client that writes values of many sizes and verifies every byte it
//! reads back. The same session runs against a server without zio; both
//! transcripts must equal what was written, and zio's counters must show the
//! server's reads, writes and copies went through the hooks.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use zio_integration::{collect_logs, free_port, pattern, with_zio, Stats, TempDir};

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

fn require(cmd: &str) {
    let ok = Command::new("sh")
        .args(["-c", &format!("command -v {cmd}")])
        .stdout(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(
        ok,
        "{cmd} is not installed: run `bash scripts/deps.sh` (make test does)"
    );
}

struct Server {
    child: Child,
    port: u16,
}

impl Server {
    fn start(dir: &Path, zio: bool) -> Server {
        require("redis-server");
        let port = free_port();
        let mut c = Command::new("redis-server");
        c.args(["--bind", "127.0.0.1", "--port", &port.to_string()])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .args(["--protected-mode", "no", "--loglevel", "warning"])
            .arg("--dir")
            .arg(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if zio {
            with_zio(&mut c, dir);
        } else {
            c.env_remove("LD_PRELOAD");
        }
        let child = c.spawn().expect("redis-server");
        let mut s = Server { child, port };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(mut conn) = s.connect() {
                if command(&mut conn, &[b"PING"]) == b"+PONG\r\n" {
                    return s;
                }
            }
            if let Ok(Some(st)) = s.child.try_wait() {
                panic!("redis-server exited at start: {st}");
            }
            assert!(
                Instant::now() < deadline,
                "redis-server did not answer within 10 s"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn connect(&self) -> std::io::Result<BufReader<TcpStream>> {
        let s = TcpStream::connect(("127.0.0.1", self.port))?;
        s.set_read_timeout(Some(Duration::from_secs(30)))?;
        Ok(BufReader::new(s))
    }

    /// SHUTDOWN NOSAVE and wait (bounded) for a clean exit, so zio's
    /// summary is written.
    fn stop(mut self) {
        if let Ok(mut conn) = self.connect() {
            let _ = send(&mut conn, &[b"SHUTDOWN", b"NOSAVE"]);
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(Some(st)) = self.child.try_wait() {
                assert!(st.success(), "redis-server exited with {st}");
                return;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!("redis-server did not stop within 10 s");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn send(conn: &mut BufReader<TcpStream>, args: &[&[u8]]) -> std::io::Result<()> {
    let mut req = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        req.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        req.extend_from_slice(a);
        req.extend_from_slice(b"\r\n");
    }
    conn.get_mut().write_all(&req)
}

/// Sends a command and returns its raw reply (simple, integer or bulk).
fn command(conn: &mut BufReader<TcpStream>, args: &[&[u8]]) -> Vec<u8> {
    send(conn, args).unwrap();
    let mut line = Vec::new();
    conn.read_until(b'\n', &mut line).unwrap();
    if line.first() == Some(&b'$') {
        let n: i64 = std::str::from_utf8(&line[1..line.len() - 2])
            .unwrap()
            .parse()
            .unwrap();
        if n >= 0 {
            let mut body = vec![0u8; n as usize + 2];
            conn.read_exact(&mut body).unwrap();
            line.extend_from_slice(&body);
        }
    }
    line
}

fn bulk(v: &[u8]) -> Vec<u8> {
    let mut r = format!("${}\r\n", v.len()).into_bytes();
    r.extend_from_slice(v);
    r.extend_from_slice(b"\r\n");
    r
}

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
fn redis_under_zio_serves_every_byte_and_its_io_goes_through_the_hooks() {
    let plain_dir = TempDir::new("redis-plain");
    let plain = Server::start(plain_dir.path(), false);
    let (plain_transcript, _, _) = session(&plain);
    plain.stop();

    let dir = TempDir::new("redis-zio");
    let server = Server::start(dir.path(), true);
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
    let read = stats.get("read").bytes;
    assert!(
        read >= sent + bench,
        "server read {read} bytes, clients sent {}",
        sent + bench
    );
    let written = stats.get("write").bytes + stats.get("writev").bytes;
    assert!(
        written >= got + bench,
        "server wrote {written} bytes, clients read {}",
        got + bench
    );
    assert!(stats.get("memcpy").calls > 0, "{log}");
    assert!(stats.get("free").calls > 0, "{log}");
}

//! Debian's redis-server with the append-only file on (`appendfsync
//! always`), without and with zio: the same deterministic command stream
//! (SET of 1 B .. 3 MiB values, APPEND, SETRANGE, DEL, GET of every key)
//! goes to each. Every reply must be what a model of the keyspace says, the
//! incremental AOF files written by both servers must be byte-identical (and
//! equal to the command stream itself), and zio's counters must show the
//! server's IO and copies went through the engine.

use std::collections::BTreeMap;
use std::io::BufReader;
use std::net::TcpStream;
use std::path::{Path, PathBuf};

use zio_integration::redis::{bulk, command, resp, Server};
use zio_integration::{collect_logs, counter, pattern, Stats, TempDir};

const SIZES: &[usize] = &[
    1,
    1000,
    (16 << 10) - 1,
    16 << 10,
    (64 << 10) + 3,
    300_001,
    512 << 10,
    (1 << 20) + 7,
    2 << 20,
    3 << 20,
];

fn int(n: usize) -> Vec<u8> {
    format!(":{n}\r\n").into_bytes()
}

/// What one session did: every reply, the write commands in the order the
/// server executed them (what its AOF must hold), and the value bytes sent
/// and read back.
struct Session {
    replies: Vec<Vec<u8>>,
    writes: Vec<u8>,
    sent: u64,
    got: u64,
}

/// The deterministic command stream, each reply checked against a model of
/// the keyspace.
fn session(server: &Server) -> Session {
    let mut conn = server.connect().unwrap();
    let mut model: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
    let mut s = Session {
        replies: Vec::new(),
        writes: Vec::new(),
        sent: 0,
        got: 0,
    };
    let write = |conn: &mut BufReader<TcpStream>, s: &mut Session, args: &[&[u8]]| {
        let r = command(conn, args);
        s.writes.extend_from_slice(&resp(args));
        s.sent += args.iter().skip(2).map(|a| a.len() as u64).sum::<u64>();
        s.replies.push(r.clone());
        r
    };
    let key = |i: usize| format!("key:{i}").into_bytes();

    // SET: every size twice, the second round overwriting a few keys.
    let n = 2 * SIZES.len();
    for i in 0..n {
        let v = pattern(SIZES[i % SIZES.len()], i as u64 + 1);
        let r = write(&mut conn, &mut s, &[b"SET", &key(i), &v]);
        assert_eq!(r, b"+OK\r\n", "SET key:{i}");
        model.insert(key(i), v);
    }
    for i in [2, 7, 9, 15] {
        let v = pattern(SIZES[(i + 3) % SIZES.len()], 100 + i as u64);
        let r = write(&mut conn, &mut s, &[b"SET", &key(i), &v]);
        assert_eq!(r, b"+OK\r\n", "SET key:{i} again");
        model.insert(key(i), v);
    }
    // APPEND: grows stored values (the server copies them), or creates one.
    for (i, len) in [(4, 200 << 10), (8, 100_003), (0, 40 << 10), (n, 70_000)] {
        let tail = pattern(len, 200 + i as u64);
        let r = write(&mut conn, &mut s, &[b"APPEND", &key(i), &tail]);
        let v = model.entry(key(i)).or_default();
        v.extend_from_slice(&tail);
        assert_eq!(r, int(v.len()), "APPEND key:{i}");
    }
    // SETRANGE: inside a value, across its end, and past it (zero-filled).
    for (i, at, len) in [
        (5, 1000usize, 300 << 10),
        (6, 500 << 10, 600 << 10),
        (13, (16 << 10) + 100, 50_000),
        (18, (2 << 20) - 5, 20 << 10),
        (1, 1200, 64 << 10),
    ] {
        let patch = pattern(len, 300 + i as u64);
        let r = write(
            &mut conn,
            &mut s,
            &[b"SETRANGE", &key(i), at.to_string().as_bytes(), &patch],
        );
        let v = model.entry(key(i)).or_default();
        if v.len() < at + len {
            v.resize(at + len, 0);
        }
        v[at..at + len].copy_from_slice(&patch);
        assert_eq!(r, int(v.len()), "SETRANGE key:{i} {at}");
    }
    // DEL: two present keys and one absent.
    let r = write(
        &mut conn,
        &mut s,
        &[b"DEL", &key(3), &key(16), b"no-such-key"],
    );
    assert_eq!(r, int(2), "DEL");
    model.remove(&key(3));
    model.remove(&key(16));

    // GET every key, deleted ones included, verifying every byte.
    for i in 0..=n {
        let r = command(&mut conn, &[b"GET", &key(i)]);
        match model.get(&key(i)) {
            Some(v) => {
                assert!(
                    r == bulk(v),
                    "GET key:{i}: {} bytes back, {} expected{}",
                    r.len(),
                    bulk(v).len(),
                    first_difference(&r, &bulk(v))
                );
                s.got += v.len() as u64;
            }
            None => assert_eq!(r, b"$-1\r\n", "GET deleted key:{i}"),
        }
        s.replies.push(r);
    }
    s
}

fn first_difference(a: &[u8], b: &[u8]) -> String {
    match a.iter().zip(b).position(|(x, y)| x != y) {
        Some(p) => format!(", first difference at byte {p}"),
        None => String::new(),
    }
}

/// The incremental AOF files of a server directory, by name.
fn incr_files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let aof: PathBuf = dir.join("appendonlydir");
    let mut files = BTreeMap::new();
    for e in std::fs::read_dir(&aof)
        .unwrap_or_else(|e| panic!("{}: {e}", aof.display()))
        .flatten()
    {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.ends_with(".incr.aof") {
            files.insert(name, std::fs::read(e.path()).unwrap());
        }
    }
    files
}

/// Append-only file on, flushed at every write.
const AOF: &[&str] = &[
    "--appendonly",
    "yes",
    "--appendfsync",
    "always",
    "--appenddirname",
    "appendonlydir",
];

#[test]
fn redis_appendonly_file_is_identical_under_zio() {
    let plain_dir = TempDir::new("redis-aof-plain");
    let plain = Server::start(plain_dir.path(), false, AOF);
    let p = session(&plain);
    plain.stop();
    let plain_aof = incr_files(plain_dir.path());

    let dir = TempDir::new("redis-aof-zio");
    let server = Server::start(dir.path(), true, AOF);
    let z = session(&server);
    server.stop();
    let aof = incr_files(dir.path());

    assert!(
        p.replies == z.replies,
        "replies differ from the run without zio"
    );
    assert_eq!(
        plain_aof.keys().collect::<Vec<_>>(),
        aof.keys().collect::<Vec<_>>(),
        "AOF file names differ"
    );
    assert_eq!(
        aof.len(),
        1,
        "one incremental AOF expected: {:?}",
        aof.keys()
    );
    for (name, bytes) in &aof {
        let want = &plain_aof[name];
        assert!(
            bytes == want,
            "{name}: {} bytes under zio, {} without{}",
            bytes.len(),
            want.len(),
            first_difference(bytes, want)
        );
    }
    // What Redis logs: SELECT 0, then every write command as it was sent.
    let mut expect = resp(&[b"SELECT", b"0"]);
    expect.extend_from_slice(&z.writes);
    let (name, bytes) = aof.iter().next().unwrap();
    assert!(
        *bytes == expect,
        "{name} is not the command stream: {} bytes, {} expected{}",
        bytes.len(),
        expect.len(),
        first_difference(bytes, &expect)
    );

    let log = collect_logs(dir.path());
    let stats = Stats::parse(&log);
    assert_eq!(stats.processes(), 1, "{log}");
    let read = stats.hook("read").bytes;
    assert!(
        read >= z.sent,
        "server read {read} bytes, clients sent {}",
        z.sent
    );
    let written = stats.hook("write").bytes + stats.hook("writev").bytes;
    assert!(
        written >= z.got + bytes.len() as u64,
        "server wrote {written} bytes, clients read {} and the AOF holds {}",
        z.got,
        bytes.len()
    );
    // Under zio the server's copies of the values (into the AOF buffer,
    // into reply buffers, sds growth) are elided, and both the AOF writes
    // and the GET replies go out from the originals. The bounds leave a
    // wide margin for timing-dependent read sizes, and for a query buffer
    // Redis reallocates where a freed one was: its input is redirected,
    // Redis parses it in place, and the pages it faults in go out as
    // they are; more substituted bytes than GET payload means the AOF
    // writes were substituted too.
    let out_volume = z.got + bytes.len() as u64;
    let c = |name: &str| counter(&log, name);
    eprintln!(
        "redis AOF under zio: values sent {} read back {}, AOF {} bytes; elided_copies {} \
         elided_bytes {} outputs_substituted {} bytes_substituted {} faults_missing {} \
         faults_zero {} faults_wp {} pages_by_write {} quarantined_total {} live_records {}",
        z.sent,
        z.got,
        bytes.len(),
        c("elided_copies"),
        c("elided_bytes"),
        c("outputs_substituted"),
        c("bytes_substituted"),
        c("faults_missing"),
        c("faults_zero"),
        c("faults_wp"),
        c("pages_by_write"),
        c("quarantined_total"),
        c("live_records"),
    );
    for (name, min) in [
        ("elided_copies", 20),
        ("elided_bytes", out_volume),
        ("outputs_substituted", 16),
        ("bytes_substituted", out_volume * 3 / 4),
    ] {
        assert!(
            c(name) >= min,
            "{name} = {}, expected at least {min}\nzio log:\n{log}",
            c(name)
        );
    }
    assert!(
        c("bytes_substituted") > z.got,
        "only GET replies substituted, not the AOF writes\n{log}"
    );
}

//! The closed-loop client: each connection sends one message, reads the
//! echo back, checks it, and repeats.
//!
//! A thread with one connection uses blocking sockets; a thread with
//! several drives them all with non-blocking sockets and `poll`, so that
//! every connection always has one request outstanding.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::os::fd::{AsFd, AsRawFd};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags};
use nix::sys::socket::{recv, send, MsgFlags};

use crate::pattern::{verify, Message, Rng, Verify, MIN_SIZE};
use crate::tcp;

/// What the client does (`echo-bench client`'s options).
#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// The server's port on 127.0.0.1.
    pub port: u16,
    /// Client threads.
    pub threads: usize,
    /// Connections, spread over the threads.
    pub conns: usize,
    /// Message size in bytes.
    pub size: usize,
    /// Measured seconds, after the warm-up.
    pub duration: f64,
    /// Seconds of echoes before the measurement starts.
    pub warmup: f64,
    /// How much of each echo is checked.
    pub verify: Verify,
    /// Seconds without progress after which the run fails (a hung server).
    pub timeout: f64,
    /// TCP congestion control of the connections (see [`crate::tcp`]).
    pub congestion: String,
}

impl ClientConfig {
    /// One connection to `port` with `size`-byte messages, everything else
    /// as the command line's defaults for `--port` (the one place they are
    /// written down).
    pub fn new(port: u16, size: usize) -> ClientConfig {
        ClientConfig {
            port,
            threads: 1,
            conns: 1,
            size,
            duration: 3.0,
            warmup: 1.0,
            verify: Verify::Sample,
            timeout: 15.0,
            congestion: tcp::DEFAULT_CONGESTION.into(),
        }
    }
}

/// What the client measured.
#[derive(Clone, Debug, PartialEq)]
pub struct ClientResult {
    /// Message size in bytes.
    pub size: usize,
    /// Connections.
    pub conns: usize,
    /// Threads that had connections.
    pub threads: usize,
    /// Measured seconds.
    pub secs: f64,
    /// Requests completed in the measured window.
    pub requests: u64,
    /// Echoed payload, one direction: requests * size * 8 / secs / 1e9.
    pub gbps: f64,
    /// Requests per second.
    pub rps: f64,
    /// Median round-trip latency, µs.
    pub p50_us: f64,
    /// 99th percentile round-trip latency, µs.
    pub p99_us: f64,
    /// 99.9th percentile round-trip latency, µs.
    pub p999_us: f64,
}

impl ClientResult {
    /// One line of JSON.
    pub fn to_json(&self) -> String {
        let r = |v: f64, digits: i32| {
            let m = 10f64.powi(digits);
            (v * m).round() / m
        };
        serde_json::json!({
            "size": self.size,
            "conns": self.conns,
            "threads": self.threads,
            "secs": r(self.secs, 3),
            "requests": self.requests,
            "gbps": r(self.gbps, 4),
            "rps": r(self.rps, 1),
            "p50_us": r(self.p50_us, 1),
            "p99_us": r(self.p99_us, 1),
            "p999_us": r(self.p999_us, 1),
        })
        .to_string()
    }
}

/// Round-trip latencies in ns: 1 µs to 100 s, three significant digits.
pub type Latencies = Histogram<u64>;

/// An empty [`Latencies`].
pub fn latencies() -> Latencies {
    Histogram::new_with_bounds(1_000, 100_000_000_000, 3).expect("valid histogram bounds")
}

/// Records one round trip (clamped into the histogram's range).
fn record(lat: &mut Latencies, d: Duration) {
    lat.saturating_record(d.as_nanos() as u64);
}

/// One connection's state.
struct Conn {
    id: u64,
    stream: TcpStream,
    msg: Message,
    rbuf: Vec<u8>,
    seq: u64,
    /// Bytes of the current request sent, then received.
    sent: usize,
    got: usize,
    started: Instant,
}

impl Conn {
    /// Connection `id` to the server on `port`, its first message stamped.
    fn open(id: u64, port: u16, cfg: &ClientConfig) -> Result<Conn, String> {
        let stream = connect(port, cfg.timeout)?;
        stream.set_nodelay(true).map_err(|e| e.to_string())?;
        tcp::set_congestion(&stream, &cfg.congestion).map_err(|e| e.to_string())?;
        let mut msg = Message::new(id, cfg.size);
        msg.stamp(0);
        Ok(Conn {
            id,
            stream,
            msg,
            rbuf: vec![0u8; cfg.size],
            seq: 0,
            sent: 0,
            got: 0,
            started: Instant::now(),
        })
    }

    fn mismatch(&self, e: crate::pattern::Mismatch) -> String {
        format!(
            "echo mismatch on connection {} request {}: {e}",
            self.id, self.seq
        )
    }
}

struct Window {
    warm: Instant,
    end: Instant,
}

/// Per-thread results: latencies of the requests completed in the window.
type ThreadOut = Result<Latencies, String>;

fn connect(port: u16, timeout: f64) -> Result<TcpStream, String> {
    let deadline = Instant::now() + Duration::from_secs_f64(timeout.min(10.0));
    loop {
        match TcpStream::connect(("127.0.0.1", port)) {
            Ok(s) => return Ok(s),
            Err(e) if Instant::now() < deadline && e.kind() == io::ErrorKind::ConnectionRefused => {
                std::thread::sleep(Duration::from_millis(20))
            }
            Err(e) => return Err(format!("connect to 127.0.0.1:{port}: {e}")),
        }
    }
}

/// Runs the client and returns its measurements, or the first error
/// (an echo mismatch, a closed connection, a timeout).
pub fn run(cfg: &ClientConfig) -> Result<ClientResult, String> {
    if cfg.size < MIN_SIZE {
        return Err(format!("size must be at least {MIN_SIZE} bytes"));
    }
    let threads = cfg.threads.max(1);
    let conns_n = cfg.conns.max(1);
    let mut per_thread: Vec<Vec<Conn>> = (0..threads).map(|_| Vec::new()).collect();
    for id in 0..conns_n {
        per_thread[id % threads].push(Conn::open(id as u64, cfg.port, cfg)?);
    }
    let threads = per_thread.iter().filter(|c| !c.is_empty()).count();
    let barrier = Arc::new(Barrier::new(threads + 1));
    let mut handles = Vec::new();
    for (t, mut conns) in per_thread.into_iter().filter(|c| !c.is_empty()).enumerate() {
        let cfg = cfg.clone();
        let barrier = barrier.clone();
        handles.push(std::thread::spawn(move || -> ThreadOut {
            barrier.wait();
            let start = Instant::now();
            let w = Window {
                warm: start + Duration::from_secs_f64(cfg.warmup),
                end: start + Duration::from_secs_f64(cfg.warmup + cfg.duration),
            };
            let mut rng = Rng::new(t as u64 + 1);
            match conns.as_mut_slice() {
                [one] => blocking(one, &cfg, &w, &mut rng),
                many => polled(many, &cfg, &w, &mut rng),
            }
        }));
    }
    barrier.wait();
    let mut lat = latencies();
    let mut first_err = None;
    for h in handles {
        match h.join() {
            Ok(Ok(v)) => lat.add(&v).expect("histograms of one shape"),
            Ok(Err(e)) => {
                first_err.get_or_insert(e);
            }
            Err(_) => {
                first_err.get_or_insert("client thread panicked".to_string());
            }
        }
    }
    if let Some(e) = first_err {
        return Err(e);
    }
    if std::env::var_os("ECHO_BENCH_HIST").is_some() {
        print_latencies(&lat);
    }
    let pct = |p| percentile_us(&lat, p);
    let requests = lat.len();
    let secs = cfg.duration;
    Ok(ClientResult {
        size: cfg.size,
        conns: conns_n,
        threads,
        secs,
        requests,
        gbps: requests as f64 * cfg.size as f64 * 8.0 / secs / 1e9,
        rps: requests as f64 / secs,
        p50_us: pct(0.50),
        p99_us: pct(0.99),
        p999_us: pct(0.999),
    })
}

/// The `p` quantile of the latencies, in µs; 0 if none.
fn percentile_us(lat: &Latencies, p: f64) -> f64 {
    if lat.is_empty() {
        return 0.0;
    }
    lat.value_at_quantile(p) as f64 / 1000.0
}

/// The latency distribution on stderr (`ECHO_BENCH_HIST` set): quantiles,
/// and the requests over 1 ms with the time they took.
fn print_latencies(lat: &Latencies) {
    let q = |p| percentile_us(lat, p);
    let over = |v: &hdrhistogram::iterators::IterationValue<u64>| v.value_iterated_to() > 1_000_000;
    let slow: u64 = lat
        .iter_recorded()
        .filter(over)
        .map(|v| v.count_at_value())
        .sum();
    let slow_ns: u64 = lat
        .iter_recorded()
        .filter(over)
        .map(|v| v.count_at_value() * lat.median_equivalent(v.value_iterated_to()))
        .sum();
    eprintln!(
        "latency us: p10 {:.0} p50 {:.0} p90 {:.0} p95 {:.0} p99 {:.0} p99.9 {:.0} max {:.0}; {} of {} over 1 ms ({:.2} s in them)",
        q(0.1), q(0.5), q(0.9), q(0.95), q(0.99), q(0.999), q(1.0), slow, lat.len(), slow_ns as f64 / 1e9
    );
}

/// Drives `cfg.conns` connections (one or more) to each of `ports` in
/// turn, from this thread:
/// round after round, each server gets `slice` seconds of closed-loop
/// echoes, of which the first `cfg.warmup` are not counted (its caches and its
/// connection were idle while the others ran). The first server of a round
/// moves by one every round, so no server always follows the same one.
///
/// Servers measured this way share every slow and fast moment of the
/// machine at the scale of a round, so per-round ratios between them vary
/// far less than whole runs measured one after another. Returns the
/// echoed Gbit/s (one direction) per round, one column per port.
pub fn rotate(
    cfg: &ClientConfig,
    ports: &[u16],
    slice: f64,
    rounds: usize,
) -> Result<Vec<Vec<f64>>, String> {
    if cfg.size < MIN_SIZE {
        return Err(format!("size must be at least {MIN_SIZE} bytes"));
    }
    if !(slice > cfg.warmup && cfg.warmup >= 0.0) {
        return Err(format!(
            "a slice ({slice} s) must be longer than its warm-up ({} s)",
            cfg.warmup
        ));
    }
    // `cfg.conns` connections to each server, driven together in its
    // slice; a message still under way when a slice ends goes on in the
    // server's next one.
    let per = cfg.conns.max(1);
    let mut conns = Vec::with_capacity(ports.len());
    for (k, &port) in ports.iter().enumerate() {
        let mut mine = Vec::with_capacity(per);
        for j in 0..per {
            mine.push(Conn::open((k * per + j) as u64, port, cfg)?);
        }
        conns.push(mine);
    }
    let mut rng = Rng::new(1);
    let mut out = Vec::with_capacity(rounds);
    // Slices in a row without one echo, per server: a server that stopped
    // answering (a hang) fails the run instead of reading as 0 Gbit/s.
    let mut idle = vec![0usize; ports.len()];
    for r in 0..rounds {
        let mut row = vec![0.0; ports.len()];
        for k in turn_order(r, ports.len()) {
            let start = Instant::now();
            let w = Window {
                warm: start + Duration::from_secs_f64(cfg.warmup),
                end: start + Duration::from_secs_f64(slice),
            };
            let lat = match conns[k].as_mut_slice() {
                [one] => blocking(one, cfg, &w, &mut rng),
                many => polled(many, cfg, &w, &mut rng),
            }
            .map_err(|e| format!("server on port {}: {e}", ports[k]))?;
            idle[k] = if lat.is_empty() { idle[k] + 1 } else { 0 };
            if idle[k] == STALLED_SLICES {
                return Err(format!(
                    "server on port {}: no echo completed in {STALLED_SLICES} slices in a row \
                     (round {r})",
                    ports[k]
                ));
            }
            row[k] = lat.len() as f64 * cfg.size as f64 * 8.0 / (slice - cfg.warmup) / 1e9;
        }
        out.push(row);
    }
    Ok(out)
}

/// Slices in a row in which a server completes no echo before [`rotate`]
/// calls it stalled.
const STALLED_SLICES: usize = 3;

/// The servers' order in round `r` of [`rotate`]: each round starts one
/// further on, so no server always follows the same one.
fn turn_order(r: usize, n: usize) -> impl Iterator<Item = usize> {
    (0..n).map(move |i| (r + i) % n)
}

/// [`rotate`]'s result as one line of JSON: `{"size":S,"slice":..,
/// "warmup":..,"ports":[..],"rounds":[[Gbit/s per port], ...]}`.
pub fn rotation_json(cfg: &ClientConfig, ports: &[u16], slice: f64, rows: &[Vec<f64>]) -> String {
    let list = |v: &mut dyn Iterator<Item = String>| v.collect::<Vec<_>>().join(",");
    let rounds = list(
        &mut rows
            .iter()
            .map(|r| format!("[{}]", list(&mut r.iter().map(|g| format!("{g:.4}"))))),
    );
    format!(
        "{{\"size\":{},\"slice\":{slice},\"warmup\":{},\"ports\":[{}],\"rounds\":[{rounds}]}}",
        cfg.size,
        cfg.warmup,
        list(&mut ports.iter().map(|p| p.to_string())),
    )
}

/// The rounds of [`rotation_json`]'s output.
pub fn parse_rounds(json: &str) -> Option<Vec<Vec<f64>>> {
    let body = json.split_once("\"rounds\":[")?.1;
    let body = body.trim_end().strip_suffix("]}")?;
    let mut rows = Vec::new();
    for part in body.split(']') {
        let part = part.trim_start_matches(',').trim_start_matches('[');
        if part.is_empty() {
            continue;
        }
        rows.push(
            part.split(',')
                .map(|x| x.trim().parse().ok())
                .collect::<Option<Vec<f64>>>()?,
        );
    }
    Some(rows)
}

fn timed_out(c: &Conn, cfg: &ClientConfig, what: &str) -> String {
    format!(
        "timed out after {:.0} s {what} on connection {} request {} (sent {} of {} bytes, received {}): server hung?",
        cfg.timeout, c.id, c.seq, c.sent, cfg.size, c.got
    )
}

/// One connection, blocking IO.
fn blocking(c: &mut Conn, cfg: &ClientConfig, w: &Window, rng: &mut Rng) -> ThreadOut {
    let to = Some(Duration::from_secs_f64(cfg.timeout));
    c.stream.set_read_timeout(to).map_err(|e| e.to_string())?;
    c.stream.set_write_timeout(to).map_err(|e| e.to_string())?;
    let mut lat = latencies();
    loop {
        let t0 = Instant::now();
        if t0 >= w.end {
            return Ok(lat);
        }
        c.msg.stamp(c.seq);
        c.sent = 0;
        c.got = 0;
        if let Err(e) = c.stream.write_all(c.msg.bytes()) {
            if matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
            ) {
                return Err(timed_out(c, cfg, "sending"));
            }
            return Err(format!("connection {} request {}: send: {e}", c.id, c.seq));
        }
        c.sent = cfg.size;
        while c.got < cfg.size {
            match c.stream.read(&mut c.rbuf[c.got..]) {
                Ok(0) => {
                    return Err(format!(
                    "connection {} request {}: server closed the connection after {} of {} bytes",
                    c.id, c.seq, c.got, cfg.size
                ))
                }
                Ok(n) => c.got += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    return Err(timed_out(c, cfg, "waiting for the echo"))
                }
                Err(e) => return Err(format!("connection {} request {}: recv: {e}", c.id, c.seq)),
            }
        }
        let t1 = Instant::now();
        verify(c.msg.bytes(), &c.rbuf, cfg.verify, rng).map_err(|e| c.mismatch(e))?;
        if t0 >= w.warm && t1 <= w.end {
            record(&mut lat, t1 - t0);
        }
        c.seq += 1;
    }
}

/// What the result of a non-blocking `send`/`recv` means for the loop
/// driving a connection.
enum Step {
    /// This many bytes moved.
    Done(usize),
    /// Nothing now: wait for `poll`.
    Blocked,
    /// Interrupted: call again.
    Retry,
}

fn step(r: nix::Result<usize>, call: &str, c: &Conn) -> Result<Step, String> {
    match r {
        Ok(r) => Ok(Step::Done(r)),
        Err(Errno::EAGAIN) => Ok(Step::Blocked),
        Err(Errno::EINTR) => Ok(Step::Retry),
        Err(e) => Err(format!(
            "connection {} request {}: {call}: {}",
            c.id,
            c.seq,
            io::Error::from(e)
        )),
    }
}

/// Several connections on one thread: non-blocking IO driven by poll.
fn polled(conns: &mut [Conn], cfg: &ClientConfig, w: &Window, rng: &mut Rng) -> ThreadOut {
    for c in conns.iter_mut() {
        c.stream.set_nonblocking(true).map_err(|e| e.to_string())?;
        c.started = Instant::now();
    }
    let n = cfg.size;
    let mut lat = latencies();
    let mut last_progress = Instant::now();
    let mut ready: Vec<bool> = Vec::with_capacity(conns.len());
    loop {
        let now = Instant::now();
        if now >= w.end {
            return Ok(lat);
        }
        let mut pfds: Vec<PollFd> = conns
            .iter()
            .map(|c| {
                let events = if c.sent < n {
                    PollFlags::POLLOUT
                } else {
                    PollFlags::POLLIN
                };
                PollFd::new(c.stream.as_fd(), events)
            })
            .collect();
        let r = match poll(&mut pfds, 100u8) {
            Ok(r) => r,
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(format!("poll: {}", io::Error::from(e))),
        };
        ready.clear();
        ready.extend(
            pfds.iter()
                .map(|p| p.revents().is_some_and(|r| !r.is_empty())),
        );
        drop(pfds);
        if r == 0 {
            if last_progress.elapsed().as_secs_f64() > cfg.timeout {
                let c = &conns[0];
                return Err(timed_out(c, cfg, "without progress"));
            }
            continue;
        }
        for (i, &has_events) in ready.iter().enumerate() {
            if !has_events {
                continue;
            }
            if advance(&mut conns[i], cfg, w, rng, &mut lat)? {
                last_progress = Instant::now();
            }
        }
    }
}

/// Moves connection `c` on as far as it goes without blocking: sends the
/// rest of its message, or receives the rest of the echo, checks it and
/// starts the next message (latencies go to `lat`). True if any byte moved.
fn advance(
    c: &mut Conn,
    cfg: &ClientConfig,
    w: &Window,
    rng: &mut Rng,
    lat: &mut Latencies,
) -> Result<bool, String> {
    let n = cfg.size;
    let fd = c.stream.as_raw_fd();
    let mut progressed = false;
    loop {
        if c.sent < n {
            let b = c.msg.bytes();
            let r = send(fd, &b[c.sent..n], MsgFlags::MSG_NOSIGNAL);
            let r = match step(r, "send", c)? {
                Step::Done(r) => r,
                Step::Blocked => return Ok(progressed),
                Step::Retry => continue,
            };
            c.sent += r;
            progressed = true;
        } else {
            let r = recv(fd, &mut c.rbuf[c.got..n], MsgFlags::empty());
            let r = match step(r, "recv", c)? {
                Step::Done(r) => r,
                Step::Blocked => return Ok(progressed),
                Step::Retry => continue,
            };
            if r == 0 {
                return Err(format!(
                    "connection {} request {}: server closed the connection after {} of {} bytes",
                    c.id, c.seq, c.got, n
                ));
            }
            c.got += r;
            progressed = true;
            if c.got == n {
                let t1 = Instant::now();
                verify(c.msg.bytes(), &c.rbuf, cfg.verify, rng).map_err(|e| c.mismatch(e))?;
                if c.started >= w.warm && t1 <= w.end {
                    record(lat, t1 - c.started);
                }
                c.seq += 1;
                c.msg.stamp(c.seq);
                c.sent = 0;
                c.got = 0;
                c.started = t1;
                if t1 >= w.end {
                    return Ok(progressed);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_round_starts_one_server_further_on() {
        let rounds: Vec<Vec<usize>> = (0..4).map(|r| turn_order(r, 3).collect()).collect();
        assert_eq!(rounds, [[0, 1, 2], [1, 2, 0], [2, 0, 1], [0, 1, 2]]);
    }
}

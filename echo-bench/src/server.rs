//! The echo server: read a message, copy it N times, optionally touch the
//! last copy, write the last copy back.
//!
//! Every data-path call goes through libc's exported symbols so that a
//! preloaded zio sees it: `read` (or `recv` with `MSG_WAITALL`) into the
//! input buffer, `memcpy` through a function pointer (so the compiler can
//! neither inline nor merge the chained copies), `write` of the reply, and
//! `malloc`/`free` or `posix_memalign` for the buffers. Those calls stay
//! raw `libc` on raw heap memory, as in a C server: nix's wrappers take
//! slices, and a slice over a fresh buffer's uninitialised bytes would not
//! be sound. The rest (poll, signals) goes through `nix`.

use std::ffi::c_void;
use std::io;
use std::net::{TcpListener, TcpStream};
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::poll::{poll, PollFd, PollFlags};
use nix::sys::signal::{signal, SigHandler, Signal};

use crate::tcp;

/// Where the copies live.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Buffers {
    /// Allocated once per thread (page-aligned) and reused for every message.
    Static,
    /// `malloc`ed for every message, `free`d after the reply is written.
    Malloc,
    /// As a server making its copies in a chain: the input buffer is
    /// `malloc`ed once per connection, each copy goes into a fresh
    /// `malloc`, and the previous intermediate is `free`d right after the
    /// next copy is made (the allocator hands the same chunks back, message
    /// after message). Nothing page-aligned.
    Chain,
}

choices!(Buffers, "buffers": Static = "static", Malloc = "malloc", Chain = "chain");

/// What the server reads of the last copy before replying.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Touch {
    /// Nothing.
    None,
    /// One byte in each of K pages spread evenly over the buffer.
    Pages(usize),
    /// The first F of the bytes (a contiguous prefix), summed.
    Fraction(f64),
}

/// How the input buffer is filled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Recv {
    /// `read(2)` in a loop: each call returns what the socket holds.
    Read,
    /// `recv(2)` with `MSG_WAITALL`: usually one call per message.
    WaitAll,
}

choices!(Recv, "recv": Read = "read", WaitAll = "waitall");

/// What the server does (`echo-bench server`'s options).
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// 0 picks a free port.
    pub port: u16,
    /// Server threads, each with its own connections and buffers.
    pub threads: usize,
    /// Message size in bytes.
    pub size: usize,
    /// Chained copies per message.
    pub copies: usize,
    /// Reused buffers, or a fresh allocation per request.
    pub buffers: Buffers,
    /// What it reads of the last copy before replying.
    pub touch: Touch,
    /// How the input buffer is filled.
    pub recv: Recv,
    /// Static input buffers a thread takes in turn, one per message (1: the
    /// paper's server). Two are what zio's input redirection costs the
    /// program's caches: the previous message stays in memory while the
    /// next one is read.
    pub inputs: usize,
    /// Stop after this long (seconds).
    pub max_seconds: f64,
    /// TCP congestion control of the connections (see [`crate::tcp`]).
    pub congestion: String,
}

impl ServerConfig {
    /// `size`-byte messages through `copies` copies, everything else as the
    /// command line's defaults (the one place they are written down).
    pub fn new(size: usize, copies: usize) -> ServerConfig {
        ServerConfig {
            port: 0,
            threads: 1,
            size,
            copies,
            buffers: Buffers::Static,
            touch: Touch::None,
            recv: Recv::Read,
            inputs: 1,
            max_seconds: 600.0,
            congestion: tcp::DEFAULT_CONGESTION.into(),
        }
    }
}

/// What the server did, summed over its threads.
#[derive(Clone, Copy, Debug, Default)]
pub struct ServeStats {
    /// Messages echoed.
    pub messages: u64,
    /// Connections accepted.
    pub connections: u64,
    /// Connections that ended in an error.
    pub errors: u64,
}

/// Set by SIGTERM/SIGINT once [`install_signal_handlers`] ran.
static SIGNALLED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: std::ffi::c_int) {
    SIGNALLED.store(true, Ordering::Relaxed);
}

/// SIGTERM and SIGINT make [`Server::serve`] return.
pub fn install_signal_handlers() {
    for sig in [Signal::SIGTERM, Signal::SIGINT] {
        // SAFETY: the handler only stores to an atomic (async-signal-safe).
        let _ = unsafe { signal(sig, SigHandler::Handler(on_signal)) };
    }
}

type MemcpyFn = unsafe extern "C" fn(*mut c_void, *const c_void, usize) -> *mut c_void;

/// libc's `memcpy` as the dynamic linker bound it (zio's when preloaded).
/// Called through this pointer, laundered by `black_box`, the chained copies
/// are real calls that the optimizer cannot turn into one copy or remove.
static MEMCPY: MemcpyFn = libc::memcpy;

/// A buffer of `size` bytes, page-aligned for static buffers.
struct Buf(*mut u8);

fn alloc(size: usize, buffers: Buffers) -> io::Result<Buf> {
    let n = size.max(1);
    let p = match buffers {
        Buffers::Static => {
            let mut p: *mut c_void = std::ptr::null_mut();
            // SAFETY: posix_memalign with a power-of-two alignment.
            let r = unsafe { libc::posix_memalign(&mut p, 4096, n) };
            if r != 0 {
                return Err(io::Error::from_raw_os_error(r));
            }
            p
        }
        // SAFETY: plain allocation, freed with free.
        Buffers::Malloc | Buffers::Chain => unsafe { libc::malloc(n) },
    };
    if p.is_null() {
        return Err(io::Error::new(io::ErrorKind::OutOfMemory, "malloc failed"));
    }
    Ok(Buf(p as *mut u8))
}

fn release(b: &Buf) {
    // SAFETY: allocated by posix_memalign or malloc, freed once.
    unsafe { libc::free(b.0 as *mut c_void) }
}

/// The listening server.
pub struct Server {
    listener: TcpListener,
    cfg: ServerConfig,
}

impl Server {
    /// Listens on 127.0.0.1 as `cfg` says (refusing zero threads or size).
    pub fn bind(cfg: ServerConfig) -> io::Result<Server> {
        if cfg.threads == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "threads must be at least 1",
            ));
        }
        if cfg.size == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "size must be at least 1",
            ));
        }
        let listener = TcpListener::bind(("127.0.0.1", cfg.port))?;
        // Set on the listener: accepted connections inherit it, and a name
        // the kernel does not have is an error at start.
        tcp::set_congestion(&listener, &cfg.congestion)?;
        listener.set_nonblocking(true)?;
        Ok(Server { listener, cfg })
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.listener.local_addr().map(|a| a.port()).unwrap_or(0)
    }

    /// Serves until `stop` is set, a signal arrives (see
    /// [`install_signal_handlers`]) or `max_seconds` pass. Worker threads
    /// notice the stop when their connections are idle; the caller may exit
    /// the process without waiting for them.
    pub fn serve(self, stop: Arc<AtomicBool>) -> io::Result<ServeStats> {
        let deadline = Instant::now() + Duration::from_secs_f64(self.cfg.max_seconds.max(0.0));
        let messages = Arc::new(AtomicU64::new(0));
        let errors = Arc::new(AtomicU64::new(0));
        let mut senders = Vec::new();
        for t in 0..self.cfg.threads {
            let (tx, rx) = mpsc::channel::<TcpStream>();
            senders.push(tx);
            let cfg = self.cfg.clone();
            let stop = stop.clone();
            let messages = messages.clone();
            let errors = errors.clone();
            std::thread::Builder::new()
                .name(format!("echo-{t}"))
                .spawn(move || worker(rx, cfg, stop, messages, errors))?;
        }
        let mut connections = 0u64;
        let mut next = 0;
        loop {
            if stop.load(Ordering::Relaxed)
                || SIGNALLED.load(Ordering::Relaxed)
                || Instant::now() >= deadline
            {
                stop.store(true, Ordering::Relaxed);
                break;
            }
            let mut p = [PollFd::new(self.listener.as_fd(), PollFlags::POLLIN)];
            if !matches!(poll(&mut p, 50u8), Ok(1..)) {
                continue;
            }
            loop {
                match self.listener.accept() {
                    Ok((s, _)) => {
                        s.set_nonblocking(false)?;
                        s.set_nodelay(true)?;
                        connections += 1;
                        let _ = senders[next].send(s);
                        next = (next + 1) % senders.len();
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => {
                        eprintln!("echo-bench server: accept: {e}");
                        break;
                    }
                }
            }
        }
        Ok(ServeStats {
            messages: messages.load(Ordering::Relaxed),
            connections,
            errors: errors.load(Ordering::Relaxed),
        })
    }
}

/// One worker: its own buffers, its own connections.
fn worker(
    rx: mpsc::Receiver<TcpStream>,
    cfg: ServerConfig,
    stop: Arc<AtomicBool>,
    messages: Arc<AtomicU64>,
    errors: Arc<AtomicU64>,
) {
    let mut bufs: Vec<Buf> = Vec::new();
    if cfg.buffers == Buffers::Static {
        for _ in 0..cfg.inputs.max(1) + cfg.copies {
            match alloc(cfg.size, Buffers::Static) {
                Ok(b) => bufs.push(b),
                Err(e) => {
                    eprintln!("echo-bench server: cannot allocate buffers: {e}");
                    errors.fetch_add(1, Ordering::Relaxed);
                    return;
                }
            }
        }
    }
    let mut conns: Vec<TcpStream> = Vec::new();
    // Buffers::Chain: each connection's input buffer, made at its first
    // message and freed when it closes.
    let mut inputs: Vec<Option<Buf>> = Vec::new();
    let mut ready: Vec<usize> = Vec::new();
    let mut turn = 0usize;
    while !stop.load(Ordering::Relaxed) {
        while let Ok(c) = rx.try_recv() {
            conns.push(c);
            inputs.push(None);
        }
        if conns.is_empty() {
            match rx.recv_timeout(Duration::from_millis(50)) {
                Ok(c) => {
                    conns.push(c);
                    inputs.push(None);
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            }
            continue;
        }
        // One connection: block in read (no poll per message). More: poll.
        ready.clear();
        if conns.len() == 1 {
            ready.push(0);
        } else {
            let mut pfds: Vec<PollFd> = conns
                .iter()
                .map(|c| PollFd::new(c.as_fd(), PollFlags::POLLIN))
                .collect();
            if !matches!(poll(&mut pfds, 50u8), Ok(1..)) {
                continue;
            }
            ready.extend(
                (0..pfds.len()).filter(|&i| pfds[i].revents().is_some_and(|r| !r.is_empty())),
            );
        }
        let mut dead = Vec::new();
        for &i in &ready {
            turn = turn.wrapping_add(1);
            match echo_one(conns[i].as_raw_fd(), &cfg, &bufs, &mut inputs[i], turn) {
                Ok(true) => {
                    messages.fetch_add(1, Ordering::Relaxed);
                }
                Ok(false) => dead.push(i),
                Err(e) => {
                    if e.kind() != io::ErrorKind::ConnectionReset
                        && e.kind() != io::ErrorKind::BrokenPipe
                    {
                        eprintln!("echo-bench server: connection error: {e}");
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                    dead.push(i);
                }
            }
        }
        for i in dead.into_iter().rev() {
            conns.swap_remove(i);
            if let Some(b) = inputs.swap_remove(i) {
                release(&b);
            }
        }
    }
    for b in bufs.iter().chain(inputs.iter().flatten()) {
        release(b);
    }
}

/// Reads exactly `n` bytes into `buf`. Ok(false) on EOF before the first byte.
fn read_exact(fd: RawFd, buf: *mut u8, n: usize, mode: Recv) -> io::Result<bool> {
    let mut off = 0;
    while off < n {
        // SAFETY: buf holds n bytes.
        let r = unsafe {
            let p = buf.add(off) as *mut c_void;
            match mode {
                Recv::Read => libc::read(fd, p, n - off),
                Recv::WaitAll => libc::recv(fd, p, n - off, libc::MSG_WAITALL),
            }
        };
        if r > 0 {
            off += r as usize;
        } else if r == 0 {
            if off == 0 {
                return Ok(false);
            }
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("peer closed after {off} of {n} bytes of a message"),
            ));
        } else {
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
    }
    Ok(true)
}

/// Writes exactly `n` bytes of `buf`.
fn write_all(fd: RawFd, buf: *const u8, n: usize) -> io::Result<()> {
    let mut off = 0;
    while off < n {
        // SAFETY: buf holds n bytes.
        let r = unsafe { libc::write(fd, buf.add(off) as *const c_void, n - off) };
        if r > 0 {
            off += r as usize;
        } else if r == 0 {
            return Err(io::Error::new(io::ErrorKind::WriteZero, "write returned 0"));
        } else {
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
    }
    Ok(())
}

/// Reads what `touch` asks for from `buf` (`n` bytes).
fn touch(buf: *const u8, n: usize, t: Touch) {
    match t {
        Touch::None => {}
        Touch::Pages(k) => {
            let pages = n.div_ceil(4096);
            let k = k.min(pages);
            let mut sink = 0u8;
            for i in 0..k {
                let page = i * pages / k;
                // SAFETY: page * 4096 < n.
                sink ^= unsafe { std::ptr::read_volatile(buf.add(page * 4096)) };
            }
            std::hint::black_box(sink);
        }
        Touch::Fraction(f) => {
            let m = ((n as f64 * f.clamp(0.0, 1.0)) as usize).min(n);
            // SAFETY: buf holds n >= m bytes.
            let s = unsafe { std::slice::from_raw_parts(std::hint::black_box(buf), m) };
            let mut sum = 0u64;
            let mut words = s.chunks_exact(8);
            for w in &mut words {
                sum = sum.wrapping_add(u64::from_ne_bytes(w.try_into().unwrap()));
            }
            for &b in words.remainder() {
                sum = sum.wrapping_add(b as u64);
            }
            std::hint::black_box(sum);
        }
    }
}

/// One message, the thread's `turn`th. Ok(false) when the peer closed the
/// connection. `conn_input`: the connection's input buffer (`Chain`).
fn echo_one(
    fd: RawFd,
    cfg: &ServerConfig,
    bufs: &[Buf],
    conn_input: &mut Option<Buf>,
    turn: usize,
) -> io::Result<bool> {
    if cfg.buffers == Buffers::Chain {
        return echo_chain(fd, cfg, conn_input);
    }
    let n = cfg.size;
    let inputs = cfg.inputs.max(1);
    let memcpy = std::hint::black_box(MEMCPY);
    let mut owned: Vec<Buf> = Vec::new();
    let get = |i: usize, owned: &mut Vec<Buf>| -> io::Result<*mut u8> {
        match cfg.buffers {
            Buffers::Static => Ok(bufs[i].0),
            Buffers::Chain => unreachable!("chain messages go through echo_chain"),
            Buffers::Malloc => {
                let b = alloc(n, Buffers::Malloc)?;
                let p = b.0;
                owned.push(b);
                Ok(p)
            }
        }
    };
    let result = (|| {
        let input = get(turn % inputs, &mut owned)?;
        if !read_exact(fd, input, n, cfg.recv)? {
            return Ok(false);
        }
        let mut src = input;
        for i in 1..=cfg.copies {
            let dst = get(inputs - 1 + i, &mut owned)?;
            // SAFETY: both buffers hold n bytes and do not overlap.
            unsafe { memcpy(dst as *mut c_void, src as *const c_void, n) };
            src = dst;
        }
        touch(src, n, cfg.touch);
        write_all(fd, src, n)?;
        Ok(true)
    })();
    for b in &owned {
        release(b);
    }
    result
}

/// One message of `Buffers::Chain`: read into the connection's buffer,
/// copy along a chain of fresh allocations, each freed once the next copy
/// is made, write the last and free it.
fn echo_chain(fd: RawFd, cfg: &ServerConfig, conn_input: &mut Option<Buf>) -> io::Result<bool> {
    let n = cfg.size;
    let memcpy = std::hint::black_box(MEMCPY);
    let input = match conn_input {
        Some(b) => b.0,
        None => conn_input.insert(alloc(n, Buffers::Chain)?).0,
    };
    if !read_exact(fd, input, n, cfg.recv)? {
        return Ok(false);
    }
    // The intermediate the chain is at (None: still the input buffer).
    let mut held: Option<Buf> = None;
    let result = (|| {
        for _ in 0..cfg.copies {
            let dst = alloc(n, Buffers::Chain)?;
            let src = held.as_ref().map_or(input, |b| b.0);
            // SAFETY: both buffers hold n bytes and do not overlap.
            unsafe { memcpy(dst.0 as *mut c_void, src as *const c_void, n) };
            if let Some(prev) = held.replace(dst) {
                release(&prev);
            }
        }
        let last = held.as_ref().map_or(input, |b| b.0);
        touch(last, n, cfg.touch);
        write_all(fd, last, n)
    })();
    if let Some(b) = held {
        release(&b);
    }
    result.map(|()| true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::os::fd::AsRawFd;
    use std::os::unix::net::UnixStream;

    /// With `--inputs 2` a message's turn picks its input buffer: odd turns
    /// read into the second, even ones into the first, and the echo comes
    /// from the buffer the message went into.
    #[test]
    fn turns_take_the_input_buffers_in_order() {
        let n = 2 * 4096;
        let cfg = ServerConfig {
            inputs: 2,
            max_seconds: 1.0,
            ..ServerConfig::new(n, 0)
        };
        let bufs: Vec<Buf> = (0..2).map(|_| alloc(n, Buffers::Static).unwrap()).collect();
        // SAFETY: both buffers hold n bytes.
        let view = |i: usize| unsafe { std::slice::from_raw_parts(bufs[i].0, n) }.to_vec();
        for b in &bufs {
            // SAFETY: as above.
            unsafe { std::ptr::write_bytes(b.0, 0, n) };
        }
        let (mut peer, server) = UnixStream::pair().unwrap();
        for (turn, fill) in [(1usize, 0xA1u8), (2, 0xB2), (3, 0xC3)] {
            peer.write_all(&vec![fill; n]).unwrap();
            assert!(echo_one(server.as_raw_fd(), &cfg, &bufs, &mut None, turn).unwrap());
            let mut echo = vec![0u8; n];
            peer.read_exact(&mut echo).unwrap();
            assert!(echo.iter().all(|&b| b == fill), "turn {turn}");
            assert!(view(turn % 2).iter().all(|&b| b == fill), "turn {turn}");
        }
        // Turn 3 went into the second buffer and left turn 2 in the first.
        assert!(view(0).iter().all(|&b| b == 0xB2));
        for b in &bufs {
            release(b);
        }
    }

    /// `Buffers::Chain` echoes every message through its chain of fresh
    /// allocations, keeping the connection's input buffer between messages.
    #[test]
    fn chain_echoes_through_fresh_allocations() {
        let n = 3 * 4096 + 100;
        let cfg = ServerConfig {
            buffers: Buffers::Chain,
            max_seconds: 1.0,
            ..ServerConfig::new(n, 3)
        };
        let (mut peer, server) = UnixStream::pair().unwrap();
        let mut input = None;
        let mut first = None;
        for fill in [0x11u8, 0x22, 0x33] {
            let msg: Vec<u8> = (0..n).map(|i| fill ^ (i % 251) as u8).collect();
            peer.write_all(&msg).unwrap();
            assert!(echo_one(server.as_raw_fd(), &cfg, &[], &mut input, 0).unwrap());
            let mut echo = vec![0u8; n];
            peer.read_exact(&mut echo).unwrap();
            assert!(echo == msg, "message {fill:#x}");
            let at = input.as_ref().map(|b| b.0 as usize);
            assert!(
                at.is_some() && first.get_or_insert(at) == &at,
                "one input buffer"
            );
        }
        drop(peer);
        assert!(!echo_one(server.as_raw_fd(), &cfg, &[], &mut input, 0).unwrap());
        release(&input.unwrap());
    }
}

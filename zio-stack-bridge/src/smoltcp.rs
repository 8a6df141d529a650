//! The smoltcp adapter: a TCP socket of smoltcp whose receive and transmit
//! rings are page-aligned memory handed to zio through the bridge.
//!
//! Receive: what the program reads is lent to zio first, so its copy into
//! the program's buffer (and every copy of that) can be elided. The bytes
//! read stay in smoltcp's ring, not yet dequeued, so smoltcp cannot write
//! over them; the oldest are released (their dependents served) and
//! dequeued once more than half of the ring is held so, or when the ring
//! wraps. The receive window shrinks by what is held, by at most half.
//!
//! Transmit: the ring is pinned with zio (smoltcp copies frames out of it
//! itself, in pieces too small for zio to see, so what is gathered there
//! must really be there), and a send gathers the program's buffer from
//! where its bytes really are ([`Bridge::gather`]).
//!
//! With [`Bridge::none`] (or without zio) it is plain smoltcp.

use std::collections::VecDeque;
use std::time::Duration;

use smoltcp::iface::{SocketHandle, SocketSet};
use smoltcp::socket::tcp;

use crate::{Bridge, PageBuf, Released};

/// How long a release waits for an output in flight before the bytes stay
/// held for the next try.
const RELEASE_WAIT: Duration = Duration::from_micros(100);

/// What the adapter did (per socket).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Bytes the program read.
    pub recv_bytes: u64,
    /// Contiguous runs those bytes came in (a copy each).
    pub recv_runs: u64,
    /// Bytes the program sent.
    pub send_bytes: u64,
    /// Bytes lent to zio (0 without the bridge).
    pub lent_bytes: u64,
    /// Held regions released and dequeued.
    pub releases: u64,
    /// Releases answered "hold" (an output in flight read the bytes).
    pub holds: u64,
}

/// A TCP socket of smoltcp over rings the bridge manages.
pub struct ZioSocket {
    handle: SocketHandle,
    bridge: &'static Bridge,
    rx: (usize, usize),
    tx: (usize, usize),
    /// Regions read by the program and not dequeued, oldest first.
    held: VecDeque<(usize, usize)>,
    held_bytes: usize,
    lowat: usize,
    stats: Stats,
}

impl ZioSocket {
    /// A socket over `rx` and `tx`, added to `sockets`. The rings must
    /// outlive the socket set (they are smoltcp's buffers).
    pub fn new<'a>(
        sockets: &mut SocketSet<'a>,
        rx: &'a mut PageBuf,
        tx: &'a mut PageBuf,
        bridge: &'static Bridge,
    ) -> ZioSocket {
        let rxr = (rx.as_ptr() as usize, rx.len());
        let txr = (tx.as_ptr() as usize, tx.len());
        bridge.pin(tx.as_ptr(), tx.len());
        let s = tcp::Socket::new(
            tcp::SocketBuffer::new(rx.as_mut_slice()),
            tcp::SocketBuffer::new(tx.as_mut_slice()),
        );
        ZioSocket {
            handle: sockets.add(s),
            bridge,
            rx: rxr,
            tx: txr,
            held: VecDeque::new(),
            held_bytes: 0,
            lowat: 1,
            stats: Stats::default(),
        }
    }

    /// The smoltcp socket's handle (to listen, connect, close).
    pub fn handle(&self) -> SocketHandle {
        self.handle
    }

    /// As `SO_RCVLOWAT`: [`ZioSocket::recv`] reads nothing until at least
    /// `min(bytes, what it was asked for)` bytes are unread, so that each
    /// read is a copy large enough for zio to elide (its threshold is 64
    /// KiB) rather than a segment at a time. Only for a
    /// protocol whose reads can wait for that much (fixed-size messages):
    /// a peer that sends less and waits for an answer would wait forever.
    /// 1 (the default) reads whatever is there.
    pub fn set_recv_lowat(&mut self, bytes: usize) {
        self.lowat = bytes.max(1);
    }

    /// What the adapter did so far.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// Bytes received and not yet read by the program.
    pub fn recv_ready(&self, sockets: &mut SocketSet<'_>) -> usize {
        let s = sockets.get_mut::<tcp::Socket>(self.handle);
        s.recv_queue() - self.held_bytes
    }

    /// Reads up to `out.len()` bytes: 0 if none is there now.
    pub fn recv(
        &mut self,
        sockets: &mut SocketSet<'_>,
        out: &mut [u8],
    ) -> Result<usize, tcp::RecvError> {
        let mut got = 0;
        while got < out.len() {
            let s = sockets.get_mut::<tcp::Socket>(self.handle);
            let held = self.held_bytes;
            let more = s.recv_queue() > held;
            // Fewer unread bytes than the mark (or than asked for): wait.
            if s.recv_queue() - held < self.lowat.min(out.len() - got) {
                break;
            }
            let (rx_end, bridge) = (self.rx.0 + self.rx.1, self.bridge);
            let mut lend = None;
            let step = s.recv(|buf| {
                if held >= buf.len() {
                    // Nothing new before the ring's end: what is held up
                    // to there must go before the rest can be read.
                    let wraps = buf.as_ptr() as usize + buf.len() == rx_end && more;
                    return (0, if wraps { Step::Wrap } else { Step::Empty });
                }
                let new = &buf[held..];
                let n = new.len().min(out.len() - got);
                // SAFETY: released (`release_oldest`) before it is dequeued,
                // which is the only way smoltcp may write it again.
                let lent = unsafe { bridge.register(new.as_ptr(), n) };
                out[got..got + n].copy_from_slice(&new[..n]);
                lend = Some((new.as_ptr() as usize, n, lent));
                (0, Step::Read)
            })?;
            match step {
                Step::Read => {
                    let (a, n, lent) = lend.expect("read");
                    self.held.push_back((a, n));
                    self.held_bytes += n;
                    self.stats.recv_bytes += n as u64;
                    self.stats.recv_runs += 1;
                    if lent {
                        self.stats.lent_bytes += n as u64;
                    }
                    got += n;
                }
                Step::Wrap => {
                    if !self.release_to(sockets, rx_end) {
                        break;
                    }
                }
                Step::Empty => break,
            }
        }
        while self.held_bytes > self.rx.1 / 2 {
            if !self.release_oldest(sockets) {
                break;
            }
        }
        Ok(got)
    }

    /// Sends as much of `data` as the transmit ring takes now, gathered from
    /// where its bytes really are.
    pub fn send(
        &mut self,
        sockets: &mut SocketSet<'_>,
        data: &[u8],
    ) -> Result<usize, tcp::SendError> {
        let mut sent = 0;
        let bridge = self.bridge;
        while sent < data.len() {
            let s = sockets.get_mut::<tcp::Socket>(self.handle);
            let n = s.send(|buf| {
                let n = buf.len().min(data.len() - sent);
                bridge.gather(&mut buf[..n], &data[sent..sent + n]);
                (n, n)
            })?;
            if n == 0 {
                break;
            }
            sent += n;
        }
        self.stats.send_bytes += sent as u64;
        Ok(sent)
    }

    /// Releases and dequeues held regions up to the ring's end `end`.
    /// (Regions never cross the end: each is one contiguous read.)
    fn release_to(&mut self, sockets: &mut SocketSet<'_>, end: usize) -> bool {
        while let Some(&(a, n)) = self.held.front() {
            if !self.release_oldest(sockets) {
                return false;
            }
            if a + n == end {
                break;
            }
        }
        true
    }

    /// Releases the oldest held region and dequeues it; false if an output
    /// in flight still reads it.
    fn release_oldest(&mut self, sockets: &mut SocketSet<'_>) -> bool {
        let Some(&(a, n)) = self.held.front() else {
            return false;
        };
        if self.bridge.release(a as *const u8, n, RELEASE_WAIT) == Released::Hold {
            self.stats.holds += 1;
            return false;
        }
        let s = sockets.get_mut::<tcp::Socket>(self.handle);
        let done = s.recv(|buf| {
            debug_assert_eq!(buf.as_ptr() as usize, a);
            let k = n.min(buf.len());
            (k, k)
        });
        debug_assert_eq!(done, Ok(n));
        self.held.pop_front();
        self.held_bytes -= n;
        self.stats.releases += 1;
        true
    }

    /// Gives every held byte back and ends the transmit ring's pin (before
    /// the rings are freed or reused). False if an output in flight still
    /// reads held bytes: call it again.
    pub fn release_all(&mut self, sockets: &mut SocketSet<'_>) -> bool {
        while !self.held.is_empty() {
            if !self.release_oldest(sockets) {
                return false;
            }
        }
        self.bridge.unpin(self.tx.0 as *const u8);
        true
    }
}

/// One step of [`ZioSocket::recv`].
enum Step {
    Read,
    Wrap,
    Empty,
}

//! The smoltcp echo: a server and its client over smoltcp's in-process
//! Loopback device, the server's socket a `zio_stack_bridge::smoltcp` one
//! (`echo-bench stack --stack smoltcp`, integration/tests/bridge.rs).
//!
//! usage: echo-bench smoltcp-echo SIZE COPIES MESSAGES bridge|plain [--tun DEV]
//!
//! The client sends MESSAGES messages of SIZE bytes, each different, one
//! at a time; the server reads each whole into its buffer, makes COPIES
//! more copies of it along buffers of its own (allocated once, as a
//! server's per-connection buffers are), and sends the last back; the
//! client checks every byte. With `--tun DEV` only the server runs, on
//! 127.20.0.2 behind the TUN device DEV (set up by the caller, in a network
//! namespace of its own), and a kernel TCP client on the other side sends
//! the messages and checks them; it ends once MESSAGES messages went back. `plain` gives the server's socket the no-op
//! bridge (plain smoltcp, whatever is loaded). stdout: the verdict; stderr:
//! one line of figures (seconds, MB/s echoed, the socket's stats, and zio's
//! counters when zio is loaded).

use std::time::{Duration, Instant as StdInstant};

use crate::pattern::mix;
use smoltcp::iface::{Config, Interface, SocketSet, SocketStorage};
use smoltcp::phy::{Loopback, Medium, TunTapInterface};
use smoltcp::socket::tcp;
use smoltcp::time::Instant;
use smoltcp::wire::{HardwareAddress, IpAddress, IpCidr};
use zio_stack_bridge::smoltcp::ZioSocket;
use zio_stack_bridge::{Bridge, PageBuf};

/// Each socket's receive and transmit rings.
const RING: usize = 4 << 20;
const PORT: u16 = 7;

/// Message `i`: SIZE bytes, none alike across messages.
fn message(i: u64, size: usize) -> Vec<u8> {
    (0..size.div_ceil(8) as u64)
        .flat_map(|k| mix((i << 40) | k).to_le_bytes())
        .take(size)
        .collect()
}

/// The echo server: reads a message whole into its buffer, copies it along
/// its chain, sends the last copy.
struct Server {
    sock: ZioSocket,
    size: usize,
    /// Page-aligned, as a server that cares for its copies has them.
    inbuf: PageBuf,
    chain: Vec<PageBuf>,
    got: usize,
    /// The buffer being sent (0: `inbuf`, k: the k-th copy) and how far.
    out: Option<(usize, usize)>,
    echoed: u64,
}

impl Server {
    fn new(mut sock: ZioSocket, size: usize, copies: usize) -> Server {
        // Messages are of a known size: each read can wait for a run zio
        // could elide (in every mode, so that they compare).
        sock.set_recv_lowat(64 << 10);
        Server {
            sock,
            size,
            inbuf: PageBuf::new(size),
            chain: (0..copies).map(|_| PageBuf::new(size)).collect(),
            got: 0,
            out: None,
            echoed: 0,
        }
    }

    fn step(&mut self, sockets: &mut SocketSet<'_>) {
        let size = self.size;
        if let Some((k, at)) = &mut self.out {
            let buf = if *k == 0 {
                &self.inbuf
            } else {
                &self.chain[*k - 1]
            };
            *at += self.sock.send(sockets, &buf[*at..size]).unwrap_or(0);
            if *at == size {
                self.out = None;
                self.echoed += 1;
            }
            return;
        }
        self.got += self
            .sock
            .recv(sockets, &mut self.inbuf[self.got..size])
            .unwrap_or(0);
        if self.got == size {
            self.got = 0;
            for k in 0..self.chain.len() {
                let (done, rest) = self.chain.split_at_mut(k);
                let src = if k == 0 { &self.inbuf } else { &done[k - 1] };
                rest[0][..size].copy_from_slice(&src[..size]);
            }
            self.out = Some((self.chain.len(), 0));
        }
    }
}

/// `echo-bench smoltcp-echo SIZE COPIES MESSAGES bridge|plain [--tun DEV]`.
pub fn run(args: &[String]) -> Result<(), String> {
    const USAGE: &str =
        "usage: echo-bench smoltcp-echo SIZE COPIES MESSAGES bridge|plain [--tun DEV]";
    let (args, tun) = match args {
        [a @ .., t, dev] if t == "--tun" => (a, Some(dev.as_str())),
        a => (a, None),
    };
    if args.len() != 4 {
        return Err(USAGE.into());
    }
    let size: usize = args[0].parse().map_err(|_| USAGE)?;
    let copies: usize = args[1].parse().map_err(|_| USAGE)?;
    let messages: u64 = args[2].parse().map_err(|_| USAGE)?;
    let bridge = match args[3].as_str() {
        "bridge" => Bridge::get(),
        "plain" => Bridge::none(),
        _ => return Err(USAGE.into()),
    };
    let (mut srx, mut stx) = (PageBuf::new(RING), PageBuf::new(RING));
    let (mut crx, mut ctx) = (PageBuf::new(RING), PageBuf::new(RING));
    let mut storage: [SocketStorage; 2] = Default::default();
    let mut sockets = SocketSet::new(&mut storage[..]);
    let sock = ZioSocket::new(&mut sockets, &mut srx, &mut stx, bridge);
    no_delay(&mut sockets, sock.handle());
    sockets
        .get_mut::<tcp::Socket>(sock.handle())
        .listen(PORT)
        .map_err(|e| format!("listen: {e}"))?;
    let mut server = Server::new(sock, size, copies);
    let start = StdInstant::now();
    let deadline = start + Duration::from_secs(120);
    let (done, bad) = match tun {
        Some(dev) => {
            let mut device = TunTapInterface::new(dev, Medium::Ip)
                .map_err(|e| format!("TUN device {dev}: {e}"))?;
            let mut iface = interface(&mut device, IpAddress::v4(127, 20, 0, 2), 24);
            loop {
                if StdInstant::now() > deadline {
                    return Err(format!("stuck at message {}", server.echoed));
                }
                iface.poll(Instant::now(), &mut device, &mut sockets);
                server.step(&mut sockets);
                let s = sockets.get_mut::<tcp::Socket>(server.sock.handle());
                if server.echoed == messages && s.send_queue() == 0 {
                    s.close();
                    break;
                }
            }
            // The client's close and the last ACKs.
            let end = StdInstant::now() + Duration::from_millis(200);
            while StdInstant::now() < end {
                iface.poll(Instant::now(), &mut device, &mut sockets);
            }
            (server.echoed, 0)
        }
        None => {
            let client = ZioSocket::new(&mut sockets, &mut crx, &mut ctx, Bridge::none());
            loopback(&mut sockets, &mut server, client, size, messages, deadline)?
        }
    };
    let secs = start.elapsed().as_secs_f64();
    while !server.sock.release_all(&mut sockets) {}
    let s = server.sock.stats();
    let zio = Bridge::get();
    let c = |n: &str| zio.counter(n).map_or("-".to_string(), |v| v.to_string());
    eprintln!(
        "smoltcp_echo: seconds {secs:.3} MB/s {:.1} recv_bytes {} recv_runs {} send_bytes {} lent_bytes {} \
         releases {} holds {} elided_bytes {} copied_bytes {} bytes_lent {} bytes_resolved {} \
         bytes_backed_up {} faults_missing {}",
        (messages * size as u64) as f64 / secs / 1e6,
        s.recv_bytes,
        s.recv_runs,
        s.send_bytes,
        s.lent_bytes,
        s.releases,
        s.holds,
        c("elided_bytes"),
        c("copied_bytes"),
        c("bytes_lent"),
        c("bytes_resolved"),
        c("bytes_backed_up"),
        c("faults_missing"),
    );
    println!("smoltcp_echo: {done} messages of {size} bytes, {bad} differed");
    if bad > 0 {
        return Err(format!("{bad} messages differed"));
    }
    Ok(())
}

/// An IP interface over `device` with the one address `addr/prefix`.
fn interface(device: &mut impl smoltcp::phy::Device, addr: IpAddress, prefix: u8) -> Interface {
    let mut iface = Interface::new(Config::new(HardwareAddress::Ip), device, Instant::now());
    iface.update_ip_addrs(|a| a.push(IpCidr::new(addr, prefix)).expect("address"));
    iface
}

/// As `TCP_NODELAY`, and no delayed ACKs: a request-response echo would
/// otherwise wait for smoltcp's ACK timer at the end of every message.
fn no_delay(sockets: &mut SocketSet<'_>, h: smoltcp::iface::SocketHandle) {
    let s = sockets.get_mut::<tcp::Socket>(h);
    s.set_nagle_enabled(false);
    s.set_ack_delay(None);
}

/// The server and an in-process client over the Loopback device: returns
/// the messages echoed and those that differed.
fn loopback(
    sockets: &mut SocketSet<'_>,
    server: &mut Server,
    mut client: ZioSocket,
    size: usize,
    messages: u64,
    deadline: StdInstant,
) -> Result<(u64, u64), String> {
    let mut device = Loopback::new(Medium::Ip);
    let mut iface = interface(&mut device, IpAddress::v4(127, 0, 0, 1), 8);
    no_delay(sockets, client.handle());
    let cx = iface.context();
    sockets
        .get_mut::<tcp::Socket>(client.handle())
        .connect(cx, (IpAddress::v4(127, 0, 0, 1), PORT), 49152)
        .map_err(|e| format!("connect: {e}"))?;
    let mut want = message(0, size);
    let (mut sent, mut back) = (0, 0);
    let mut echo = vec![0u8; size];
    let (mut done, mut bad) = (0u64, 0u64);
    while done < messages {
        if StdInstant::now() > deadline {
            return Err(format!("stuck at message {done}"));
        }
        iface.poll(Instant::now(), &mut device, sockets);
        server.step(sockets);
        if sent < size {
            sent += client.send(sockets, &want[sent..]).unwrap_or(0);
        }
        back += client.recv(sockets, &mut echo[back..]).unwrap_or(0);
        if back == size {
            bad += u64::from(echo != want);
            done += 1;
            want = message(done, size);
            sent = 0;
            back = 0;
        }
    }
    while !client.release_all(sockets) {}
    Ok((done, bad))
}

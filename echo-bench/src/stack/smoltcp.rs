//! The smoltcp echo: a server and its client over smoltcp's in-process
//! Loopback device, the server's socket a `zio_stack_bridge::smoltcp` one
//! (`echo-bench stack --stack smoltcp`, integration/tests/bridge.rs).
//!
//! usage: echo-bench smoltcp-echo SIZE COPIES MESSAGES bridge|plain
//!
//! The client sends MESSAGES messages of SIZE bytes, each different, one
//! at a time; the server reads each whole into its buffer, makes COPIES
//! more copies of it along buffers of its own (allocated once, as a
//! server's per-connection buffers are), and sends the last back; the
//! client checks every byte. `plain` gives the server's socket the no-op
//! bridge (plain smoltcp, whatever is loaded). stdout: the verdict; stderr:
//! one line of figures (seconds, MB/s echoed, the socket's stats, and zio's
//! counters when zio is loaded).

use std::time::{Duration, Instant as StdInstant};

use smoltcp::iface::{Config, Interface, SocketSet, SocketStorage};
use smoltcp::phy::{Loopback, Medium};
use smoltcp::socket::tcp;
use smoltcp::time::Instant;
use smoltcp::wire::{HardwareAddress, IpAddress, IpCidr};
use zio_stack_bridge::smoltcp::ZioSocket;
use zio_stack_bridge::{Bridge, PageBuf};

/// Each socket's receive and transmit rings.
const RING: usize = 4 << 20;
const PORT: u16 = 7;

fn mix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Message `i`: SIZE bytes, none alike across messages.
fn message(i: u64, size: usize) -> Vec<u8> {
    (0..size.div_ceil(8) as u64)
        .flat_map(|k| mix((i << 40) | k).to_le_bytes())
        .take(size)
        .collect()
}

/// `echo-bench smoltcp-echo SIZE COPIES MESSAGES bridge|plain`.
pub fn run(args: &[String]) -> Result<(), String> {
    const USAGE: &str = "usage: echo-bench smoltcp-echo SIZE COPIES MESSAGES bridge|plain";
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

    let mut device = Loopback::new(Medium::Ip);
    let mut iface = Interface::new(
        Config::new(HardwareAddress::Ip),
        &mut device,
        Instant::now(),
    );
    iface.update_ip_addrs(|a| {
        a.push(IpCidr::new(IpAddress::v4(127, 0, 0, 1), 8))
            .expect("address")
    });
    let (mut srx, mut stx, mut crx, mut ctx) = (
        PageBuf::new(RING),
        PageBuf::new(RING),
        PageBuf::new(RING),
        PageBuf::new(RING),
    );
    let mut storage: [SocketStorage; 2] = Default::default();
    let mut sockets = SocketSet::new(&mut storage[..]);
    let mut server = ZioSocket::new(&mut sockets, &mut srx, &mut stx, bridge);
    let mut client = ZioSocket::new(&mut sockets, &mut crx, &mut ctx, Bridge::none());
    sockets
        .get_mut::<tcp::Socket>(server.handle())
        .listen(PORT)
        .expect("listen");
    let cx = iface.context();
    sockets
        .get_mut::<tcp::Socket>(client.handle())
        .connect(cx, (IpAddress::v4(127, 0, 0, 1), PORT), 49152)
        .expect("connect");

    // The server: the message being read, and the copy being sent.
    let mut inbuf = vec![0u8; size];
    let mut chain: Vec<Vec<u8>> = (0..copies).map(|_| vec![0u8; size]).collect();
    let mut got = 0;
    // The buffer being sent (0: `inbuf`, k: the k-th copy) and how far.
    let mut out: Option<(usize, usize)> = None;
    // The client: the message being sent, its echo being read.
    let mut want = message(0, size);
    let (mut sent, mut back) = (0, 0);
    let mut echo = vec![0u8; size];
    let (mut done, mut bad) = (0u64, 0u64);
    let start = StdInstant::now();
    let deadline = start + Duration::from_secs(120);
    while done < messages {
        assert!(
            StdInstant::now() < deadline,
            "smoltcp_echo: stuck at message {done}"
        );
        iface.poll(Instant::now(), &mut device, &mut sockets);
        // Server.
        if let Some((k, at)) = &mut out {
            let buf = if *k == 0 { &inbuf } else { &chain[*k - 1] };
            *at += server.send(&mut sockets, &buf[*at..]).expect("server send");
            if *at == size {
                out = None;
            }
        } else {
            got += server.recv(&mut sockets, &mut inbuf[got..]).unwrap_or(0);
            if got == size {
                got = 0;
                for k in 0..copies {
                    let (done, rest) = chain.split_at_mut(k);
                    let src = if k == 0 { &inbuf } else { &done[k - 1] };
                    rest[0].copy_from_slice(src);
                }
                out = Some((copies, 0));
            }
        }
        // Client.
        if sent < size {
            sent += client.send(&mut sockets, &want[sent..]).unwrap_or(0);
        }
        back += client.recv(&mut sockets, &mut echo[back..]).unwrap_or(0);
        if back == size {
            if echo != want {
                bad += 1;
            }
            done += 1;
            want = message(done, size);
            sent = 0;
            back = 0;
        }
    }
    let secs = start.elapsed().as_secs_f64();
    while !server.release_all(&mut sockets) {}
    while !client.release_all(&mut sockets) {}
    let s = server.stats();
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

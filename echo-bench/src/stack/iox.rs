//! The iceoryx2 pipeline, source → echo → sink, one process each
//! (`echo-bench stack --stack iceoryx2`, integration/tests/bridge.rs).
//!
//! usage: echo-bench iox source NAME SIZE MESSAGES
//!        echo-bench iox echo   NAME SIZE MESSAGES COPIES|direct bridge|plain
//!        echo-bench iox sink   NAME SIZE MESSAGES
//!
//! The source publishes MESSAGES messages of SIZE bytes, each different,
//! on the service NAME/in; the echo service receives each (through
//! `zio_stack_bridge::iceoryx2::ZioSubscriber`), copies the payload into
//! its own buffer, makes COPIES more copies along buffers of its own
//! (page-aligned, as the payloads are), and
//! publishes the last on NAME/out (`publish`); `direct` publishes the
//! received payload itself (the one copy no pipeline avoids). It also keeps a copy of the
//! payload of every KEEP_EVERY-th message to the end (a copy that outlives
//! its sample, served when the sample is released) and checks those. The
//! sink checks every byte and prints the verdict on stdout and its MB/s on
//! stderr. Publishers
//! block while a subscriber's buffer is full, and send a message again
//! while it reached no subscriber (one that has just come may not be
//! connected yet).

use std::time::{Duration, Instant};

use crate::pattern::mix;
use iceoryx2::prelude::*;
use zio_stack_bridge::iceoryx2::{publish, ZioSubscriber};
use zio_stack_bridge::{Bridge, PageBuf};

/// Samples a subscriber may hold (the echo holds one less, for room).
const BORROWED: usize = 8;
const BUFFER: usize = 4;
/// The echo keeps a copy of one message in this many.
const KEEP_EVERY: u64 = 16;

type Bytes =
    iceoryx2::service::port_factory::publish_subscribe::PortFactory<ipc::Service, [u8], ()>;

/// Distinct message bodies; message `i` is body `i % BODIES` with `i` in
/// its first 8 bytes (so the source and the sink spend little time on
/// them and no two messages in a row are alike).
const BODIES: u64 = 8;

fn bodies(size: usize) -> Vec<Vec<u8>> {
    (0..BODIES)
        .map(|b| {
            (0..size.div_ceil(8) as u64)
                .flat_map(|k| mix((b << 40) | k).to_le_bytes())
                .take(size)
                .collect()
        })
        .collect()
}

/// Message `i`'s first bytes (at most 8).
fn stamp(i: u64, size: usize) -> Vec<u8> {
    i.to_le_bytes()[..size.min(8)].to_vec()
}

fn service(node: &Node<ipc::Service>, name: &str) -> Bytes {
    node.service_builder(&name.try_into().expect("service name"))
        .publish_subscribe::<[u8]>()
        .payload_alignment(Alignment::new(4096).expect("alignment"))
        .enable_safe_overflow(false)
        .subscriber_max_borrowed_samples(BORROWED)
        .subscriber_max_buffer_size(BUFFER)
        .history_size(0)
        .max_publishers(1)
        .max_subscribers(1)
        .open_or_create()
        .expect("service")
}

fn publisher(
    s: &Bytes,
    size: usize,
) -> iceoryx2::port::publisher::Publisher<ipc::Service, [u8], ()> {
    let p = s
        .publisher_builder()
        .initial_max_slice_len(size)
        .backpressure_strategy(BackpressureStrategy::RetryUntilDelivered)
        .create()
        .expect("publisher");
    let deadline = Instant::now() + Duration::from_secs(30);
    while s.dynamic_config().number_of_subscribers() == 0 {
        assert!(Instant::now() < deadline, "no subscriber came");
        std::thread::sleep(Duration::from_millis(1));
    }
    p
}

/// `echo-bench iox ROLE ...` (see the module's usage).
pub fn run(a: &[String]) -> Result<(), String> {
    const USAGE: &str =
        "usage: echo-bench iox source|echo|sink NAME SIZE MESSAGES [COPIES|direct bridge|plain]";
    let arg = |i: usize| a.get(i).map(String::as_str).ok_or(USAGE);
    let (role, name) = (arg(0)?, arg(1)?);
    let size: usize = arg(2)?.parse().map_err(|_| USAGE)?;
    let messages: u64 = arg(3)?.parse().map_err(|_| USAGE)?;
    // Its default configuration is what the pipeline wants: no warning.
    set_log_level(LogLevel::Error);
    let node = NodeBuilder::new()
        .signal_handling_mode(SignalHandlingMode::Disabled)
        .create::<ipc::Service>()
        .expect("node");
    let input = service(&node, &format!("{name}/in"));
    let output = service(&node, &format!("{name}/out"));
    let deadline = Instant::now() + Duration::from_secs(60);
    match role {
        "source" => {
            let p = publisher(&input, size);
            let body = bodies(size);
            for i in 0..messages {
                loop {
                    let s = p.loan_slice_uninit(size).expect("loan");
                    let mut s = s.write_from_slice(&body[(i % BODIES) as usize]);
                    let st = stamp(i, size);
                    s.payload_mut()[..st.len()].copy_from_slice(&st);
                    if s.send().expect("send") > 0 {
                        break;
                    }
                    assert!(Instant::now() < deadline, "source: no subscriber connected");
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
        }
        "echo" => {
            let copies: Option<usize> = match arg(4)? {
                "direct" => None,
                n => Some(n.parse().map_err(|_| USAGE)?),
            };
            let bridge = match arg(5)? {
                "bridge" => Bridge::get(),
                "plain" => Bridge::none(),
                _ => return Err(USAGE.into()),
            };
            let sub = input.subscriber_builder().create().expect("subscriber");
            let p = publisher(&output, size);
            let mut rx = ZioSubscriber::new(sub, BORROWED - 1, bridge);
            let n = copies.map_or(0, |c| c + 1);
            // Its own buffers page-aligned, as the payloads are: whole pages
            // to elide into, even at 64 KiB.
            let mut bufs: Vec<PageBuf> = (0..n).map(|_| PageBuf::new(size)).collect();
            let mut kept: Vec<(u64, Vec<u8>)> = Vec::new();
            let mut done = 0;
            while done < messages {
                assert!(Instant::now() < deadline, "echo stuck at message {done}");
                let Some(payload) = rx.receive().expect("receive") else {
                    std::thread::yield_now();
                    continue;
                };
                if done % KEEP_EVERY == KEEP_EVERY - 1 {
                    kept.push((done, payload.to_vec()));
                }
                let out: &[u8] = match copies {
                    None => payload,
                    Some(copies) => {
                        bufs[0][..size].copy_from_slice(payload);
                        for k in 1..=copies {
                            let (a, b) = bufs.split_at_mut(k);
                            b[0][..size].copy_from_slice(&a[k - 1][..size]);
                        }
                        &bufs[copies][..size]
                    }
                };
                while publish(&p, out, bridge).expect("publish") == 0 {
                    assert!(Instant::now() < deadline, "echo: no subscriber connected");
                    std::thread::sleep(Duration::from_millis(1));
                }
                done += 1;
            }
            let s = rx.stats();
            eprintln!(
                "iox_pipeline echo: samples {} bytes {} lent_bytes {} releases {} holds {}",
                s.samples, s.bytes, s.lent_bytes, s.releases, s.holds
            );
            drop(rx);
            let body = bodies(size);
            let intact = kept
                .iter()
                .filter(|(i, k)| {
                    let st = stamp(*i, size);
                    k[..st.len()] == st[..]
                        && k[st.len()..] == body[(i % BODIES) as usize][st.len()..]
                })
                .count();
            eprintln!(
                "iox_pipeline echo: kept {} copies, {intact} intact",
                kept.len()
            );
            if intact != kept.len() {
                return Err(format!("{} kept copies differ", kept.len() - intact));
            }
        }
        "sink" => {
            let sub = output.subscriber_builder().create().expect("subscriber");
            let body = bodies(size);
            let (mut done, mut bad) = (0u64, 0u64);
            let mut start = None;
            while done < messages {
                assert!(Instant::now() < deadline, "sink stuck at message {done}");
                let Some(s) = sub.receive().expect("receive") else {
                    std::thread::yield_now();
                    continue;
                };
                start.get_or_insert_with(Instant::now);
                let p = s.payload();
                let st = stamp(done, size);
                let b = &body[(done % BODIES) as usize];
                let ok =
                    p.len() == size && p[..st.len()] == st[..] && p[st.len()..] == b[st.len()..];
                bad += u64::from(!ok);
                done += 1;
            }
            let secs = start.map_or(0.0, |t| t.elapsed().as_secs_f64());
            // The first message starts the clock: the rest is the rate.
            let mbs = (messages.saturating_sub(1) * size as u64) as f64 / secs.max(1e-9) / 1e6;
            eprintln!("iox_pipeline sink: seconds {secs:.3} MB/s {mbs:.1}");
            println!("iox_pipeline: {done} messages of {size} bytes, {bad} differed");
            if bad > 0 {
                return Err(format!("{bad} messages differed"));
            }
        }
        _ => return Err(USAGE.into()),
    }
    Ok(())
}

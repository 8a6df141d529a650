//! The iceoryx2 adapter: a subscriber whose received samples are lent to
//! zio while copies of them may live, and a publisher helper whose
//! transmit copy gathers from where the program's bytes really are.
//!
//! A received sample's payload is shared memory the publisher will reuse
//! once the subscriber lets go of the sample, so [`ZioSubscriber`] holds
//! every sample it received, lent to zio, until it needs room under the
//! service's borrow limit: then the oldest is released (copies still
//! reading it are given its bytes) and dropped. The program's copies of a
//! payload are thereby elided like copies of a `read`; a program that
//! keeps them for long pays one backup at the release.
//!
//! [`publish`] is the publisher's `loan_slice_uninit` + `write_from_slice`,
//! its copy into the loaned sample gathered through the bridge. Shared
//! memory is never elided into, so it is the one copy a pipeline keeps.
//!
//! With [`Bridge::none`] (or without zio) it is plain iceoryx2.

use std::collections::VecDeque;
use std::time::Duration;

use iceoryx2::port::publisher::Publisher;
use iceoryx2::port::subscriber::Subscriber;
use iceoryx2::prelude::ipc;
use iceoryx2::sample::Sample;

use crate::{Bridge, Released};

/// How long a release waits for an output in flight before the sample is
/// held for the next try.
const RELEASE_WAIT: Duration = Duration::from_micros(100);

/// What a [`ZioSubscriber`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Samples received.
    pub samples: u64,
    /// Payload bytes received.
    pub bytes: u64,
    /// Payload bytes lent to zio (0 without the bridge).
    pub lent_bytes: u64,
    /// Samples released and dropped to make room.
    pub releases: u64,
    /// Releases answered "hold" (an output in flight read the payload).
    pub holds: u64,
}

/// A subscriber of byte slices whose samples are lent to zio while held.
pub struct ZioSubscriber {
    sub: Subscriber<ipc::Service, [u8], ()>,
    held: VecDeque<Sample<ipc::Service, [u8], ()>>,
    bound: usize,
    bridge: &'static Bridge,
    stats: Stats,
}

impl ZioSubscriber {
    /// Wraps `sub`, holding at most `bound` samples (at least one, and
    /// below the service's `subscriber_max_borrowed_samples`).
    pub fn new(
        sub: Subscriber<ipc::Service, [u8], ()>,
        bound: usize,
        bridge: &'static Bridge,
    ) -> Self {
        ZioSubscriber {
            sub,
            held: VecDeque::new(),
            bound: bound.max(1),
            bridge,
            stats: Stats::default(),
        }
    }

    /// What it did so far.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// The next sample's payload, lent to zio and held until room is needed
    /// (`None`: none arrived, or every held sample is still read by an
    /// output in flight).
    pub fn receive(&mut self) -> Result<Option<&[u8]>, iceoryx2::port::ReceiveError> {
        while self.held.len() >= self.bound {
            if !self.release_oldest() {
                return Ok(None);
            }
        }
        let Some(s) = self.sub.receive()? else {
            return Ok(None);
        };
        let p = s.payload();
        // SAFETY: the sample is held (and its memory unchanged by the
        // publisher) until `release_oldest` released it.
        if unsafe { self.bridge.register(p.as_ptr(), p.len()) } {
            self.stats.lent_bytes += p.len() as u64;
        }
        self.stats.samples += 1;
        self.stats.bytes += p.len() as u64;
        self.held.push_back(s);
        Ok(self.held.back().map(|s| s.payload()))
    }

    /// Releases the oldest held sample and drops it; false if an output in
    /// flight still reads it.
    fn release_oldest(&mut self) -> bool {
        let Some(s) = self.held.front() else {
            return false;
        };
        let p = s.payload();
        if self.bridge.release(p.as_ptr(), p.len(), RELEASE_WAIT) == Released::Hold {
            self.stats.holds += 1;
            return false;
        }
        self.held.pop_front();
        self.stats.releases += 1;
        true
    }

    /// Releases and drops every held sample; false if an output in flight
    /// still reads one (call it again).
    pub fn release_all(&mut self) -> bool {
        while !self.held.is_empty() {
            if !self.release_oldest() {
                return false;
            }
        }
        true
    }
}

impl Drop for ZioSubscriber {
    fn drop(&mut self) {
        while !self.release_all() {
            std::thread::yield_now();
        }
    }
}

/// Publishes `data`: a loaned sample of its length, filled by a gather from
/// where `data`'s bytes really are, sent. Returns how many subscribers it
/// reached (0: none was connected yet, and the sample is gone).
pub fn publish(
    publisher: &Publisher<ipc::Service, [u8], ()>,
    data: &[u8],
    bridge: &Bridge,
) -> Result<usize, Box<dyn std::error::Error>> {
    let mut s = publisher.loan_slice_uninit(data.len())?;
    let dst = s.payload_mut();
    {
        let r = bridge.resolve(data);
        let mut at = 0;
        for seg in r.segments() {
            // SAFETY: `dst` has `data.len()` elements and the segments add
            // up to that; the segments are readable and do not overlap the
            // loaned sample (it is fresh shared memory).
            unsafe {
                std::ptr::copy_nonoverlapping(
                    seg.as_ptr(),
                    dst.as_mut_ptr().add(at).cast::<u8>(),
                    seg.len(),
                )
            };
            at += seg.len();
        }
        assert_eq!(at, data.len(), "resolve covered the buffer");
    }
    // SAFETY: every element was written above.
    let s = unsafe { s.assume_init() };
    Ok(s.send()?)
}

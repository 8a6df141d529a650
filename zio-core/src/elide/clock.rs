//! The engine-time counters: how long the program's threads and zio's own
//! spend in the engine, measured with a cheap clock on a random sample of
//! the calls.

use crate::runtime::now_ns;
use crate::thread;

/// A cheap clock: the time-stamp counter on x86-64 (a few cycles, against
/// tens of ns for `clock_gettime` in a VM, paid twice per engine call),
/// converted to nanoseconds when the counters are read ([`ticks_to_ns`]);
/// nanoseconds elsewhere.
#[inline(always)]
pub(super) fn ticks() -> u64 {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: rdtsc has no preconditions.
    return unsafe { core::arch::x86_64::_rdtsc() };
    #[cfg(not(target_arch = "x86_64"))]
    return now_ns();
}

/// The start of an engine call, if this one is timed: one call in 8.5 on
/// average, chosen by a gap of 0–15 untimed calls drawn from a hash of the
/// clock. Reading the clock twice per call would cost more than the engine
/// itself on its cheapest paths; an untimed call costs a thread-local
/// decrement. The random gap keeps a program's repeating pattern of calls
/// (a message's read, copies and write) from being sampled always at the
/// same call.
#[inline(always)]
pub(super) fn clock_sample() -> Option<u64> {
    thread::with(|s| {
        let skip = s.clock_skip.get();
        if skip > 0 {
            s.clock_skip.set(skip - 1);
            return None;
        }
        let t = ticks();
        s.clock_skip
            .set((t.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 60) as u8);
        Some(t)
    })
}

/// Converts a sum of [`ticks`] to nanoseconds, by the rate measured since
/// `start` (ticks, ns).
fn ticks_to_ns(t: u64, start: (u64, u64)) -> u64 {
    if cfg!(not(target_arch = "x86_64")) {
        return t;
    }
    let (dt, dn) = (
        ticks().saturating_sub(start.0),
        now_ns().saturating_sub(start.1),
    );
    if dt == 0 {
        return 0;
    }
    (t as u128 * dn as u128 / dt as u128) as u64
}

/// Time spent in the engine, kept under its lock.
#[derive(Debug)]
pub(super) struct EngineTime {
    /// [`ticks`] spent by the program's threads in the calls
    /// [`clock_sample`] timed, how many calls that was, and how many there
    /// were in all.
    program_ticks: u64,
    /// Of `program_ticks`, those spent waiting for the engine's lock.
    wait_ticks: u64,
    program_timed: u64,
    program_calls: u64,
    /// [`ticks`] spent by zio's own threads (every call: they are rare).
    background_ticks: u64,
    /// (ticks, ns) when the engine started, to convert ticks.
    start: (u64, u64),
}

impl EngineTime {
    /// Nothing spent yet; the clock's rate is measured from now.
    pub(super) fn new() -> EngineTime {
        EngineTime {
            program_ticks: 0,
            wait_ticks: 0,
            program_timed: 0,
            program_calls: 0,
            background_ticks: 0,
            start: (ticks(), now_ns()),
        }
    }

    /// A program thread's engine call ends; `t0` is its [`clock_sample`],
    /// `locked` when it got the lock (both only if the call is timed).
    #[inline(always)]
    pub(super) fn program_call(&mut self, t0: Option<u64>, locked: Option<u64>) {
        self.program_calls += 1;
        if let Some(t0) = t0 {
            self.program_ticks += ticks() - t0;
            self.wait_ticks += locked.map_or(0, |l| l.saturating_sub(t0));
            self.program_timed += 1;
        }
    }

    /// One of zio's threads spent the engine call that started at `t0`.
    pub(super) fn background_call(&mut self, t0: u64) {
        self.background_ticks += ticks() - t0;
    }

    /// Engine calls of the program's threads.
    pub(super) fn program_calls(&self) -> u64 {
        self.program_calls
    }

    /// Nanoseconds of the program's threads: the timed calls stand for all.
    pub(super) fn program_ns(&self) -> u64 {
        self.scaled_ns(self.program_ticks)
    }

    /// As [`EngineTime::program_ns`], the part spent waiting for the lock.
    pub(super) fn lock_wait_ns(&self) -> u64 {
        self.scaled_ns(self.wait_ticks)
    }

    /// `ticks` of the timed program calls, scaled to all of them, in
    /// nanoseconds.
    fn scaled_ns(&self, ticks: u64) -> u64 {
        let all = (ticks as u128 * self.program_calls as u128)
            .checked_div(self.program_timed as u128)
            .unwrap_or(0);
        ticks_to_ns(all.min(u64::MAX as u128) as u64, self.start)
    }

    /// Nanoseconds of zio's own threads.
    pub(super) fn background_ns(&self) -> u64 {
        ticks_to_ns(self.background_ticks, self.start)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Engine calls are timed about one in 8.5, and a repeating pattern of
    /// 16 calls (a message's) has each of its calls timed about as often.
    #[test]
    fn clock_samples_every_call_of_a_pattern() {
        let mut timed = [0u32; 16];
        let calls = 16 * 20_000;
        for i in 0..calls {
            if clock_sample().is_some() {
                timed[i % 16] += 1;
            }
        }
        let all: u32 = timed.iter().sum();
        assert!(
            all > calls as u32 / 11 && all < calls as u32 / 7,
            "{all} of {calls} calls timed"
        );
        let mean = all / 16;
        for (k, &n) in timed.iter().enumerate() {
            assert!(
                n > mean * 2 / 3 && n < mean * 3 / 2,
                "call {k} of the pattern timed {n} times, mean {mean}: {timed:?}"
            );
        }
    }

    /// The engine-time counters: ticks spent over a known wall time convert
    /// back to that time (within what a shared VM's scheduling allows).
    #[test]
    fn ticks_convert_to_nanoseconds() {
        let start = (ticks(), now_ns());
        std::thread::sleep(std::time::Duration::from_millis(20));
        let (t0, n0) = (ticks(), now_ns());
        std::thread::sleep(std::time::Duration::from_millis(30));
        let (spent, wall) = (ticks() - t0, now_ns() - n0);
        let ns = ticks_to_ns(spent, start);
        assert!(
            ns > wall * 4 / 5 && ns < wall * 5 / 4,
            "{spent} ticks over {wall} ns read as {ns} ns"
        );
    }
}

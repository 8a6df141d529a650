//! Faults: a missing fault on an unmapped page rebuilds it (and, for a
//! program reading on, the pages after it: fault-around; once the copy's
//! round trips are spent, all of it), a missing fault without pieces gets
//! zeros or gives the memory back to the kernel, and a write-protect fault
//! releases the original written to. Touches the records, the fault
//! streams, the unfilled pages and the protection state.

use super::materialize::FILL_RUN;
use super::policy::FAULT_TRIP_CHARGE;
use super::{Busy, Cause, Engine, Mem};
use crate::ranges::{page_down, page_up, RangeSet, PAGE};

/// Most pages materialized together on a missing fault (1 MiB).
const FAULT_AROUND: usize = 256;

/// Most pages given zero pages together on a fault on a page that holds no
/// piece (1 MiB; the run stops earlier at a present page).
const ZERO_AROUND: usize = 256;

/// Fault runs remembered to recognise a program reading on from where the
/// last fault stopped (one per copy being read at once, roughly).
const STREAMS: usize = 8;

/// Growth of the fault-around window from one fault of a stream to the next.
const GROWTH: usize = 4;

/// Recent fault runs, to size the next fault's run like readahead: a fault
/// right after the pages the last one rebuilt is a program reading on, and
/// one right before them a program reading backwards (`b[::-1]`), so its
/// run is four times longer (1, 4, 16, 64, 256 pages), after the fault or
/// ending at it; a fault anywhere else rebuilds its page alone, so a
/// program touching a header here and there pays for one page per fault,
/// and so does the policy.
#[derive(Debug, Default)]
pub(super) struct Streams {
    /// (the page after the run, the page before it, the window it had),
    /// per stream.
    runs: [(usize, usize, usize); STREAMS],
    /// The slot the next fault run that continues none of them replaces.
    next: usize,
}

impl Streams {
    /// The stream a fault at `page` continues, if any, and the window
    /// (pages) its run may rebuild. `reading_on`: false if the page before
    /// was elided again since (the run is over).
    pub(super) fn window(&self, page: usize, reading_on: bool) -> (Option<usize>, usize) {
        let stream = self
            .runs
            .iter()
            .position(|&(next, _, _)| next == page)
            .filter(|_| reading_on);
        (stream, self.grown(stream))
    }

    /// As [`Streams::window`] for a program reading backwards: the stream
    /// whose run starts right after `page`, and the window its run may
    /// rebuild, ending at `page`. `reading_back`: false if the page after
    /// was elided again since.
    pub(super) fn window_back(&self, page: usize, reading_back: bool) -> (Option<usize>, usize) {
        let stream = self
            .runs
            .iter()
            .position(|&(next, before, _)| before == page && next > page + PAGE)
            .filter(|_| reading_back);
        (stream, self.grown(stream))
    }

    fn grown(&self, stream: Option<usize>) -> usize {
        stream.map_or(1, |i| (self.runs[i].2 * GROWTH).min(FAULT_AROUND))
    }

    /// The fault of `stream` (or a new one) rebuilt the `n` pages from
    /// `start` with `window`.
    pub(super) fn record(&mut self, stream: Option<usize>, start: usize, n: usize, window: usize) {
        let i = stream.unwrap_or_else(|| {
            self.next = (self.next + 1) % STREAMS;
            self.next
        });
        self.runs[i] = (start + n * PAGE, start.wrapping_sub(PAGE), window);
    }
}

impl<M: Mem> Engine<M> {
    /// The fault round trips a copy of `len` bytes may take one page run at
    /// a time ([`super::Cfg::pages_per_trip`]).
    pub(super) fn trips_for(&self, len: usize) -> u32 {
        let per_trip = self.cfg.pages_per_trip.max(1) * PAGE;
        u32::try_from(len / per_trip).unwrap_or(u32::MAX)
    }

    /// A missing fault at `addr` (the program or the kernel touched an
    /// unmapped page): rebuild it, or give it zeros if no piece covers it.
    pub fn on_missing_fault(&mut self, addr: usize) {
        let page = page_down(addr);
        let Some(&(k, p)) = self.t.pieces_over(page, page + PAGE).first() else {
            self.zero_fault(page);
            return;
        };
        if p.trips == 0 {
            self.fill_piece(k, p.len);
            return;
        }
        self.t.spend_trip(k);
        // A run whose last page was elided again since is over.
        let reading_on = page >= PAGE && !self.t.has_pieces_in(page - PAGE, page);
        let (mut stream, mut window) = self.streams.window(page, reading_on);
        let (start, pages) = if stream.is_some() {
            (page, window)
        } else {
            let reading_back = !self.t.has_pieces_in(page + PAGE, page + 2 * PAGE);
            (stream, window) = self.streams.window_back(page, reading_back);
            // A backward run ends at the fault, and goes down as far as the
            // window and the pieces do.
            let mut start = page;
            while (page - start) / PAGE + 1 < window
                && start >= PAGE
                && self.t.has_pieces_in(start - PAGE, start)
            {
                start -= PAGE;
            }
            (start, (page - start) / PAGE + 1)
        };
        let n = self.materialize_run(start, pages, Cause::Fault);
        self.streams.record(stream, start, n, window);
        self.paths.fault_arounds += u64::from(n > 1);
        self.counters.faults_missing += 1;
        self.sync_counts();
    }

    /// A fault on the piece at `k` (`len` bytes) whose round trips are
    /// spent: every page it covers is filled now, so however the program
    /// goes on reading it, it costs no more faults.
    fn fill_piece(&mut self, k: usize, len: usize) {
        let (mut page, end) = (page_down(k), page_up(k + len));
        while page < end {
            let run = ((end - page) / PAGE).min(FILL_RUN);
            let n = self.materialize_run(page, run, Cause::Fault);
            page += n.max(1) * PAGE;
        }
        self.paths.budget_fills += 1;
        self.counters.faults_missing += 1;
        self.sync_counts();
    }

    /// A missing fault on a page without pieces: memory whose content is
    /// zeros, as the kernel would give.
    ///
    /// Not a page a free left missing (unfilled): the allocator discarded
    /// memory zio had registered, behind zio's back (glibc trims its arenas
    /// with an internal `MADV_DONTNEED`), and every first touch of it would
    /// be a round trip to zio from now on. zio needs nothing there, so the
    /// stretch around the page that holds none of its records is handed
    /// back to the kernel (unregistered); eliding there again registers it
    /// again.
    ///
    /// Otherwise, or if that fails, the page gets a zero page, and so do
    /// the pages after it up to the first one that is present or holds a
    /// piece (at most `ZERO_AROUND`): a program reusing memory writes on.
    fn zero_fault(&mut self, page: usize) {
        self.counters.faults_zero += 1;
        if !self.unfilled.covers(page, page + PAGE) {
            let (a, b) = self.unneeded_around(page);
            if self.mem.release(page, a, b) {
                self.counters.ranges_released += 1;
                self.sync_counts();
                return;
            }
        }
        let mut end = page + ZERO_AROUND * PAGE;
        if let Some(&k) = self.t.pieces_in(page, end).first() {
            end = end.min(page_down(k));
        }
        self.mem.zero_run(page, end - page);
        // Memory a freed elided copy left, touched by its next user: the
        // copy that left it pays the zero pages and the round trip.
        let mut trip = FAULT_TRIP_CHARGE;
        for (slots, bytes) in self.unfilled.forget(page, end) {
            self.charge_refill(slots, bytes);
            self.policy.touched(slots, core::mem::take(&mut trip));
        }
        self.sync_counts();
    }

    /// The stretch around `page` (at most `ZERO_AROUND` pages either side)
    /// whose pages hold no piece, no original's bytes, no protection and
    /// no page left unfilled.
    fn unneeded_around(&self, page: usize) -> (usize, usize) {
        let (lo, hi) = (
            page.saturating_sub(ZERO_AROUND * PAGE),
            page + (ZERO_AROUND + 1) * PAGE,
        );
        let mut held = RangeSet::new();
        self.add_piece_pages(&mut held, lo, hi);
        for id in self.t.origs_in(lo, hi) {
            let o = self.t.orig(id);
            held.insert_pages(o.start, o.end());
        }
        for (s, e) in self
            .prot
            .wp
            .clipped(lo, hi)
            .into_iter()
            .chain(self.unfilled.clipped(lo, hi))
        {
            held.insert(s, e);
        }
        let around = held
            .gaps(lo, hi)
            .into_iter()
            .find(|&(s, e)| s <= page && page < e);
        around.unwrap_or((page, page + PAGE))
    }

    /// A write-protect fault at `addr` (a write to an original): materialize
    /// its dependents, then unprotect (which wakes the writer). Returns
    /// `Busy` if the original is pinned: the writer stays blocked until
    /// [`Engine::unpin`] lets it go.
    pub fn on_wp_fault(&mut self, addr: usize) -> Result<(), Busy> {
        self.counters.faults_wp += 1;
        let r = self.serve_write(page_down(addr));
        self.sync_counts();
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: usize = PAGE;

    /// A stream that reads on grows 1, 4, 16, 64, 256, 256 pages; a fault
    /// elsewhere starts at one page; one whose page before was elided
    /// again does not continue.
    #[test]
    fn windows_grow_while_reading_on() {
        let mut s = Streams::default();
        let mut page = 100 * P;
        let mut seen = Vec::new();
        for _ in 0..6 {
            let (stream, w) = s.window(page, true);
            seen.push(w);
            s.record(stream, page, w, w);
            page += w * P;
        }
        assert_eq!(seen, [1, 4, 16, 64, 256, 256]);
        assert_eq!(s.window(7 * P, true), (None, 1), "elsewhere");
        assert_eq!(s.window(page, false).1, 1, "run over");
        // A run cut short (fewer pages had pieces) continues from its end.
        let (stream, w) = s.window(page, true);
        s.record(stream, page, 3, w);
        assert_eq!(s.window(page + 3 * P, true).1, 256);
    }

    /// A stream read backwards grows as one read forwards: each fault just
    /// before the last run rebuilds 1, 4, 16, 64, 256, 256 pages ending
    /// at it.
    #[test]
    fn windows_grow_while_reading_backwards() {
        let mut s = Streams::default();
        let mut page = 2000 * P;
        let mut seen = Vec::new();
        for _ in 0..6 {
            let (fwd, _) = s.window(page, true);
            assert!(fwd.is_none() || seen.is_empty());
            let (stream, w) = s.window_back(page, true);
            seen.push(w);
            let start = page - (w - 1) * P;
            s.record(stream, start, w, w);
            page = start - P;
        }
        assert_eq!(seen, [1, 4, 16, 64, 256, 256]);
        assert_eq!(s.window_back(page, false).1, 1, "run over");
        assert_eq!(s.window_back(3 * P, true), (None, 1), "elsewhere");
    }

    /// Streams interleave: eight copies read at once each keep their run;
    /// a ninth replaces one of them.
    #[test]
    fn eight_streams_are_remembered() {
        let mut s = Streams::default();
        let base = |i: usize| (1000 + i * 1000) * P;
        for i in 0..STREAMS {
            let (stream, w) = s.window(base(i), true);
            s.record(stream, base(i), w, w);
        }
        for i in 0..STREAMS {
            assert_eq!(s.window(base(i) + P, true).1, GROWTH, "stream {i}");
        }
        let (stream, w) = s.window(base(99), true);
        s.record(stream, base(99), w, w);
        let kept = (0..STREAMS)
            .filter(|&i| s.window(base(i) + P, true).1 == GROWTH)
            .count();
        assert_eq!(kept, STREAMS - 1);
    }
}

//! The policy: per call site and per destination buffer, how much of what
//! was elided got touched, and whether eliding there still pays.

use super::{Engine, Mem};
use crate::ranges::{whole_pages, PAGE};
use crate::tracker::Slots;

/// The policy's call-site key for redirected input (no return address is
/// involved: all input buffers share it, and each is judged on its own).
pub(super) const INPUT_SITE: usize = usize::MAX;

/// Sites and buffers remembered (each table; a hash collision replaces the
/// older key).
const SLOTS: usize = 256;

/// Attempts skipped before the first probe of a site or buffer the policy
/// stopped; every probe that finds the data still touched doubles it.
const FIRST_PROBE: u64 = 64;

/// Largest gap between probes of a stopped site or buffer.
const MAX_PROBE: u64 = 1 << 20;

/// Elided bytes beyond which a slot's history is halved, so that old
/// behaviour weighs less than new.
const HALVE_AT: u64 = 1 << 30;

/// What the policy is charged for a fault's round trip, beyond the pages it
/// rebuilt, in touched bytes. A round trip to the handler thread costs
/// about as much as rebuilding a dozen pages; it is charged as four, so
/// that with the default ratio one fault per 512 KiB copy keeps elision
/// going and two stop it.
pub(super) const FAULT_TRIP_CHARGE: u64 = 4 * PAGE as u64;

/// Churn (see [`Usage::churn`]) beyond one in this many elided bytes stops
/// a site or buffer: a page discarded for an elided copy and given a fresh
/// zeroed page for its next use costs several times what copying it would.
const CHURN_SHARE: u64 = 8;

/// Elided bytes a slot must have before its churn is judged: a server's
/// first messages discard every page they elide into (nothing was left
/// missing yet), and that start must not stop it for good.
const CHURN_SAMPLE: u64 = 64 << 20;

/// Copies of IO data in a row that elided nothing (refused, or too small
/// to elide), after which new inputs are left unrecorded for a while
/// ([`Dormancy`]).
const DORMANT_AFTER: u32 = 64;

/// Inputs left unrecorded the first time; each later time in a row
/// (nothing allowed in between) doubles it, up to [`DORMANT_MAX`].
const DORMANT_FIRST: u32 = 64;

/// Most inputs left unrecorded at a time.
const DORMANT_MAX: u32 = 4096;

/// Whether recording new input is worth its cost. Each input at least the
/// threshold becomes an original that the engine indexes, protects or
/// redirects, and frees again: about a microsecond per message, paid so
/// that a copy of it can be elided. When no copy of IO data is elided (a
/// program that reads all it copies, so the policy refuses them, or whose
/// copies land in buffers with too few whole pages), nothing repays it,
/// so after [`DORMANT_AFTER`] such copies in a row the next inputs into
/// memory zio holds nothing in are left unrecorded: their copies, writes
/// and frees then never reach the engine. Then recording resumes, and
/// the policy's own probes judge again; a copy elided ends it.
#[derive(Clone, Copy, Debug)]
struct Dormancy {
    /// Copies of IO data not elided since the last one allowed.
    not_elided: u32,
    gap: u32,
    /// Inputs to leave unrecorded, not yet handed to the caller.
    due: u32,
}

impl Dormancy {
    fn new() -> Dormancy {
        Dormancy {
            not_elided: 0,
            gap: DORMANT_FIRST,
            due: 0,
        }
    }

    /// A copy of IO data was allowed to elide, or not.
    fn noted(&mut self, allowed: bool) {
        if allowed {
            *self = Dormancy::new();
            return;
        }
        self.not_elided += 1;
        if self.not_elided >= DORMANT_AFTER {
            self.not_elided = 0;
            self.due = self.gap;
            self.gap = (self.gap * 2).min(DORMANT_MAX);
        }
    }
}

#[derive(Clone, Copy, Debug, Default)]
struct Usage {
    key: usize,
    elided: u64,
    touched: u64,
    /// Bytes of freed elided copies given zero pages for another use:
    /// memory going back and forth between copies zio elides (discarding
    /// its pages) and uses it cannot (which need them back).
    churn: u64,
    skipped: u64,
    /// Skipped attempts before the next probe.
    next_probe: u64,
}

/// Per call site and per buffer: how much of what was elided got touched.
#[derive(Debug)]
pub(super) struct Policy {
    sites: Vec<Usage>,
    bufs: Vec<Usage>,
    dormancy: Dormancy,
}

impl Policy {
    /// Nothing known yet: every site and buffer may elide.
    pub(super) fn new() -> Policy {
        Policy {
            sites: vec![Usage::default(); SLOTS],
            bufs: vec![Usage::default(); SLOTS],
            dormancy: Dormancy::new(),
        }
    }

    /// Inputs to leave unrecorded from now on ([`Dormancy`]), 0 if none
    /// became due since the last call.
    pub(super) fn take_unrecorded(&mut self) -> u32 {
        core::mem::take(&mut self.dormancy.due)
    }

    /// The slot of `key`: one of the two its hash picks. A key in neither
    /// takes the one with less history, so that a site the policy stopped
    /// is not forgotten (and let through again) because another site
    /// happens to hash next to it.
    fn slot(table: &mut [Usage], key: usize) -> u16 {
        let h = (key.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 56) % SLOTS;
        let other = h ^ 1;
        if table[h].key == key {
            return h as u16;
        }
        if table[other].key == key {
            return other as u16;
        }
        let i = if table[other].elided < table[h].elided {
            other
        } else {
            h
        };
        table[i] = Usage {
            key,
            ..Usage::default()
        };
        i as u16
    }

    /// May `site` elide into `buf`? Once the touched share passes `ratio`
    /// (over at least `sample` elided bytes), no: a fault costs far more
    /// than the copy it replaced. Now and then an attempt is let through to
    /// notice when the program's behaviour changes: after 64 skipped
    /// attempts, then 128, 256, ... while the probes keep being touched, so
    /// a program that touches everything pays for fewer and fewer of them.
    pub(super) fn allows(
        &mut self,
        site: usize,
        buf: usize,
        ratio: f64,
        sample: u64,
    ) -> (bool, Slots) {
        let s = Slots {
            site: Self::slot(&mut self.sites, site),
            buf: Self::slot(&mut self.bufs, buf),
        };
        let mut ok = true;
        // Both are asked, so that both count the attempt.
        for u in [
            &mut self.sites[s.site as usize],
            &mut self.bufs[s.buf as usize],
        ] {
            if u.next_probe == 0 {
                u.next_probe = FIRST_PROBE;
            }
            // Faults are charged their round trip too, so touched bytes can
            // outgrow elided ones: 1, the largest ratio, means never stop.
            // (Nothing touched is the common case: no float conversions.)
            let touched =
                u.touched > 0 && u.elided >= sample && u.touched as f64 > ratio * u.elided as f64;
            let churned = u.elided >= CHURN_SAMPLE && u.churn * CHURN_SHARE > u.elided;
            if ratio < 1.0 && (touched || churned) {
                u.skipped += 1;
                if u.skipped >= u.next_probe {
                    u.skipped = 0;
                    u.next_probe = (u.next_probe * 2).min(MAX_PROBE);
                } else {
                    ok = false;
                }
            } else {
                u.next_probe = FIRST_PROBE;
            }
        }
        (ok, s)
    }

    /// `bytes` were elided for these slots.
    pub(super) fn elided(&mut self, s: Slots, bytes: u64) {
        for u in [
            &mut self.sites[s.site as usize],
            &mut self.bufs[s.buf as usize],
        ] {
            u.elided += bytes;
            if u.elided > HALVE_AT {
                u.elided /= 2;
                u.touched /= 2;
                u.churn /= 2;
            }
        }
    }

    /// The program touched `bytes` of what these slots elided (or paid that
    /// much for a fault).
    pub(super) fn touched(&mut self, s: Slots, bytes: u64) {
        self.sites[s.site as usize].touched += bytes;
        self.bufs[s.buf as usize].touched += bytes;
    }

    /// `bytes` these slots left missing went to another use (see
    /// [`Usage::churn`]).
    pub(super) fn churned(&mut self, s: Slots, bytes: u64) {
        self.sites[s.site as usize].churn += bytes;
        self.bufs[s.buf as usize].churn += bytes;
    }
}

/// What the policy says of an elision into a destination.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Verdict {
    /// The destination's whole pages are fewer than the threshold.
    TooSmall,
    /// The site or the buffer touches too much of what it gets.
    Refused,
    /// Elide, charging these slots.
    Elide(Slots),
}

impl<M: Mem> Engine<M> {
    /// What the policy says of eliding into `[d, d+n)` from `site` (a copy's
    /// call site, or [`INPUT_SITE`]).
    pub(super) fn policy_for(&mut self, d: usize, n: usize, site: usize) -> Verdict {
        let (c0, c1) = whole_pages(d, n);
        if c1 - c0 < self.cfg.threshold {
            self.policy.dormancy.noted(false);
            return Verdict::TooSmall;
        }
        let sample = 4 * self.cfg.threshold as u64;
        let (ok, slots) = self.policy.allows(site, c0, self.cfg.fault_ratio, sample);
        self.policy.dormancy.noted(ok);
        if ok {
            Verdict::Elide(slots)
        } else {
            Verdict::Refused
        }
    }

    /// A copy of IO data too small to elide was made for real.
    pub(super) fn copied_too_small(&mut self) {
        self.policy.dormancy.noted(false);
    }

    /// The hooks copied `[s, s+n)` for real without asking the engine, into
    /// a destination too small to elide before any copy armed it: counted
    /// as [`Engine::copied_too_small`] if its bytes are IO data.
    pub fn copied_unarmed(&mut self, s: usize, n: usize) {
        if self.t.has_origs_in(s, s + n) || self.t.has_pieces_in(s, s + n) {
            self.copied_too_small();
        }
    }

    /// How many of the next inputs the hooks may leave unrecorded where
    /// zio holds nothing ([`Dormancy`]): 0 unless no copy of IO data was
    /// elided for a while, and only once per such stretch.
    pub fn inputs_to_leave_unrecorded(&mut self) -> u32 {
        self.policy.take_unrecorded()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: u64 = 1000;

    /// A site that touches everything it gets is stopped once it has been
    /// sampled enough, then probed after 64, 128, 256 skipped attempts.
    #[test]
    fn a_touched_site_is_stopped_and_probed_ever_less_often() {
        let mut p = Policy::new();
        let (ok, s) = p.allows(7, 0x1000, 0.06, SAMPLE);
        assert!(ok, "nothing known: allowed");
        p.elided(s, SAMPLE);
        p.touched(s, SAMPLE);
        for gap in [64, 128, 256, 512] {
            for _ in 1..gap {
                assert!(!p.allows(7, 0x1000, 0.06, SAMPLE).0);
            }
            assert!(p.allows(7, 0x1000, 0.06, SAMPLE).0, "probe after {gap}");
        }
    }

    /// Too little elided to judge: allowed whatever was touched; a ratio of
    /// 1 never stops; touches under the ratio keep eliding.
    #[test]
    fn small_samples_ratio_one_and_light_touches_keep_eliding() {
        let mut p = Policy::new();
        let (_, s) = p.allows(1, 0x1000, 0.06, SAMPLE);
        p.elided(s, SAMPLE - 1);
        p.touched(s, SAMPLE);
        assert!(p.allows(1, 0x1000, 0.06, SAMPLE).0, "under the sample");
        p.elided(s, 1);
        assert!(!p.allows(1, 0x1000, 0.06, SAMPLE).0);
        assert!(p.allows(1, 0x1000, 1.0, SAMPLE).0, "ratio 1: never stop");

        let mut q = Policy::new();
        let (_, s) = q.allows(2, 0x2000, 0.06, SAMPLE);
        q.elided(s, 100 * SAMPLE);
        q.touched(s, 5 * SAMPLE);
        for _ in 0..1000 {
            assert!(q.allows(2, 0x2000, 0.06, SAMPLE).0, "5% < 6%");
        }
    }

    /// The site and the buffer are judged apart: a stopped buffer stops a
    /// good site, and another buffer of the same site still elides.
    #[test]
    fn site_and_buffer_are_judged_apart() {
        let mut p = Policy::new();
        let (_, s) = p.allows(3, 0x1000, 0.06, SAMPLE);
        p.elided(s, SAMPLE);
        p.touched(s, SAMPLE);
        // The site is now stopped too (it was charged): a fresh buffer of it
        // is refused, a fresh site into the touched buffer as well.
        assert!(!p.allows(3, 0x9000, 0.06, SAMPLE).0);
        assert!(!p.allows(4, 0x1000, 0.06, SAMPLE).0);
        assert!(p.allows(4, 0x9000, 0.06, SAMPLE).0);
    }

    /// After `DORMANT_AFTER` refusals in a row, `DORMANT_FIRST` inputs are
    /// left unrecorded, twice as many each time it happens again in a row,
    /// up to `DORMANT_MAX`; one allowed verdict starts over.
    #[test]
    fn refusing_everything_leaves_ever_more_inputs_unrecorded() {
        let mut p = Policy::new();
        let refuse = |p: &mut Policy, n: u32| {
            for _ in 0..n {
                p.dormancy.noted(false);
            }
            p.take_unrecorded()
        };
        assert_eq!(refuse(&mut p, DORMANT_AFTER - 1), 0);
        assert_eq!(refuse(&mut p, 1), DORMANT_FIRST);
        assert_eq!(p.take_unrecorded(), 0, "handed out once");
        let mut want = DORMANT_FIRST;
        for _ in 0..10 {
            want = (want * 2).min(DORMANT_MAX);
            assert_eq!(refuse(&mut p, DORMANT_AFTER), want);
        }
        assert_eq!(want, DORMANT_MAX);
        refuse(&mut p, DORMANT_AFTER / 2);
        p.dormancy.noted(true);
        assert_eq!(refuse(&mut p, DORMANT_AFTER - 1), 0, "allowed: starts over");
        assert_eq!(refuse(&mut p, 1), DORMANT_FIRST);
    }

    /// A slot's history halves past `HALVE_AT` elided bytes, keeping the
    /// ratio; keys hashing to the same pair of slots take the other one,
    /// then the one with less history, so a stopped site stays stopped.
    #[test]
    fn history_halves_and_slots_are_reclaimed() {
        let mut p = Policy::new();
        let (_, s) = p.allows(5, 0x1000, 0.06, SAMPLE);
        p.elided(s, HALVE_AT);
        p.touched(s, HALVE_AT / 10);
        p.elided(s, 2);
        let u = p.sites[s.site as usize];
        assert_eq!((u.elided, u.touched), ((HALVE_AT + 2) / 2, HALVE_AT / 20));
        assert!(!p.allows(5, 0x1000, 0.06, SAMPLE).0);
        let pair = |k: usize| Policy::slot(&mut Policy::new().sites, k) & !1;
        let mut same = (6..).filter(|&k| pair(k) == s.site & !1);
        let (b, c) = (same.next().unwrap(), same.next().unwrap());
        let sb = Policy::slot(&mut p.sites, b);
        assert_eq!(sb, s.site ^ 1, "the pair's other slot");
        p.sites[sb as usize].elided = 1;
        assert_eq!(Policy::slot(&mut p.sites, c), sb, "less history gives way");
        assert_eq!(p.sites[sb as usize].elided, 0);
        assert!(!p.allows(5, 0x1000, 0.06, SAMPLE).0, "still stopped");
    }
}

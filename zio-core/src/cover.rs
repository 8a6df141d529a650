//! The lock-free cover of what the engine tracks: a few byte ranges that
//! may hold originals or pieces and a few page ranges that may be
//! write-protected or left unfilled, written under the engine's lock and
//! read without it. A copy, free or output whose memory the cover leaves
//! clear is one the engine would answer with "nothing to do" once it had
//! its lock, so the hook leaves it to libc without taking the lock.
//!
//! A cover of more ranges than [`CAP`] holds none of them and answers
//! "maybe" everywhere: the cover pays where little is tracked (messages
//! too small to elide, where the engine only records each input), not
//! where everything is.
//!
//! It is a seqlock. The writer (whoever holds the engine's lock, so one at
//! a time) makes the sequence odd, writes, and makes it even; a reader
//! that sees it odd, or changed after reading, answers "maybe". The
//! `zio-loom` crate compiles this file with `cfg(zio_loom)`, on loom's
//! atomics.

use core::sync::atomic::Ordering;

#[cfg(not(zio_loom))]
use core::sync::atomic::{fence, AtomicUsize};
#[cfg(zio_loom)]
use loom::sync::atomic::{fence, AtomicUsize};

/// Ranges of each kind a cover holds.
#[cfg(not(zio_loom))]
pub const CAP: usize = 8;
/// Ranges of each kind a cover holds (few, for loom's sake).
#[cfg(zio_loom)]
pub const CAP: usize = 2;

/// `Ranges::n` of a set of more than [`CAP`] ranges.
const TOO_MANY: usize = usize::MAX;

/// At most [`CAP`] ranges `[a, b)`, or "too many" (which intersects
/// everything).
#[derive(Clone, Copy, Debug)]
pub struct Ranges {
    n: usize,
    r: [(usize, usize); CAP],
}

impl Default for Ranges {
    fn default() -> Ranges {
        Ranges {
            n: 0,
            r: [(0, 0); CAP],
        }
    }
}

impl PartialEq for Ranges {
    fn eq(&self, o: &Ranges) -> bool {
        self.n == o.n && (self.n == TOO_MANY || self.r[..self.n] == o.r[..o.n])
    }
}

impl Eq for Ranges {}

impl Ranges {
    /// A set that intersects every range.
    pub fn too_many() -> Ranges {
        Ranges {
            n: TOO_MANY,
            ..Ranges::default()
        }
    }

    /// Adds `[a, b)` (nothing if empty); past [`CAP`] ranges the set
    /// becomes "too many".
    pub fn add(&mut self, a: usize, b: usize) {
        if a >= b || self.n == TOO_MANY {
            return;
        }
        if self.n == CAP {
            self.n = TOO_MANY;
            return;
        }
        self.r[self.n] = (a, b);
        self.n += 1;
    }

    /// True if some range shares a byte with `[a, b)` (always, for "too
    /// many"; never, for an empty `[a, b)`).
    pub fn intersects(&self, a: usize, b: usize) -> bool {
        a < b && (self.n == TOO_MANY || self.r[..self.n].iter().any(|&(x, y)| x < b && a < y))
    }
}

/// What the engine tracks, as the cover holds it: `bytes` covers every
/// original and piece, `pages` every write-protected and unfilled page.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Shape {
    /// Byte ranges of originals and pieces.
    pub bytes: Ranges,
    /// Page ranges protected or left unfilled.
    pub pages: Ranges,
}

impl Shape {
    /// The shape of these byte and page ranges.
    pub fn of(bytes: &[(usize, usize)], pages: &[(usize, usize)]) -> Shape {
        let mut s = Shape::default();
        for &(a, b) in bytes {
            s.bytes.add(a, b);
        }
        for &(a, b) in pages {
            s.pages.add(a, b);
        }
        s
    }

    /// A shape that leaves nothing clear.
    pub fn everything() -> Shape {
        Shape {
            bytes: Ranges::too_many(),
            pages: Ranges::too_many(),
        }
    }

    /// True if `bytes` shares no byte with an original or piece and
    /// `pages` none with a protected or unfilled page.
    pub fn clear(&self, bytes: (usize, usize), pages: (usize, usize)) -> bool {
        !self.bytes.intersects(bytes.0, bytes.1) && !self.pages.intersects(pages.0, pages.1)
    }
}

/// Slots of one kind: `n`, then `CAP` pairs.
const SLOTS: usize = 1 + 2 * CAP;

/// A [`Shape`] published for readers on other threads.
pub struct Cover {
    seq: AtomicUsize,
    /// The bytes' slots, then the pages'.
    slots: [[AtomicUsize; SLOTS]; 2],
}

impl Cover {
    /// A cover that leaves nothing clear (until the first publish).
    #[cfg(not(zio_loom))]
    pub const fn new() -> Cover {
        const fn kind() -> [AtomicUsize; SLOTS] {
            let mut s = [const { AtomicUsize::new(0) }; SLOTS];
            s[0] = AtomicUsize::new(TOO_MANY);
            s
        }
        Cover {
            seq: AtomicUsize::new(0),
            slots: [kind(), kind()],
        }
    }

    /// A cover that leaves nothing clear (until the first publish).
    #[cfg(zio_loom)]
    pub fn new() -> Cover {
        let kind = || core::array::from_fn(|i| AtomicUsize::new(if i == 0 { TOO_MANY } else { 0 }));
        Cover {
            seq: AtomicUsize::new(0),
            slots: [kind(), kind()],
        }
    }

    /// True if, as last published, `bytes` shares no byte with an original
    /// or piece and `pages` none with a protected or unfilled page. False
    /// also while a publish is under way.
    pub fn clear(&self, bytes: (usize, usize), pages: (usize, usize)) -> bool {
        let s0 = self.seq.load(Ordering::Acquire);
        if s0 & 1 != 0 {
            return false;
        }
        let clear = self.clear_of(0, bytes) && self.clear_of(1, pages);
        fence(Ordering::Acquire);
        clear && self.seq.load(Ordering::Relaxed) == s0
    }

    /// True if no range of kind `k` shares a byte with `[a, b)`; false for
    /// "too many" (or a count torn by a publish, which [`Cover::clear`]
    /// then rejects).
    fn clear_of(&self, k: usize, (a, b): (usize, usize)) -> bool {
        let s = &self.slots[k];
        let n = s[0].load(Ordering::Relaxed);
        if a >= b {
            return true;
        }
        if n > CAP {
            return false;
        }
        (0..n).all(|i| {
            let x = s[1 + 2 * i].load(Ordering::Relaxed);
            let y = s[2 + 2 * i].load(Ordering::Relaxed);
            !(x < b && a < y)
        })
    }

    /// Publishes `shape`. Callers are serialized (the engine's lock); a
    /// shape equal to the one published costs only the comparison.
    pub fn publish(&self, shape: &Shape) {
        if self.published() == *shape {
            return;
        }
        let s0 = self.seq.load(Ordering::Relaxed);
        self.seq.store(s0.wrapping_add(1), Ordering::Relaxed);
        fence(Ordering::Release);
        for (s, r) in self.slots.iter().zip([&shape.bytes, &shape.pages]) {
            s[0].store(r.n, Ordering::Relaxed);
            if r.n <= CAP {
                for (i, &(a, b)) in r.r[..r.n].iter().enumerate() {
                    s[1 + 2 * i].store(a, Ordering::Relaxed);
                    s[2 + 2 * i].store(b, Ordering::Relaxed);
                }
            }
        }
        self.seq.store(s0.wrapping_add(2), Ordering::Release);
    }

    /// The shape published last (read by the writer only, whose writes
    /// are ordered before it by the engine's lock).
    fn published(&self) -> Shape {
        let read = |s: &[AtomicUsize; SLOTS]| {
            let mut r = Ranges {
                n: s[0].load(Ordering::Relaxed),
                ..Ranges::default()
            };
            if r.n <= CAP {
                for i in 0..r.n {
                    r.r[i] = (
                        s[1 + 2 * i].load(Ordering::Relaxed),
                        s[2 + 2 * i].load(Ordering::Relaxed),
                    );
                }
            }
            r
        };
        Shape {
            bytes: read(&self.slots[0]),
            pages: read(&self.slots[1]),
        }
    }

    /// In a fork child: leaves nothing clear, whatever a thread of the
    /// parent was publishing at the moment of the fork.
    pub fn reset(&self) {
        self.seq.store(0, Ordering::Relaxed);
        for s in &self.slots {
            s[0].store(TOO_MANY, Ordering::Relaxed);
        }
    }
}

impl Default for Cover {
    fn default() -> Cover {
        Cover::new()
    }
}

#[cfg(all(test, not(zio_loom)))]
mod tests {
    use super::*;

    fn shape(bytes: &[(usize, usize)], pages: &[(usize, usize)]) -> Shape {
        Shape::of(bytes, pages)
    }

    #[test]
    fn a_new_cover_leaves_nothing_clear() {
        let c = Cover::new();
        assert!(!c.clear((0, 1), (0, 0)));
        assert!(!c.clear((0, 0), (0, 1)));
    }

    #[test]
    fn clear_means_no_shared_byte_of_either_kind() {
        let c = Cover::new();
        let s = shape(&[(100, 200)], &[(4096, 8192)]);
        c.publish(&s);
        for a in 0..300 {
            for b in a..300 {
                let want = !(a < 200 && 100 < b && a < b);
                assert_eq!(c.clear((a, b), (0, 0)), want, "{a}..{b}");
                assert_eq!(s.clear((a, b), (0, 0)), want, "{a}..{b}");
            }
        }
        assert!(c.clear((0, 100), (0, 4096)));
        assert!(!c.clear((0, 100), (4095, 4097)));
        assert!(c.clear((0, 100), (8192, 12288)));
    }

    #[test]
    fn past_its_capacity_a_cover_clears_nothing() {
        let c = Cover::new();
        let ranges: Vec<(usize, usize)> = (0..=CAP).map(|i| (i * 10, i * 10 + 1)).collect();
        c.publish(&shape(&ranges[..CAP], &[]));
        assert!(c.clear((5, 6), (0, 0)));
        c.publish(&shape(&ranges, &[]));
        assert!(!c.clear((5, 6), (0, 0)));
        assert!(!c.clear((1 << 40, (1 << 40) + 1), (0, 0)));
        assert_eq!(
            c.published(),
            Shape::everything().with_pages(Ranges::default())
        );
    }

    #[test]
    fn republishing_follows_the_latest_shape() {
        let c = Cover::new();
        c.publish(&shape(&[(0, 10)], &[]));
        let seq = c.seq.load(Ordering::Relaxed);
        c.publish(&shape(&[(0, 10)], &[]));
        assert_eq!(
            c.seq.load(Ordering::Relaxed),
            seq,
            "an equal shape is not written"
        );
        c.publish(&shape(&[(20, 30)], &[]));
        assert!(c.clear((0, 10), (0, 0)));
        assert!(!c.clear((25, 26), (0, 0)));
        c.reset();
        assert!(!c.clear((0, 10), (0, 0)));
    }

    impl Shape {
        fn with_pages(mut self, pages: Ranges) -> Shape {
            self.pages = pages;
            self
        }
    }
}

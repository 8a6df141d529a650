//! Page arithmetic and a set of disjoint address ranges. Pure: no syscalls.

use std::collections::BTreeMap;

use smallvec::SmallVec;

/// The page size zio works in.
pub const PAGE: usize = 4096;

/// Start of the page holding `a`.
#[inline]
pub fn page_down(a: usize) -> usize {
    a & !(PAGE - 1)
}

/// `a` rounded up to a page boundary.
#[inline]
pub fn page_up(a: usize) -> usize {
    (a + PAGE - 1) & !(PAGE - 1)
}

/// The core of `[a, a+n)`: the whole pages inside it, as `[c0, c1)`; empty
/// (`c0 == c1`) when the range holds no whole page.
#[inline]
pub fn whole_pages(a: usize, n: usize) -> (usize, usize) {
    let c0 = page_up(a);
    let c1 = page_down(a + n);
    if c1 > c0 {
        (c0, c1)
    } else {
        (c0, c0)
    }
}

/// True if `[a0, a1)` and `[b0, b1)` share at least one byte.
#[inline]
pub fn overlaps(a0: usize, a1: usize, b0: usize, b1: usize) -> bool {
    a0 < b1 && b0 < a1
}

/// Disjoint, coalesced ranges `[start, end)`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RangeSet {
    map: BTreeMap<usize, usize>,
}

impl RangeSet {
    /// An empty set.
    pub fn new() -> RangeSet {
        RangeSet::default()
    }

    /// Adds `[a, b)`, merging with touching or overlapping ranges.
    pub fn insert(&mut self, mut a: usize, mut b: usize) {
        if a >= b {
            return;
        }
        if let Some((&s, &e)) = self.map.range(..=a).next_back() {
            if e >= a {
                a = s;
                b = b.max(e);
            }
        }
        let absorbed: SmallVec<[(usize, usize); 4]> =
            self.map.range(a..=b).map(|(&s, &e)| (s, e)).collect();
        for (s, e) in absorbed {
            self.map.remove(&s);
            b = b.max(e);
        }
        self.map.insert(a, b);
    }

    /// Removes `[a, b)` (splitting ranges that stick out on either side).
    pub fn remove(&mut self, a: usize, b: usize) {
        if a >= b {
            return;
        }
        for (s, e) in self.overlapping(a, b).collect::<SmallVec<[_; 4]>>() {
            self.map.remove(&s);
            if s < a {
                self.map.insert(s, a);
            }
            if e > b {
                self.map.insert(b, e);
            }
        }
    }

    /// The ranges sharing a byte with `[a, b)`, unclipped.
    pub fn overlapping(&self, a: usize, b: usize) -> impl Iterator<Item = (usize, usize)> + '_ {
        let first = self
            .map
            .range(..a)
            .next_back()
            .filter(|(_, &e)| e > a)
            .map(|(&s, &e)| (s, e));
        first
            .into_iter()
            .chain(self.map.range(a..b.max(a)).map(|(&s, &e)| (s, e)))
    }

    /// The parts of `[a, b)` inside the set, clipped to `[a, b)`.
    pub fn clipped(&self, a: usize, b: usize) -> SmallVec<[(usize, usize); 4]> {
        self.overlapping(a, b)
            .map(|(s, e)| (s.max(a), e.min(b)))
            .collect()
    }

    /// Adds the pages holding any byte of `[a, b)`.
    pub fn insert_pages(&mut self, a: usize, b: usize) {
        self.insert(page_down(a), page_up(b));
    }

    /// The parts of `[a, b)` not in the set, in order.
    pub fn gaps(&self, a: usize, b: usize) -> SmallVec<[(usize, usize); 4]> {
        let mut v = SmallVec::new();
        let mut pos = a;
        for (s, e) in self.clipped(a, b) {
            if s > pos {
                v.push((pos, s));
            }
            pos = e;
        }
        if pos < b {
            v.push((pos, b));
        }
        v
    }

    /// True if any byte of `[a, b)` is in the set.
    pub fn intersects(&self, a: usize, b: usize) -> bool {
        // The ranges are disjoint: only the last one starting before `b` can
        // reach into `[a, b)`. One descent (asked on every input and output
        // of a tracked buffer, usually of an empty set).
        a < b && self.map.range(..b).next_back().is_some_and(|(_, &e)| e > a)
    }

    /// True if every byte of `[a, b)` is in the set.
    pub fn covers(&self, a: usize, b: usize) -> bool {
        a >= b
            || self
                .map
                .range(..=a)
                .next_back()
                .is_some_and(|(_, &e)| e >= b)
    }

    /// Total bytes in the set.
    pub fn total(&self) -> usize {
        self.map.iter().map(|(s, e)| e - s).sum()
    }

    /// Number of disjoint ranges.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// True if empty.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// All ranges in order.
    pub fn iter(&self) -> impl Iterator<Item = (usize, usize)> + '_ {
        self.map.iter().map(|(&s, &e)| (s, e))
    }

    /// Empties the set.
    pub fn clear(&mut self) {
        self.map.clear();
    }
}

/// Disjoint, coalesced ranges found in address order (the pages a walk
/// over pieces dropped): a few inline entries instead of a tree, because
/// the common result is one run and building a [`RangeSet`] for it
/// allocated on every input and copy.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OrderedRuns(SmallVec<[(usize, usize); 4]>);

impl OrderedRuns {
    /// No ranges.
    pub fn new() -> OrderedRuns {
        OrderedRuns::default()
    }

    /// Appends `[a, b)`, which must not start before the end of the last
    /// range; touching ranges merge.
    pub fn push(&mut self, a: usize, b: usize) {
        if a >= b {
            return;
        }
        match self.0.last_mut() {
            Some(last) if last.1 == a => last.1 = b,
            last => {
                debug_assert!(last.is_none_or(|l| l.1 < a), "out of order");
                self.0.push((a, b));
            }
        }
    }

    /// True if every byte of `[a, b)` is in one of the ranges.
    pub fn covers(&self, a: usize, b: usize) -> bool {
        a >= b || self.0.iter().any(|&(s, e)| s <= a && b <= e)
    }

    /// The ranges, in address order.
    pub fn iter(&self) -> impl Iterator<Item = (usize, usize)> + '_ {
        self.0.iter().copied()
    }

    /// Total bytes.
    pub fn total(&self) -> usize {
        self.0.iter().map(|(s, e)| e - s).sum()
    }

    /// The ranges minus the sorted, disjoint `keep` ranges, in order.
    pub fn minus(&self, keep: &[(usize, usize)]) -> SmallVec<[(usize, usize); 4]> {
        let mut out = SmallVec::new();
        for &(s, e) in &self.0 {
            let mut pos = s;
            for &(ka, kb) in keep {
                if kb <= pos || ka >= e {
                    continue;
                }
                if ka > pos {
                    out.push((pos, ka));
                }
                pos = pos.max(kb);
            }
            if pos < e {
                out.push((pos, e));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn page_math() {
        assert_eq!(page_down(4097), 4096);
        assert_eq!(page_up(4097), 8192);
        assert_eq!(page_up(8192), 8192);
        assert_eq!(whole_pages(100, 20000), (4096, 16384));
        assert_eq!(whole_pages(4096, 4096), (4096, 8192));
        assert_eq!(whole_pages(100, 5000), (4096, 4096));
        assert_eq!(whole_pages(5000, 10), (8192, 8192));
    }

    proptest! {
        /// The set agrees with a plain bitmap over random inserts/removes.
        #[test]
        fn rangeset_matches_bitmap(ops in prop::collection::vec((any::<bool>(), 0usize..200, 0usize..40), 1..60)) {
            let mut set = RangeSet::new();
            let mut bits = [false; 256];
            for (ins, a, len) in ops {
                let b = a + len;
                if ins { set.insert(a, b) } else { set.remove(a, b) }
                for x in bits.iter_mut().take(b).skip(a) { *x = ins; }
                // Disjoint and coalesced.
                let v: Vec<_> = set.iter().collect();
                for w in v.windows(2) { prop_assert!(w[0].1 < w[1].0); }
                for (i, &bit) in bits.iter().enumerate() {
                    prop_assert_eq!(set.covers(i, i + 1), bit);
                }
                prop_assert_eq!(set.total(), bits.iter().filter(|&&x| x).count());
                let q = (a / 2, a / 2 + 30);
                let want = bits[q.0..q.1].iter().any(|&x| x);
                prop_assert_eq!(set.intersects(q.0, q.1), want);
                let clipped: usize = set.clipped(q.0, q.1).iter().map(|(s, e)| e - s).sum();
                prop_assert_eq!(clipped, bits[q.0..q.1].iter().filter(|&&x| x).count());
                let mut in_gaps = [false; 256];
                for (s, e) in set.gaps(q.0, q.1) {
                    prop_assert!(q.0 <= s && s < e && e <= q.1);
                    for x in in_gaps.iter_mut().take(e).skip(s) { *x = true; }
                }
                for i in q.0..q.1 {
                    prop_assert_eq!(in_gaps[i], !bits[i]);
                }
            }
        }

        /// Runs pushed in order agree with a bitmap, and so does what is
        /// left of them after removing sorted ranges.
        #[test]
        fn ordered_runs_match_bitmap(
            steps in prop::collection::vec((0usize..6, 0usize..12), 1..12),
            keep in prop::collection::vec((0usize..10, 0usize..12), 0..5),
            q in (0usize..200, 0usize..30),
        ) {
            let mut runs = OrderedRuns::new();
            let mut bits = [false; 256];
            let mut pos = 0;
            for (gap, len) in steps {
                let a = pos + gap;
                runs.push(a, a + len);
                for x in bits.iter_mut().take(a + len).skip(a) { *x = true; }
                pos = a + len;
            }
            for w in runs.0.windows(2) { prop_assert!(w[0].1 < w[1].0); }
            prop_assert_eq!(runs.total(), bits.iter().filter(|&&x| x).count());
            let (qa, qb) = (q.0, q.0 + q.1);
            prop_assert_eq!(runs.covers(qa, qb), bits[qa..qb].iter().all(|&x| x));
            let mut kept = Vec::new();
            let mut kpos = 0;
            for (gap, len) in keep {
                kept.push((kpos + gap, kpos + gap + len));
                kpos += gap + len + 1;
            }
            let mut left = bits;
            for &(a, b) in &kept {
                for x in left.iter_mut().take(b).skip(a) { *x = false; }
            }
            let mut want = [false; 256];
            for (a, b) in runs.minus(&kept) {
                prop_assert!(a < b);
                for x in want.iter_mut().take(b).skip(a) { *x = true; }
            }
            prop_assert_eq!(want, left);
        }
    }
}

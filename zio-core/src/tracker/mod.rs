//! The record index: what is elided and where its bytes really are.
//!
//! Two kinds of record, both pure data (no syscalls):
//!
//! - A **piece** says "the bytes `[dst, dst+len)` are not in memory; they are
//!   the bytes at `[src, src+len)` of original `orig`". Pieces are keyed by
//!   `dst` and never overlap. Every byte of an unmapped (elided) page belongs
//!   to exactly one piece, so a page can always be rebuilt from its pieces.
//! - An **original** is memory that received IO data. Pieces only ever point
//!   into originals (a copy of an intermediate points at the same original),
//!   and each original keeps the keys of the pieces that depend on it, so
//!   "which intermediates depend on original page p" costs O(log n + k).
//!
//! Lookups by address are `BTreeMap` range queries: O(log n).

use std::collections::BTreeMap;

use smallvec::{smallvec, SmallVec};

use crate::ranges::overlaps;

/// Stable identifier of an original (its slot in the table).
pub type OrigId = u32;

/// An original's dependents. Inline up to 16: a reused buffer chain makes
/// an original per message, and a message copied 12 times (with its input
/// buffer, 13 dependents) would otherwise take a heap block per message.
pub type Deps = SmallVec<[usize; 16]>;

/// Elided bytes and where they live.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Piece {
    /// Length in bytes.
    pub len: usize,
    /// Address of the first byte in the original.
    pub src: usize,
    /// The original holding the bytes.
    pub orig: OrigId,
    /// When the copy was made (engine clock), for LRU collection.
    pub stamp: u64,
    /// The policy slots this piece's touches are charged to.
    pub slots: Slots,
    /// Fault round trips the copy's pages may still take one page run at a
    /// time; a fault on a piece with none left fills the whole piece. The
    /// parts a cut leaves share what the piece had, so a copy never gets
    /// more trips than it started with (`Cfg::pages_per_trip`).
    pub trips: u32,
}

/// `trips` shared between two parts of `l` and `r` bytes in proportion:
/// together never more than `trips`.
fn share(trips: u32, l: usize, r: usize) -> (u32, u32) {
    if l + r == 0 {
        return (0, 0);
    }
    let left = (u128::from(trips) * l as u128 / (l + r) as u128) as u32;
    (left, trips - left)
}

#[cfg(test)]
impl Piece {
    /// A piece of `len` bytes read from `src` of `orig`, stamped 0 and
    /// charged to the first policy slots (tests).
    pub(crate) fn of(len: usize, src: usize, orig: OrigId) -> Piece {
        Piece {
            len,
            src,
            orig,
            stamp: 0,
            slots: Slots::default(),
            trips: 0,
        }
    }
}

/// The policy's slots of a copy's call site and of its destination buffer,
/// kept in each piece so that a touch of the piece is charged to both.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Slots {
    /// The call site's slot.
    pub site: u16,
    /// The destination buffer's slot.
    pub buf: u16,
}

/// Memory that received IO data.
#[derive(Clone, Debug, Default)]
pub struct Original {
    /// First byte.
    pub start: usize,
    /// Length in bytes.
    pub len: usize,
    /// Keys (`dst`) of the pieces whose bytes live here, unordered. Usually
    /// a handful (one per copy of this data), so a vector beats a tree.
    pub deps: Deps,
    /// Output calls and real copies in flight reading this original.
    pub pins: u32,
    /// The allocation this original is in, if the program freed it while it
    /// still had dependents (quarantined: its real `free` is deferred).
    pub quarantined: Option<usize>,
    /// Last input (engine clock).
    pub stamp: u64,
    /// A copy zio made of an original's bytes before the program changed
    /// them (in memory zio owns; never write-protected, released when its
    /// last dependent goes).
    pub backup: bool,
    /// For zio's memory holding a redirected input: one past the last byte
    /// the message's first input call asked for. A later part ending by
    /// here is the rest of that message (0: none).
    pub asked_end: usize,
    /// A copy of these bytes was elided at some point (the buffer is one
    /// a program copies out of, even once its copies are gone). Set by the
    /// engine's copies: the piece a redirected input leaves in the
    /// program's buffer, or a backup's, is no copy of it.
    pub copied: bool,
    /// For zio's memory holding a redirected input: the whole pages of the
    /// program's buffer, inside what the message's first call asked for,
    /// that call found still registered where a free left them missing.
    /// The buffer is the program's while it reads the message, so the
    /// message's later parts need not ask again.
    pub verified: (usize, usize),
    /// For zio's memory holding a redirected input: the policy slots the
    /// redirect was charged to.
    pub slots: Slots,
    /// Memory an IO stack lent zio through the bridge contract
    /// ([`crate::engine::Engine::lend`]): never write-protected, the stack
    /// promises to release it before changing it, and the record stays
    /// until then even when nothing depends on it.
    pub lent: bool,
}

impl Original {
    /// One past the last byte.
    pub fn end(&self) -> usize {
        self.start + self.len
    }
    /// True if something still needs its bytes unchanged.
    pub fn busy(&self) -> bool {
        !self.deps.is_empty() || self.pins > 0
    }
    /// True if its bytes change only after zio is told, so copies may read
    /// them without write protection: a backup only zio writes, or memory
    /// an IO stack lent until it releases it.
    pub fn unguarded(&self) -> bool {
        self.backup || self.lent
    }
}

/// All records.
#[derive(Debug, Default)]
pub struct Tracker {
    pieces: BTreeMap<usize, Piece>,
    origs: Vec<Option<Original>>,
    free_ids: Vec<OrigId>,
    by_start: BTreeMap<usize, OrigId>,
    piece_bytes: usize,
    /// The piece written last, as in `pieces`: the source of the next copy
    /// in a chain (each copy's source is the previous copy's destination),
    /// found without a tree search. Every change to `pieces` keeps it equal
    /// to its entry there or clears it.
    last: Option<(usize, Piece)>,
}

impl Tracker {
    /// An empty index.
    pub fn new() -> Tracker {
        Tracker::default()
    }

    /// Number of pieces.
    pub fn piece_count(&self) -> usize {
        self.pieces.len()
    }

    /// Bytes covered by pieces.
    pub fn piece_bytes(&self) -> usize {
        self.piece_bytes
    }

    /// Number of originals.
    pub fn orig_count(&self) -> usize {
        self.by_start.len()
    }

    /// True if nothing is tracked (the fast "nothing to do" check).
    pub fn is_empty(&self) -> bool {
        self.pieces.is_empty() && self.by_start.is_empty()
    }

    /// The piece with key `k`.
    pub fn piece(&self, k: usize) -> Option<&Piece> {
        match &self.last {
            Some((lk, p)) if *lk == k => Some(p),
            _ => self.pieces.get(&k),
        }
    }

    /// All pieces, in address order.
    pub fn pieces(&self) -> impl Iterator<Item = (usize, &Piece)> {
        self.pieces.iter().map(|(&k, p)| (k, p))
    }

    /// The piece holding byte `addr`, if any (no allocation: the fault
    /// handler's and the output path's lookup).
    pub fn piece_at(&self, addr: usize) -> Option<(usize, &Piece)> {
        // Most often `addr` starts a piece (the source of a chained copy is
        // the previous copy's destination, often the piece written last):
        // one exact lookup, cheaper than the range search.
        if let Some(p) = self.piece(addr) {
            return Some((addr, p));
        }
        self.pieces
            .range(..=addr)
            .next_back()
            .filter(|(&k, p)| k + p.len > addr)
            .map(|(&k, p)| (k, p))
    }

    /// The first piece sharing a byte with `[a, b)`, as `(key, piece)`.
    pub fn first_piece_over(&self, a: usize, b: usize) -> Option<(usize, Piece)> {
        if a >= b {
            return None;
        }
        self.piece_at(a)
            .or_else(|| self.pieces.range(a..b).next().map(|(&k, p)| (k, p)))
            .map(|(k, p)| (k, *p))
    }

    /// The pieces sharing a byte with `[a, b)`, last first: one tree
    /// descent, walking down from `b` (pieces do not overlap, so the walk
    /// ends at the first one starting before `a`).
    fn over_rev(&self, a: usize, b: usize) -> impl Iterator<Item = (usize, &Piece)> {
        let mut done = false;
        self.pieces
            .range(..b.max(a))
            .rev()
            .map_while(move |(&k, p)| {
                if done {
                    return None;
                }
                done = k < a;
                Some((k, p))
            })
            .filter(move |&(k, p)| k + p.len > a)
    }

    /// The pieces sharing a byte with `[a, b)`, in address order, as
    /// `(key, piece)` (no lookup per piece).
    pub fn pieces_over(&self, a: usize, b: usize) -> SmallVec<[(usize, Piece); 4]> {
        // A server writes out the copy it made last: the piece written last
        // covers the whole range and, pieces being disjoint, is the only one
        // there (a third of an output's cost was the tree walk).
        if let Some((k, p)) = self.last {
            if k <= a && b <= k + p.len && a < b {
                return smallvec![(k, p)];
            }
        }
        let mut v: SmallVec<[(usize, Piece); 4]> =
            self.over_rev(a, b).map(|(k, p)| (k, *p)).collect();
        v.reverse();
        v
    }

    /// Keys of the pieces sharing a byte with `[a, b)`, in address order
    /// (for callers that change the pieces while walking them).
    pub fn pieces_in(&self, a: usize, b: usize) -> SmallVec<[usize; 8]> {
        let mut v: SmallVec<[usize; 8]> = self.over_rev(a, b).map(|(k, _)| k).collect();
        v.reverse();
        v
    }

    /// True if some piece shares a byte with `[a, b)`: the last piece
    /// starting before `b` is the only candidate.
    pub fn has_pieces_in(&self, a: usize, b: usize) -> bool {
        self.pieces
            .range(..b.max(a))
            .next_back()
            .is_some_and(|(&k, p)| k + p.len > a)
    }

    /// Adds a piece (caller guarantees no overlap) and links it to its original.
    pub fn insert_piece(&mut self, dst: usize, p: Piece) {
        debug_assert!(!self.has_pieces_in(dst, dst + p.len), "overlapping piece");
        let o = self.orig_mut(p.orig);
        debug_assert!(
            p.src >= o.start && p.src + p.len <= o.end(),
            "piece outside original"
        );
        o.deps.push(dst);
        self.piece_bytes += p.len;
        self.pieces.insert(dst, p);
        self.last = Some((dst, p));
    }

    /// Grows piece `k` by `extra` bytes at its end, with `trips` more fault
    /// round trips (the caller guarantees no piece there and room in its
    /// original).
    pub fn extend_piece(&mut self, k: usize, extra: usize, trips: u32) {
        debug_assert!(!self.has_pieces_in(k + self.pieces[&k].len, k + self.pieces[&k].len + extra));
        let p = self.pieces.get_mut(&k).expect("extend of a missing piece");
        p.len += extra;
        p.trips = p.trips.saturating_add(trips);
        self.last = Some((k, *p));
        let (end, orig) = (p.src + p.len, p.orig);
        self.piece_bytes += extra;
        debug_assert!(end <= self.orig(orig).end(), "piece outside original");
    }

    /// Piece `k` took a fault round trip: one fewer left.
    pub fn spend_trip(&mut self, k: usize) {
        let p = self.pieces.get_mut(&k).expect("trip of a missing piece");
        p.trips = p.trips.saturating_sub(1);
        self.last = Some((k, *p));
    }

    /// Removes the part of piece `k` inside `[a, b)`, keeping what sticks
    /// out; the parts left share its fault round trips. Returns the original
    /// it pointed into.
    pub fn cut_piece(&mut self, k: usize, a: usize, b: usize) -> OrigId {
        let p = self.pieces.remove(&k).expect("cut of a missing piece");
        self.last = None;
        self.piece_bytes -= p.len;
        let orig = p.orig;
        unlink(&mut self.orig_mut(orig).deps, k);
        let end = k + p.len;
        let (l, r) = (a.saturating_sub(k), end.saturating_sub(b.max(k)));
        let (lt, rt) = share(p.trips, l, r);
        if k < a {
            let left = Piece {
                len: a - k,
                trips: lt,
                ..p
            };
            self.insert_piece(k, left);
        }
        if end > b {
            let off = b.max(k) - k;
            let right = Piece {
                len: end - b.max(k),
                src: p.src + off,
                trips: rt,
                ..p
            };
            self.insert_piece(b.max(k), right);
        }
        orig
    }

    /// Makes piece `k` the piece `new` of the same length (a reused
    /// destination taking new bytes). Returns the original it pointed into;
    /// `None`, changing nothing, if there is no piece of that length at `k`.
    pub fn repoint_piece(&mut self, k: usize, new: Piece) -> Option<OrigId> {
        let p = self.pieces.get_mut(&k).filter(|p| p.len == new.len)?;
        let was = p.orig;
        *p = new;
        self.last = Some((k, new));
        if was != new.orig {
            unlink(&mut self.orig_mut(was).deps, k);
            self.orig_mut(new.orig).deps.push(k);
        }
        debug_assert!(
            new.src >= self.orig(new.orig).start && new.src + new.len <= self.orig(new.orig).end(),
            "piece outside original"
        );
        Some(was)
    }

    /// Forgets original `id`, which nothing depends on or pins any more.
    pub fn remove_original(&mut self, id: OrigId) {
        let o = self.origs[id as usize].take().expect("stale original id");
        debug_assert!(!o.busy(), "removal of a busy original");
        self.by_start.remove(&o.start);
        self.free_ids.push(id);
    }

    /// Adds an original (caller guarantees no overlap with another).
    pub fn add_original(&mut self, start: usize, len: usize, stamp: u64) -> OrigId {
        debug_assert!(self.origs_in(start, start + len).is_empty());
        let o = Original {
            start,
            len,
            stamp,
            ..Original::default()
        };
        let id = match self.free_ids.pop() {
            Some(id) => {
                self.origs[id as usize] = Some(o);
                id
            }
            None => {
                self.origs.push(Some(o));
                (self.origs.len() - 1) as OrigId
            }
        };
        self.by_start.insert(start, id);
        id
    }

    /// Grows original `id` by `extra` bytes at its end (the caller
    /// guarantees no other original starts there) and stamps it `stamp`.
    pub fn extend_original(&mut self, id: OrigId, extra: usize, stamp: u64) {
        let end = self.orig(id).end();
        debug_assert!(self.origs_in(end, end + extra).is_empty());
        let o = self.orig_mut(id);
        o.len += extra;
        o.stamp = stamp;
    }

    /// Every original's bytes `[start, end)`, in address order.
    pub fn orig_ranges(&self) -> impl Iterator<Item = (usize, usize)> + '_ {
        self.by_start.values().map(|&id| {
            let o = self.orig(id);
            (o.start, o.end())
        })
    }

    /// The original with this id.
    pub fn orig(&self, id: OrigId) -> &Original {
        self.origs[id as usize].as_ref().expect("stale original id")
    }

    /// The original with this id, if it still exists.
    pub fn try_orig(&self, id: OrigId) -> Option<&Original> {
        self.origs.get(id as usize).and_then(Option::as_ref)
    }

    /// The original with this id, mutable.
    pub fn orig_mut(&mut self, id: OrigId) -> &mut Original {
        self.origs[id as usize].as_mut().expect("stale original id")
    }

    /// Ids of the originals sharing a byte with `[a, b)`, in address order.
    pub fn origs_in(&self, a: usize, b: usize) -> SmallVec<[OrigId; 8]> {
        // One descent, walking down from `b`: originals do not overlap, so
        // the walk ends at the first one starting before `a`.
        let mut v: SmallVec<[OrigId; 8]> = SmallVec::new();
        for (&start, &id) in self.by_start.range(..b.max(a)).rev() {
            if start < a {
                if self.orig(id).end() > a {
                    v.push(id);
                }
                break;
            }
            v.push(id);
        }
        v.reverse();
        v
    }

    /// True if some original shares a byte with `[a, b)`: originals do not
    /// overlap, so the last one starting before `b` is the only candidate.
    pub fn has_origs_in(&self, a: usize, b: usize) -> bool {
        self.by_start
            .range(..b.max(a))
            .next_back()
            .is_some_and(|(_, &id)| self.orig(id).end() > a)
    }

    /// The original holding every byte of the non-empty `[a, b)`, if one
    /// does (then it is the only original there).
    pub fn orig_covering(&self, a: usize, b: usize) -> Option<OrigId> {
        if a >= b {
            return None;
        }
        let (_, &id) = self.by_start.range(..=a).next_back()?;
        (self.orig(id).end() >= b).then_some(id)
    }

    /// All original ids, in address order.
    pub fn orig_ids(&self) -> Vec<OrigId> {
        self.by_start.values().copied().collect()
    }

    /// Removes `[a, b)` from every original. The caller guarantees no piece
    /// points into `[a, b)`; pieces pointing into a part that splits off get
    /// the new part's id.
    pub fn trim_originals(&mut self, a: usize, b: usize) {
        for id in self.origs_in(a, b) {
            let o = self.orig(id);
            debug_assert!(o.deps.iter().all(|k| {
                let p = &self.pieces[k];
                !overlaps(p.src, p.src + p.len, a, b)
            }));
            let (start, end, stamp, quarantined) = (o.start, o.end(), o.stamp, o.quarantined);
            let left = start < a;
            let right = end > b;
            if !left && !right {
                self.remove_original(id);
                continue;
            }
            self.by_start.remove(&start);
            if left {
                let l = self.orig_mut(id);
                l.len = a - start;
                self.by_start.insert(start, id);
            }
            if right && left {
                // The right part gets a new id, and the dependents there.
                let rid = self.add_original(b, end - b, stamp);
                let moved: SmallVec<[usize; 8]> = self
                    .orig(id)
                    .deps
                    .iter()
                    .copied()
                    .filter(|k| self.pieces[k].src >= b)
                    .collect();
                for k in moved {
                    self.pieces.get_mut(&k).unwrap().orig = rid;
                    self.last = None;
                    unlink(&mut self.orig_mut(id).deps, k);
                    self.orig_mut(rid).deps.push(k);
                }
                self.orig_mut(rid).quarantined = quarantined;
                self.orig_mut(rid).copied = self.orig(id).copied;
                self.orig_mut(rid).lent = self.orig(id).lent;
            } else if right {
                // No left part: the right part keeps this id.
                let r = self.orig_mut(id);
                r.start = b;
                r.len = end - b;
                self.by_start.insert(b, id);
            }
        }
    }

    /// Forgets every record.
    pub fn clear(&mut self) {
        *self = Tracker::default();
    }

    /// Checks the invariants (tests and debug builds).
    pub fn check(&self) {
        let mut last_end = 0;
        let mut bytes = 0;
        for (&k, p) in &self.pieces {
            assert!(k >= last_end, "pieces overlap at {k:#x}");
            assert!(p.len > 0);
            last_end = k + p.len;
            bytes += p.len;
            let o = self.orig(p.orig);
            assert!(
                o.deps.contains(&k),
                "piece {k:#x} not linked to its original"
            );
            assert!(
                p.src >= o.start && p.src + p.len <= o.end(),
                "piece {k:#x} outside its original"
            );
        }
        assert_eq!(bytes, self.piece_bytes);
        if let Some((k, p)) = &self.last {
            assert_eq!(self.pieces.get(k), Some(p), "stale last piece {k:#x}");
        }
        let mut last_end = 0;
        for (&s, &id) in &self.by_start {
            let o = self.orig(id);
            assert_eq!(o.start, s);
            assert!(s >= last_end, "originals overlap at {s:#x}");
            last_end = o.end();
            for k in &o.deps {
                assert_eq!(self.pieces[k].orig, id);
            }
        }
    }
}

/// Removes `k` from a dependents list (order does not matter).
fn unlink(deps: &mut Deps, k: usize) {
    if let Some(i) = deps.iter().position(|&d| d == k) {
        deps.swap_remove(i);
    }
}

#[cfg(test)]
mod tests;

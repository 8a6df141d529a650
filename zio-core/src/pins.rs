//! Memory the kernel or a device holds pinned: io_uring's registered
//! buffers, RDMA memory regions. The kernel reads and writes such pages
//! through its own long-term reference, past the page tables: a page zio
//! discarded there is replaced in the program's view only (the kernel
//! keeps using the old one), and a write by the device into an original
//! raises no write-protect fault. So pinned memory is never elided into,
//! never left unmapped by a redirected input, and never protected as an
//! original; what zio tracked there is materialized when the pin is taken.
//!
//! Pins are learnt from the registration calls libzio interposes
//! (`pinned.rs`), each under an owner (the ring or the memory region) so
//! that an unregistration drops exactly its own.

use core::sync::atomic::{AtomicBool, Ordering};

use crate::lock::Lock;
use crate::ranges::{page_down, page_up, RangeSet, PAGE};

struct Pins {
    /// `(owner, start, end)`, page-aligned.
    each: Vec<(usize, usize, usize)>,
    /// Their union.
    all: RangeSet,
}

static PINS: Lock<Option<Pins>> = Lock::new(None);
/// Something is pinned: the one load the common case pays.
static ANY: AtomicBool = AtomicBool::new(false);

/// Records `[a, a+len)` as pinned by `owner`; false, recording nothing,
/// for a range the kernel refuses (empty, or reaching the last page). The
/// caller materializes what zio tracked there (before the kernel takes
/// its reference).
pub fn pin(owner: usize, a: usize, len: usize) -> bool {
    if len == 0 || a.checked_add(len).is_none_or(|e| e > usize::MAX - PAGE) {
        return false;
    }
    let (s, e) = (page_down(a), page_up(a + len));
    let mut g = PINS.lock();
    let p = g.get_or_insert_with(|| Pins {
        each: Vec::new(),
        all: RangeSet::new(),
    });
    p.each.push((owner, s, e));
    p.all.insert(s, e);
    ANY.store(true, Ordering::Release);
    true
}

/// Drops every pin of `owner` (its unregistration).
pub fn unpin_owner(owner: usize) {
    let mut g = PINS.lock();
    let Some(p) = g.as_mut() else { return };
    p.each.retain(|&(o, _, _)| o != owner);
    p.all.clear();
    for &(_, s, e) in &p.each {
        p.all.insert(s, e);
    }
    ANY.store(!p.each.is_empty(), Ordering::Release);
}

/// Moves the pins of `from` to `to` (a registration whose owner is known
/// only once it returned).
pub fn rename_owner(from: usize, to: usize) {
    let mut g = PINS.lock();
    if let Some(p) = g.as_mut() {
        for e in p.each.iter_mut().filter(|e| e.0 == from) {
            e.0 = to;
        }
    }
}

/// In a fork's child: the table's lock is free again (another thread of
/// the parent may have held it). The table itself stays: the child shares
/// the parent's rings and regions.
///
/// # Safety
/// Only one thread exists (the child of a fork, before it starts any).
pub unsafe fn reset_in_child() {
    // SAFETY: the caller's contract.
    unsafe { PINS.reset() };
}

/// True if any of `[a, a+len)` is pinned.
#[inline]
pub fn overlaps(a: usize, len: usize) -> bool {
    if !ANY.load(Ordering::Acquire) || len == 0 {
        return false;
    }
    let g = PINS.lock();
    g.as_ref()
        .is_some_and(|p| p.all.intersects(a, a.saturating_add(len)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One test: the table is process-wide.
    #[test]
    fn pins_are_kept_per_owner() {
        assert!(!overlaps(0x10_0000, 0x1000));
        pin(1, 0x10_0010, 0x2000);
        pin(2, 0x20_0000, 0x1000);
        assert!(overlaps(0x10_2fff, 1), "rounded out to whole pages");
        assert!(!overlaps(0x10_3000, 0x1000));
        pin(1, 0x30_0000, 0x1000);
        unpin_owner(1);
        assert!(!overlaps(0x10_0000, 0x3000) && !overlaps(0x30_0000, 0x1000));
        assert!(overlaps(0x20_0000, 0x1000), "another owner's pin stays");
        rename_owner(2, 3);
        unpin_owner(2);
        assert!(overlaps(0x20_0000, 0x1000));
        unpin_owner(3);
        assert!(!overlaps(0x20_0000, 0x1000));
        assert!(!ANY.load(Ordering::Relaxed));
    }
}

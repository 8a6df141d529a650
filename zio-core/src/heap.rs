//! zio's private heap: the global allocator of libzio.so.
//!
//! zio's own data structures must never live in memory the program's
//! allocator hands out. That memory may be registered with userfaultfd and
//! contain missing pages (a freed intermediate); touching one while holding
//! the engine lock would wait for the handler thread, which waits for the
//! same lock. It would also make zio call the program's `malloc` from inside
//! its `memcpy`. So every Rust allocation in libzio.so comes from here:
//! size classes carved from 1 MiB chunks that zio maps itself, and direct
//! mappings for large blocks, a few of which are kept for reuse when freed.
//! A spin lock guards the free lists; the critical sections are a few
//! instructions long.

use core::alloc::{GlobalAlloc, Layout};
use core::ptr;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

const CLASSES: usize = 9; // 16, 32, ..., 4096
const MIN_SHIFT: usize = 4;
const CHUNK: usize = 1 << 20;
/// Blocks above this come from their own mapping.
const LARGE: usize = 1 << (MIN_SHIFT + CLASSES - 1); // 4096
/// Freed large mappings kept for the next block of the same page count:
/// a copy plan's bounce buffer or a gather list beyond its inline size is
/// made and dropped on every message of some programs, and a fresh mapping
/// each time costs an `mmap`, a page fault per page and an `munmap` with a
/// TLB shootdown (echo 512K x 5 with malloc'd buffers: 4 of each per
/// message).
const KEPT_SLOTS: usize = 16;
/// At most this many bytes in kept mappings, and no one mapping larger.
const KEPT_BYTES: usize = 4 << 20;
const KEPT_MAX: usize = 1 << 20;

struct State {
    free: [*mut u8; CLASSES],
    bump: *mut u8,
    bump_end: *mut u8,
    /// Kept large mappings: (length rounded to pages, address); 0 length
    /// marks an empty slot.
    kept: [(usize, *mut u8); KEPT_SLOTS],
    kept_bytes: usize,
}

/// The allocator (a unit type: its state is a static).
pub struct ZioHeap;

static LOCK: AtomicBool = AtomicBool::new(false);
static mut STATE: State = State {
    free: [ptr::null_mut(); CLASSES],
    bump: ptr::null_mut(),
    bump_end: ptr::null_mut(),
    kept: [(0, ptr::null_mut()); KEPT_SLOTS],
    kept_bytes: 0,
};

/// Blocks handed out since the process started (a child after `fork`
/// goes on from its parent's count). Only the allocator itself touches it,
/// so no hook pays for it; it is what proves that a path of zio allocates
/// nothing (libzio's `zio_counter("heap_allocations")`).
static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

/// How many blocks zio's heap has handed out in this process so far
/// (every `alloc`, including the fresh block of a growing `realloc`).
pub fn allocations() -> u64 {
    ALLOCATIONS.load(Ordering::Relaxed)
}

/// A kept mapping of exactly `len` bytes (page-rounded), if there is one.
fn take_kept(len: usize) -> *mut u8 {
    lock();
    // SAFETY: STATE is only touched under LOCK.
    let st = unsafe { &mut *ptr::addr_of_mut!(STATE) };
    let mut p = ptr::null_mut();
    if let Some(slot) = st.kept.iter_mut().find(|(l, _)| *l == len) {
        p = slot.1;
        *slot = (0, ptr::null_mut());
        st.kept_bytes -= len;
    }
    unlock();
    p
}

/// Keeps the mapping `p` of `len` bytes (page-rounded) for reuse; false if
/// there is no room (the caller unmaps it).
fn keep(p: *mut u8, len: usize) -> bool {
    if len > KEPT_MAX {
        return false;
    }
    lock();
    // SAFETY: STATE is only touched under LOCK.
    let st = unsafe { &mut *ptr::addr_of_mut!(STATE) };
    let room = st.kept_bytes + len <= KEPT_BYTES;
    let slot = st.kept.iter_mut().find(|(l, _)| *l == 0);
    let kept = match slot {
        Some(s) if room => {
            *s = (len, p);
            st.kept_bytes += len;
            true
        }
        _ => false,
    };
    unlock();
    kept
}

fn class_of(size: usize) -> usize {
    let size = size.max(1 << MIN_SHIFT);
    (usize::BITS - (size - 1).leading_zeros()) as usize - MIN_SHIFT
}

fn lock() {
    while LOCK
        .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
        .is_err()
    {
        core::hint::spin_loop();
    }
}

fn unlock() {
    LOCK.store(false, Ordering::Release);
}

/// A fresh private anonymous read-write mapping of `len` bytes straight
/// from the kernel (null if refused): the heap's own memory, and zio's
/// memory outside the heap (redirected input, backups).
pub(crate) fn map(len: usize) -> *mut u8 {
    if crate::resources::refuse().is_some() {
        crate::resources::ran_out("mmap", libc::ENOMEM);
        return ptr::null_mut();
    }
    // SAFETY: an anonymous private mapping has no preconditions.
    let p = unsafe {
        libc::mmap(
            ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        crate::resources::ran_out("mmap", crate::log::errno());
        ptr::null_mut()
    } else {
        p.cast()
    }
}

/// Memory the heap falls back on when the kernel refuses it a mapping, so
/// that zio never fails an allocation it can still serve: Rust aborts on
/// a failed one, and the program with it. Once touched it is never given
/// back; by then zio has stopped eliding and allocates little.
#[repr(C, align(4096))]
struct Reserve([u8; RESERVE_LEN]);

const RESERVE_LEN: usize = 4 << 20;

static mut RESERVE: Reserve = Reserve([0; RESERVE_LEN]);
/// Bytes of [`RESERVE`] handed out (under `LOCK`).
static mut RESERVE_USED: usize = 0;

/// `len` bytes (a multiple of pages) of the reserve, null if it has
/// no more. Called with `LOCK` held.
fn from_reserve(len: usize) -> *mut u8 {
    // SAFETY: both statics are only touched under LOCK, which the caller
    // holds; the block handed out is never handed out again.
    unsafe {
        let used = *ptr::addr_of!(RESERVE_USED);
        if used + len > RESERVE_LEN {
            return ptr::null_mut();
        }
        *ptr::addr_of_mut!(RESERVE_USED) = used + len;
        ptr::addr_of_mut!(RESERVE).cast::<u8>().add(used)
    }
}

/// True if `p` lies in the reserve (never unmapped nor kept).
fn in_reserve(p: *mut u8) -> bool {
    let start = ptr::addr_of!(RESERVE) as usize;
    (start..start + RESERVE_LEN).contains(&(p as usize))
}

/// In a fork's child: the heap starts afresh (empty free lists, no
/// chunk, no kept mapping), for another thread of the parent may have been
/// halfway through an update when memory was copied. The parent's blocks
/// the child still uses stay valid; freed, they join the new lists. (The
/// lock is not held across the fork: see `elide::fork_prepare`.)
///
/// # Safety
/// Only one thread exists (the child of a fork, before it starts any).
pub unsafe fn reset_in_child() {
    // SAFETY: the only thread; no one else can hold or take the lock.
    unsafe {
        let st = &mut *ptr::addr_of_mut!(STATE);
        // A heap never used has nothing to forget (and writing its state
        // would cost the child a page copy).
        if st.bump.is_null() && st.kept_bytes == 0 && st.free.iter().all(|f| f.is_null()) {
            if LOCK.load(Ordering::Relaxed) {
                unlock();
            }
            return;
        }
        st.free = [ptr::null_mut(); CLASSES];
        st.bump = ptr::null_mut();
        st.bump_end = ptr::null_mut();
        st.kept = [(0, ptr::null_mut()); KEPT_SLOTS];
        st.kept_bytes = 0;
    }
    unlock();
}

// SAFETY: blocks are disjoint, aligned to their size class (which is at
// least the layout's alignment, see `alloc`), and never handed out twice:
// a block is either on a free list, in use, or not yet carved.
unsafe impl GlobalAlloc for ZioHeap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // A class block is aligned to its size (chunks are page-aligned and
        // carved in class-size steps from aligned offsets), so asking for
        // max(size, align) satisfies the alignment.
        if layout.align() > LARGE {
            return ptr::null_mut(); // nothing in zio asks for more than a page
        }
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        let size = layout.size().max(layout.align());
        if size > LARGE {
            let len = crate::ranges::page_up(size);
            let mut p = take_kept(len);
            if p.is_null() {
                p = map(len);
            }
            if p.is_null() {
                lock();
                p = from_reserve(len);
                unlock();
            }
            return p;
        }
        let c = class_of(size);
        let bsize = 1usize << (c + MIN_SHIFT);
        lock();
        // SAFETY: STATE is only touched under LOCK.
        let st = unsafe { &mut *ptr::addr_of_mut!(STATE) };
        let head = st.free[c];
        let p = if !head.is_null() {
            // SAFETY: a free block's first word is the next free block.
            st.free[c] = unsafe { *(head as *mut *mut u8) };
            head
        } else {
            // Align the bump pointer to the block size.
            let mut b = ((st.bump as usize + bsize - 1) & !(bsize - 1)) as *mut u8;
            if st.bump.is_null() || b as usize + bsize > st.bump_end as usize {
                let mut chunk = map(CHUNK);
                if chunk.is_null() {
                    chunk = from_reserve(CHUNK);
                }
                if chunk.is_null() {
                    unlock();
                    return ptr::null_mut();
                }
                st.bump_end = chunk.wrapping_add(CHUNK);
                b = chunk;
            }
            st.bump = b.wrapping_add(bsize);
            b
        };
        unlock();
        p
    }

    unsafe fn dealloc(&self, p: *mut u8, layout: Layout) {
        let size = layout.size().max(layout.align());
        if size > LARGE {
            let len = crate::ranges::page_up(size);
            if in_reserve(p) {
                return;
            }
            if !keep(p, len) {
                // SAFETY: large blocks are whole mappings of `len` bytes.
                unsafe { libc::munmap(p.cast(), len) };
            }
            return;
        }
        let c = class_of(size);
        lock();
        // SAFETY: STATE is only touched under LOCK; `p` is a block of class
        // `c` that the caller no longer uses, so its first word is ours.
        unsafe {
            let st = &mut *ptr::addr_of_mut!(STATE);
            *(p as *mut *mut u8) = st.free[c];
            st.free[c] = p;
        }
        unlock();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every block handed out is counted, small or large, and a free is
    /// not (other tests allocate meanwhile, so at least).
    #[test]
    fn allocations_are_counted() {
        let h = ZioHeap;
        let before = allocations();
        for size in [8, 4096, 5 * 4096] {
            let l = Layout::from_size_align(size, 8).unwrap();
            // SAFETY: non-zero size layout, freed with the same layout.
            unsafe { h.dealloc(h.alloc(l), l) };
        }
        assert!(allocations() - before >= 3);
    }

    #[test]
    fn classes() {
        assert_eq!(class_of(1), 0);
        assert_eq!(class_of(16), 0);
        assert_eq!(class_of(17), 1);
        assert_eq!(class_of(4096), CLASSES - 1);
        assert_eq!(LARGE, 4096);
    }

    /// A freed large block's mapping serves the next block of the same page
    /// count (no new mapping); one too large for the cache is unmapped.
    #[test]
    fn large_mappings_are_kept_for_reuse() {
        let h = ZioHeap;
        // A page count no other test uses (tests share the heap).
        let l = Layout::from_size_align(29 * 4096 + 1, 8).unwrap();
        // SAFETY: non-zero size layouts, each block freed with its own; the
        // unlocked look at STATE at the end only reads slot addresses.
        unsafe {
            let p = h.alloc(l);
            ptr::write_bytes(p, 7, l.size());
            h.dealloc(p, l);
            let q = h.alloc(l);
            assert_eq!(p, q, "the kept mapping is handed out again");
            h.dealloc(q, l);
            let big = Layout::from_size_align(KEPT_MAX + 4096, 8).unwrap();
            let b = h.alloc(big);
            h.dealloc(b, big);
            assert!(
                !(*ptr::addr_of!(STATE)).kept.iter().any(|&(_, k)| k == b),
                "a mapping over KEPT_MAX is not kept"
            );
        }
    }

    #[test]
    fn blocks_are_aligned_disjoint_and_reused() {
        let h = ZioHeap;
        let mut blocks = Vec::new();
        for i in 0..5000usize {
            let size: usize = [1, 8, 24, 100, 500, 3000, 4096, 10000][i % 8];
            let align = [1, 8, 16, 64][i % 4].min(size.next_power_of_two());
            let l = Layout::from_size_align(size, align).unwrap();
            // SAFETY: non-zero size layout.
            let p = unsafe { h.alloc(l) };
            assert!(!p.is_null() && (p as usize).is_multiple_of(align));
            // SAFETY: the block has `size` bytes.
            unsafe { ptr::write_bytes(p, (i % 251) as u8, size) };
            blocks.push((p, l, (i % 251) as u8));
        }
        for &(p, l, v) in &blocks {
            // SAFETY: each block is still allocated and was filled with v.
            let s = unsafe { core::slice::from_raw_parts(p, l.size()) };
            assert!(s.iter().all(|&b| b == v), "blocks overlap");
        }
        let first = blocks[0];
        for (p, l, _) in blocks {
            // SAFETY: allocated above with this layout.
            unsafe { h.dealloc(p, l) };
        }
        // SAFETY: same layout as the first block, now free.
        let again = unsafe { h.alloc(first.1) };
        assert!(!again.is_null());
        // SAFETY: allocated just above.
        unsafe { h.dealloc(again, first.1) };
    }
}

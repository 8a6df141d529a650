//! zio's accesses to plain program memory under its lock that may fault:
//! the bytes a fringe hint is checked against, and a redirected input's
//! partial end pages written for real. zio holds nothing in those pages,
//! but one may have been discarded behind its back (still registered,
//! now missing), and its fault would go to the handler, which needs the
//! lock the accessing thread holds. So that thread names the pages it
//! accesses, and the handler serves a missing fault there with a zero
//! page, without the lock: what the kernel maps at a discarded page.

use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};

use crate::ranges::{page_down, page_up, PAGE};
use crate::uffd::{self, Msg};

/// The pages being accessed: the first page's address plus their count
/// (in the low bits), 0 for none. One word, so that the handler never sees
/// the start of one read with the end of another. Written only by the
/// engine lock's holder.
static ACCESSING: AtomicUsize = AtomicUsize::new(0);

/// Set while the handler decides on and serves a fault: the reader does
/// not leave its pages (and let the engine change them) before it is done.
static SERVING: AtomicBool = AtomicBool::new(false);

/// Reads `out.len()` bytes at `a` (at most a few pages).
///
/// # Safety
/// The caller holds the engine's lock; `[a, a+out.len())` is mapped and
/// readable; zio holds nothing in its pages (no pieces, none left
/// unfilled), so zeros are their contents wherever they are missing.
pub(super) unsafe fn read(a: usize, out: &mut [u8]) {
    // SAFETY: the caller's contract; a fault there is served by `serve`.
    within(a, out.len(), || unsafe {
        core::ptr::copy_nonoverlapping(a as *const u8, out.as_mut_ptr(), out.len())
    });
}

/// Writes `data` at `a` (at most a few pages).
///
/// # Safety
/// As for [`read`], and the range is writable and not write-protected.
pub(super) unsafe fn write(a: usize, data: &[u8]) {
    // SAFETY: the caller's contract; a fault there is served by `serve`.
    within(a, data.len(), || unsafe {
        core::ptr::copy_nonoverlapping(data.as_ptr(), a as *mut u8, data.len())
    });
}

/// Runs `access` with the pages of `[a, a+len)` published to the handler.
fn within(a: usize, len: usize, access: impl FnOnce()) {
    let (p0, p1) = (page_down(a), page_up(a + len));
    debug_assert!((p1 - p0) / PAGE < PAGE);
    ACCESSING.store(p0 | ((p1 - p0) / PAGE), SeqCst);
    access();
    ACCESSING.store(0, SeqCst);
    // Sequentially consistent with `serve`'s two accesses: either the
    // handler saw the pages no longer accessed, or this sees it serving.
    while SERVING.load(SeqCst) {
        core::hint::spin_loop();
    }
}

/// Serves `m` on descriptor `fd` if it is a missing fault in the pages
/// being accessed: maps a zero page there and wakes the waiters. True if so.
pub(super) fn serve(fd: i32, m: &Msg) -> bool {
    if m.flags & uffd::PAGEFAULT_FLAG_WP != 0 {
        return false;
    }
    let addr = m.address as usize;
    SERVING.store(true, SeqCst);
    let r = ACCESSING.load(SeqCst);
    let p0 = page_down(r);
    let hit = r != 0 && p0 <= addr && addr < p0 + (r - p0) * PAGE;
    if hit {
        uffd::zero_page_unlocked(fd, page_down(addr));
    }
    SERVING.store(false, SeqCst);
    hit
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lock::Lock;
    use crate::uffd::{feature, open};

    /// A page discarded behind zio's back (registered, missing), read by
    /// the holder of a lock the handler is waiting for: the handler serves
    /// the fault with a zero page between its waits, the read sees the
    /// page's zeros after the bytes of the page before it, and the
    /// handler gets the lock once it is released. A fault outside the
    /// pages being read is not served.
    #[test]
    fn a_discarded_page_read_under_the_lock_is_served_without_it() {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            return;
        }
        static LOCK: Lock<u32> = Lock::new(0);
        std::thread::spawn(|| {
            std::thread::sleep(std::time::Duration::from_secs(30));
            eprintln!("plain read test hung");
            std::process::abort();
        });
        let a = crate::heap::map(2 * PAGE) as usize;
        assert_ne!(a, 0);
        // SAFETY: our own fresh mapping of two pages.
        unsafe { core::ptr::write_bytes(a as *mut u8, 0x5A, 2 * PAGE) };
        let u = open(feature::PAGEFAULT_FLAG_WP).unwrap();
        u.register(a, 2 * PAGE).unwrap();
        // SAFETY: our own mapping; its second page reads as zeros after.
        let r =
            unsafe { libc::madvise((a + PAGE) as *mut libc::c_void, PAGE, libc::MADV_DONTNEED) };
        assert_eq!(r, 0);
        let held = LOCK.lock();
        let fd = u.fd;
        let handler = std::thread::spawn(move || {
            let mut served = 0;
            let g = LOCK.lock_polling(|| {
                while let Some(m) = uffd::try_read_msg(fd).unwrap() {
                    served += u32::from(serve(fd, &m));
                }
            });
            drop(g);
            served
        });
        std::thread::sleep(std::time::Duration::from_millis(20));
        let mut out = [1u8; 64];
        // SAFETY: this thread holds the lock the handler waits for; the
        // range is mapped, and only the kernel's zeros are missing there.
        unsafe { read(a + PAGE - 32, &mut out) };
        drop(held);
        assert_eq!(handler.join().unwrap(), 1, "faults served");
        assert!(out[..32].iter().all(|&b| b == 0x5A), "{out:?}");
        assert!(out[32..].iter().all(|&b| b == 0), "{out:?}");
        let mut m = Msg::default();
        m.event = uffd::EVENT_PAGEFAULT;
        m.address = a as u64;
        assert!(!serve(fd, &m), "a fault outside the pages read");
        // SAFETY: our own mapping, no longer used.
        unsafe { libc::munmap(a as *mut libc::c_void, 2 * PAGE) };
    }
}

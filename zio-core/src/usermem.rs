//! Which caller memory zio may read: the arrays and headers a hook walks
//! (iovecs, `msghdr`, `mmsghdr`) are read only once they are known to be
//! readable, so a bad pointer gets the kernel's `EFAULT`, not a crash.
//!
//! Three tests, cheapest first. An array on the calling thread's stack,
//! just above the hook's own frame, is readable. Otherwise each page it
//! spans is either the page this thread last proved readable (while no
//! unmap has happened since) or is proved now by a system call that reads
//! 8 bytes of it and answers `EFAULT` instead of faulting:
//! `rt_sigprocmask` with an invalid `how` reads its set first and then
//! refuses, changing nothing.

use core::sync::atomic::{AtomicU32, Ordering};

use crate::ranges::PAGE;
use crate::thread;

/// How far above the stack pointer an array still counts as the calling
/// thread's own stack: the callers' frames (a server's `iovec[IOV_MAX]` on
/// the stack is 16 KiB).
const STACK_WINDOW: usize = 256 << 10;

/// Bumped whenever memory may have become unreadable (an unmap, a
/// remap, a protection change, a free of a block that may have been
/// mapped alone): proofs older than it are void.
static UNMAPS: AtomicU32 = AtomicU32::new(0);

/// Memory may have become unreadable: forget what was proved.
#[inline]
pub fn unmapped() {
    UNMAPS.fetch_add(1, Ordering::Relaxed);
}

/// True if `[p, p+len)` can be read without a fault. False for a null
/// pointer or a range that wraps; true for an empty range.
#[inline]
pub fn readable(p: usize, len: usize) -> bool {
    if len == 0 {
        return true;
    }
    let Some(end) = p.checked_add(len) else {
        return false;
    };
    if p < PAGE {
        return false;
    }
    let sp = &end as *const usize as usize;
    if p >= sp && end <= sp + STACK_WINDOW {
        return true;
    }
    let gen = UNMAPS.load(Ordering::Relaxed);
    let mut page = p & !(PAGE - 1);
    while page < end {
        if !page_readable(page, gen) {
            return false;
        }
        page += PAGE;
    }
    true
}

/// True if the page at `page` is readable, by this thread's last proof or
/// a new one (which becomes the last).
fn page_readable(page: usize, gen: u32) -> bool {
    let known = thread::with(|s| s.readable_page.get() == page && s.readable_gen.get() == gen);
    if known {
        return true;
    }
    if !probe(page) {
        return false;
    }
    thread::with(|s| {
        s.readable_page.set(page);
        s.readable_gen.set(gen);
    });
    true
}

/// Asks the kernel whether 8 bytes at `at` can be read.
fn probe(at: usize) -> bool {
    const SIGSET_BYTES: libc::c_long = 8;
    // SAFETY: with `how` = -1 the kernel reads the set (or answers EFAULT)
    // and then refuses the call with EINVAL: no mask changes, nothing
    // written, no old set asked for, errno left alone.
    let r = unsafe {
        crate::real::raw_syscall_quiet(
            libc::SYS_rt_sigprocmask,
            [-1, at as libc::c_long, 0, SIGSET_BYTES, 0, 0],
        )
    };
    r != -(libc::EFAULT as libc::c_long)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn anon(len: usize, prot: i32) -> usize {
        // SAFETY: a fresh anonymous mapping.
        let p = unsafe {
            libc::mmap(
                core::ptr::null_mut(),
                len,
                prot,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        assert_ne!(p, libc::MAP_FAILED);
        p as usize
    }

    #[test]
    fn answers_like_the_kernel() {
        let local = [0u8; 64];
        assert!(readable(local.as_ptr() as usize, local.len()), "own stack");
        let heap = vec![0u8; 3 * PAGE];
        assert!(
            readable(heap.as_ptr() as usize + 7, 2 * PAGE),
            "heap, misaligned"
        );
        assert!(!readable(0, 16), "null");
        assert!(!readable(8, 16), "first page");
        assert!(!readable(usize::MAX - 4, 16), "wraps");
        assert!(readable(0, 0), "empty");
        let none = anon(PAGE, libc::PROT_NONE);
        assert!(!readable(none, 16), "PROT_NONE");
        let two = anon(2 * PAGE, libc::PROT_READ);
        assert!(readable(two, 2 * PAGE));
        // SAFETY: unmapping the second page of our own mapping.
        unsafe { libc::munmap((two + PAGE) as *mut libc::c_void, PAGE) };
        unmapped();
        assert!(readable(two, PAGE), "first page still mapped");
        assert!(!readable(two, PAGE + 1), "second page gone");
        // SAFETY: our own mappings.
        unsafe {
            libc::munmap(none as *mut libc::c_void, PAGE);
            libc::munmap(two as *mut libc::c_void, PAGE);
        }
    }

    #[test]
    fn a_proof_dies_with_an_unmap() {
        let a = anon(PAGE, libc::PROT_READ);
        assert!(readable(a, 8));
        // SAFETY: our own mapping.
        unsafe { libc::munmap(a as *mut libc::c_void, PAGE) };
        unmapped();
        assert!(!readable(a, 8), "and falls when told");
    }

    #[test]
    fn the_probe_changes_no_mask() {
        let set: u64 = u64::MAX;
        assert!(probe(&set as *const u64 as usize));
        // SAFETY: an all-zero sigset_t is a valid (empty) set.
        let mut now: libc::sigset_t = unsafe { core::mem::zeroed() };
        // SAFETY: reading this thread's mask into `now`.
        unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, core::ptr::null(), &mut now) };
        // SAFETY: `now` is a valid set.
        assert_eq!(unsafe { libc::sigismember(&now, libc::SIGUSR1) }, 0);
    }
}

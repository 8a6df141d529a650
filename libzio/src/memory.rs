//! The memory hooks (`free`, `realloc`, `munmap`, `mremap`, `madvise`,
//! `mprotect`): what zio tracks in memory the program releases, remaps,
//! discards or protects.

use core::ffi::{c_int, c_void};

use zio_core::stats::{self, Hook};
use zio_core::{elide, real};

hooks! {
    /// Exported `free`: tracked allocations go through the engine first
    /// (quarantined if they hold data that unmapped copies still need).
    fn free(p: *mut c_void) {
        // A block glibc mapped alone (its header ends 16 bytes into a page)
        // is unmapped by this free, out of zio's sight.
        if p as usize & 0xfff == 0x10 {
            zio_core::usermem::unmapped();
        }
        // SAFETY: `p` is the caller's live allocation.
        if elide::tracking() && unsafe { elide::free(p as usize) } {
            stats::count(Hook::Free, 0);
            return;
        }
        // SAFETY: the caller's contract.
        unsafe { real::free(p) };
        stats::count(Hook::Free, 0);
    }

    /// Exported `realloc`: of tracked memory holding IO data only, libc's
    /// (which may move the pages for free) with the data recorded again
    /// where it lands; holding elided copies, an elided copy into a fresh
    /// allocation plus a free; otherwise libc's.
    fn realloc(p: *mut c_void, n: usize) -> *mut c_void {
        stats::count(Hook::Realloc, n as u64);
        if n > 0 && elide::tracking() {
            // SAFETY: `p` is the caller's live allocation (or null).
            if let Some(old) = unsafe { elide::realloc_tracked(p as usize) } {
                if let Some(ranges) = elide::release_for_realloc(p as usize, old) {
                    // SAFETY: the caller's contract.
                    let q = unsafe { real::realloc(p, n) };
                    if !q.is_null() {
                        for (s, e) in ranges {
                            let e = e.min(n);
                            if e > s {
                                elide::input_done(q as usize + s, e - s);
                            }
                        }
                    }
                    return q;
                }
                // SAFETY: a fresh block from the program's own allocator.
                let q = unsafe { libc::malloc(n) };
                if q.is_null() {
                    return q; // realloc failure: the old block stays valid
                }
                let len = old.min(n);
                // SAFETY: both blocks hold at least `len` bytes and are disjoint.
                unsafe {
                    if !elide::copy(q as usize, p as usize, len, realloc as *const () as usize) {
                        real::memcpy(q, p, len);
                    }
                    if !elide::free(p as usize) {
                        real::free(p);
                    }
                }
                return q;
            }
        }
        // SAFETY: the caller's contract.
        unsafe { real::realloc(p, n) }
    }

    /// Exported `munmap`.
    fn munmap(a: *mut c_void, n: usize) -> c_int {
        elide::discard(a as usize, n, false, true);
        // SAFETY: the caller's contract.
        let r = unsafe { real::munmap(a, n) };
        zio_core::usermem::unmapped();
        stats::count(Hook::Munmap, n as u64);
        r
    }

    /// Exported `mremap`. It is variadic in C (the fifth argument only with
    /// MREMAP_FIXED or MREMAP_DONTUNMAP); on x86-64 variadic integer arguments
    /// travel in the same registers as fixed ones, so taking five and passing
    /// five on is exact: the real mremap reads the fifth only when the flags say
    /// so. Data moving to a new place must be in memory first: the moved range
    /// would lose its registration.
    fn mremap(
        a: *mut c_void,
        o: usize,
        n: usize,
        f: c_int,
        na: *mut c_void,
    ) -> *mut c_void {
        elide::discard(a as usize, o, true, true);
        // SAFETY: the caller's contract.
        let r = unsafe { real::mremap(a, o, n, f, na) };
        zio_core::usermem::unmapped();
        stats::count(Hook::Mremap, n as u64);
        r
    }

    /// Exported `madvise`: advice that discards contents drops what zio tracks
    /// there first.
    fn madvise(a: *mut c_void, n: usize, adv: c_int) -> c_int {
        const MADV_DONTNEED_LOCKED: c_int = 24;
        if matches!(
            adv,
            libc::MADV_DONTNEED | libc::MADV_FREE | libc::MADV_REMOVE | MADV_DONTNEED_LOCKED
        ) {
            elide::discard(a as usize, n, false, false);
        }
        // SAFETY: the caller's contract.
        let r = unsafe { real::madvise(a, n, adv) };
        if r == 0 && matches!(adv, libc::MADV_DONTNEED | MADV_DONTNEED_LOCKED) {
            elide::after_discard(a as usize, n);
        }
        stats::count(Hook::Madvise, n as u64);
        r
    }

    /// Exported `mprotect`: memory made unreadable voids what zio proved
    /// readable ([`zio_core::usermem`]).
    fn mprotect(a: *mut c_void, n: usize, prot: c_int) -> c_int {
        // SAFETY: the caller's contract.
        let r = unsafe { real::mprotect(a, n, prot) };
        if prot & libc::PROT_READ == 0 {
            zio_core::usermem::unmapped();
        }
        stats::count(Hook::Mprotect, n as u64);
        r
    }
}

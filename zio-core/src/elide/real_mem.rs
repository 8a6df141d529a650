//! The engine's memory backend in the running process: userfaultfd
//! registration, fills and write protection, discarding pages, and zio's
//! own memory for backups and redirected input.

use super::clock::EngineTime;
use crate::engine::Mem;
use crate::log::Level;
use crate::ranges::{page_up, PAGE};
use crate::uffd::{self, Uffd};
use crate::{vma, zio_log};

/// The process memory, through userfaultfd.
pub struct RealMem {
    uffd: Uffd,
    /// Backup mappings no longer in use, by length, kept for reuse: a
    /// server backing up the same buffer size on every request then maps
    /// nothing (and its pages stay populated).
    spare: std::collections::BTreeMap<usize, Vec<usize>>,
    spare_bytes: usize,
    /// Ranges registered with userfaultfd (each may add VMAs).
    pub(super) registrations: u64,
    /// `madvise` calls made (pages left missing).
    pub(super) madvise_calls: u64,
    /// Pages a zero-page request found not registered, most recent last:
    /// the partial pages at the ends of a redirected input, asked on every
    /// message. Only zio registers memory with its descriptor, and
    /// [`RealMem::register_checked`] forgets the pages it registers, so an
    /// entry stays true until then.
    unregistered: [usize; UNREGISTERED],
    /// Mappings found shared, file-backed or read-only, most recent last,
    /// with the answers each may still give: never elided into, and asked
    /// about once per [`REFUSED_USES`] copies instead of at every one (a
    /// stack's shared-memory samples are copied into on every message).
    /// Dropped when the program unmaps there while zio tracks anything
    /// ([`Mem::forget`]); one gone stale otherwise (unmapped and mapped
    /// again past the hooks) only makes zio copy for real where it could
    /// have elided, until its uses run out.
    refused: [(usize, usize, u32); REFUSED],
    /// Time spent in the engine (kept here: the backend is the part of the
    /// engine's state that belongs to the running process).
    pub(super) time: EngineTime,
}

/// Pages [`RealMem::unregistered`] remembers.
const UNREGISTERED: usize = 32;

/// Mappings [`RealMem::refused`] remembers.
const REFUSED: usize = 8;

/// Copies one entry of [`RealMem::refused`] answers before it is asked
/// about again.
const REFUSED_USES: u32 = 1024;

/// How loudly a failed fill is logged: ENOMEM is said once elsewhere
/// (`crate::resources`); ENOENT is memory the program unmapped meanwhile;
/// EAGAIN, the address space changing meanwhile (the fault comes again).
fn fill_error_level(e: i32) -> Level {
    if matches!(e, libc::ENOMEM | libc::ENOENT | libc::EAGAIN) {
        Level::Debug
    } else {
        Level::Error
    }
}

/// Puts `page` last in a list of recent pages, the oldest dropped.
fn remember(list: &mut [usize; UNREGISTERED], page: usize) {
    list.rotate_left(1);
    list[UNREGISTERED - 1] = page;
}

/// Spare backup memory kept mapped for reuse, at most.
const SPARE_MAX: usize = 64 << 20;

impl RealMem {
    /// The backend of an engine starting now on descriptor `uffd`
    /// ([`Uffd::none`] until the first copy arms it).
    pub(super) fn new(uffd: Uffd) -> RealMem {
        RealMem {
            uffd,
            spare: Default::default(),
            spare_bytes: 0,
            registrations: 0,
            madvise_calls: 0,
            unregistered: [usize::MAX; UNREGISTERED],
            refused: [(0, 0, 0); REFUSED],
            time: EngineTime::new(),
        }
    }

    /// From now on the backend works through `uffd` (its handler thread
    /// runs).
    pub(super) fn arm(&mut self, uffd: Uffd) {
        self.uffd = uffd;
    }

    /// userfaultfd ioctls made so far.
    pub(super) fn uffd_calls(&self) -> u64 {
        self.uffd.calls.load(core::sync::atomic::Ordering::Relaxed)
    }

    /// True if `[a, a+len)` is registered with this descriptor now. The
    /// program's allocator may have unmapped and remapped a range behind
    /// zio's back (glibc frees large chunks with an internal `munmap`), so
    /// no record of past registrations can say. A write-protect call (a
    /// no-op unprotect: callers have released any protection there)
    /// succeeds only on a range registered with this descriptor, and zio
    /// registers only memory it classified as private anonymous: success
    /// proves both, in one call, with no cache to go stale.
    fn registered(&self, a: usize, len: usize) -> bool {
        self.uffd.writeprotect(a, len, false).is_ok()
    }

    /// Leaves `[a, a+len)` (not pinned) missing: registers it first
    /// unless `registered` (this descriptor's registration there is
    /// known), then discards its pages.
    fn discard_registered(&mut self, a: usize, len: usize, registered: bool) -> bool {
        if !registered && !self.register_checked(a, len) {
            return false;
        }
        self.madvise_calls += 1;
        // SAFETY: private anonymous memory registered for missing faults:
        // its next access is a fault that the handler fills from the pieces.
        unsafe { libc::madvise(a as *mut libc::c_void, len, libc::MADV_DONTNEED) == 0 }
    }

    /// Maps zero pages over the missing pages of `[a, a+len)` with `zero`
    /// (one of [`Uffd`]'s zero-page calls). A part that is not registered
    /// (ENOENT) needs nothing: no fault can come from it. A single page
    /// known so is not asked again.
    fn zero_registered(
        &mut self,
        a: usize,
        len: usize,
        zero: fn(&Uffd, usize, usize) -> Result<(), i32>,
    ) {
        if len == PAGE && self.unregistered.contains(&a) {
            return;
        }
        if zero(&self.uffd, a, len) == Err(libc::ENOENT) && len == PAGE {
            remember(&mut self.unregistered, a);
        }
    }

    /// Registers `[a, a+len)` after checking it is private anonymous memory.
    fn register_checked(&mut self, a: usize, len: usize) -> bool {
        for p in self.unregistered.iter_mut() {
            if *p >= a && *p < a + len {
                *p = usize::MAX;
            }
        }
        let (kind, refusing) = vma::classify_span(a, a + len);
        if let Some((s, e)) = refusing {
            self.refused.rotate_left(1);
            self.refused[REFUSED - 1] = (s, e, REFUSED_USES);
        }
        let ok = kind == vma::Kind::PrivateAnon && self.uffd.register(a, len).is_ok();
        self.registrations += u64::from(ok);
        ok
    }

    /// True if `[a, a+len)` lies in a mapping found not to be private
    /// anonymous memory ([`RealMem::refused`]); spends one of its uses.
    fn known_refused(&mut self, a: usize, len: usize) -> bool {
        for r in self.refused.iter_mut() {
            if r.2 > 0 && r.0 <= a && a + len <= r.1 {
                r.2 -= 1;
                return true;
            }
        }
        false
    }
}

impl Mem for RealMem {
    fn read(&self, addr: usize, out: &mut [u8]) {
        // SAFETY: the engine only reads originals, which are mapped and
        // present while they have dependents (see `crate::engine`).
        unsafe { core::ptr::copy_nonoverlapping(addr as *const u8, out.as_mut_ptr(), out.len()) };
    }

    fn make_missing(&mut self, a: usize, len: usize) -> bool {
        if self.pinned(a, len) || super::forking() || self.known_refused(a, len) {
            return false;
        }
        // Registration must be certain: an unregistered page discarded
        // below would silently read back as zeros.
        let registered = self.registered(a, len);
        self.discard_registered(a, len, registered)
    }

    fn make_missing_again(&mut self, a: usize, len: usize) -> bool {
        // `still_missing` just found it not registered (the allocator
        // unmapped and mapped it again): register it without asking again.
        if self.pinned(a, len) || super::forking() {
            return false;
        }
        self.discard_registered(a, len, false)
    }

    fn forget(&mut self, a: usize, len: usize) {
        // What the program maps there next is asked about afresh.
        for r in self.refused.iter_mut() {
            if r.0 < a + len && a < r.1 {
                *r = (0, 0, 0);
            }
        }
    }

    fn private_writable(&mut self, a: usize, len: usize) -> bool {
        vma::classify(a, a + len) == vma::Kind::PrivateAnon
    }

    fn still_missing(&mut self, a: usize, len: usize) -> bool {
        // Registered pages zio left missing become present only through zio
        // (a fault it serves, a fill it makes).
        self.registered(a, len)
    }

    fn release(&mut self, page: usize, a: usize, b: usize) -> bool {
        let Some((vs, ve)) = crate::vma::mapping(page) else {
            return false;
        };
        let (a, b) = (a.max(vs), b.min(ve));
        if self.uffd.unregister(a, b - a).is_err() {
            return false;
        }
        // The kernel woke the waiters on unregistering; once more is
        // harmless (and fails quietly now that the range is not ours).
        let _ = self.uffd.wake(page, PAGE);
        true
    }

    fn fill(&mut self, page: usize, data: &[u8]) -> bool {
        self.fill_from(page, data.as_ptr() as usize, data.len())
    }

    fn fill_from(&mut self, page: usize, src: usize, len: usize) -> bool {
        // The kernel reads `src` like `read` does: an original, present
        // while it has dependents, or zio's own memory.
        match self.uffd.copy(page, src as *const u8, len) {
            Ok(()) => true,
            Err(e) => {
                zio_log!(
                    fill_error_level(e),
                    "UFFDIO_COPY of {} pages at {page:#x} failed: {}",
                    len / PAGE,
                    uffd::errno_name(e)
                );
                // The pieces stay, so a thread waiting here faults again
                // and the next attempt fills the page; asleep it would wait
                // for good.
                let _ = self.uffd.wake(page, len);
                false
            }
        }
    }

    fn zero_run(&mut self, a: usize, len: usize) {
        if let Err(e) = self.uffd.zeropage_run(a, len) {
            let level = fill_error_level(e);
            zio_log!(
                level,
                "UFFDIO_ZEROPAGE at {a:#x} failed: {}",
                uffd::errno_name(e)
            );
            // Whoever waits there faults again rather than sleep for good.
            let _ = self.uffd.wake(a, PAGE);
        }
    }

    fn read_plain(&mut self, addr: usize, out: &mut [u8]) {
        // SAFETY: the engine holds the lock and nothing of zio's in these
        // pages (the trait's contract); they hold the source of the copy
        // being decided, which the program has mapped.
        unsafe { super::plain_access::read(addr, out) };
    }

    fn write_plain(&mut self, addr: usize, data: &[u8]) {
        // SAFETY: the lock is held and zio holds nothing in these pages
        // (the trait's contract); the engine writes only a redirected
        // input's own buffer there, released (unprotected) before.
        unsafe { super::plain_access::write(addr, data) };
    }

    fn zero_range(&mut self, a: usize, len: usize) {
        self.zero_registered(a, len, Uffd::zero_writable);
    }

    fn zero_if_missing(&mut self, a: usize, len: usize) {
        // A zero page, not a fresh one: a present page then costs no
        // allocation, and a missing one its write's copy-on-write fault.
        self.zero_registered(a, len, Uffd::zeropage_present_ok);
    }

    fn backup(&mut self, src: usize, len: usize) -> Option<usize> {
        let addr = self.own(len)?;
        // SAFETY: `src` is an original (present); `addr` is ours, at least
        // `len` bytes, and the two cannot overlap.
        unsafe { core::ptr::copy_nonoverlapping(src as *const u8, addr as *mut u8, len) };
        Some(addr)
    }

    fn own(&mut self, len: usize) -> Option<usize> {
        let size = page_up(len);
        if let Some(a) = self.spare.get_mut(&size).and_then(Vec::pop) {
            self.spare_bytes -= size;
            return Some(a);
        }
        let p = crate::heap::map(size);
        (!p.is_null()).then_some(p as usize)
    }

    fn write(&mut self, addr: usize, data: &[u8]) {
        // SAFETY: the engine passes present, unprotected program memory it
        // has just released for this write (see `input_redirected`).
        unsafe { core::ptr::copy_nonoverlapping(data.as_ptr(), addr as *mut u8, data.len()) };
    }

    fn backup_release(&mut self, addr: usize, len: usize) {
        let size = page_up(len);
        if self.spare_bytes + size <= SPARE_MAX {
            self.spare.entry(size).or_default().push(addr);
            self.spare_bytes += size;
        } else {
            // SAFETY: a whole backup mapping that nothing points into now.
            unsafe { libc::munmap(addr as *mut libc::c_void, size) };
        }
    }

    fn pinned(&self, a: usize, len: usize) -> bool {
        crate::pins::overlaps(a, len)
    }

    fn protect(&mut self, a: usize, len: usize, on: bool) -> bool {
        if on {
            if self.pinned(a, len) {
                return false;
            }
            // Already registered (the common case for a reused buffer): one
            // call. Otherwise check, register, and protect.
            self.uffd.writeprotect(a, len, true).is_ok()
                || (self.register_checked(a, len) && self.uffd.writeprotect(a, len, true).is_ok())
        } else {
            // Also wakes writers waiting on these pages; if refused, they
            // are woken anyway, to fault again and be served again.
            if self.uffd.writeprotect(a, len, false).is_err() {
                let _ = self.uffd.wake(a, len);
            }
            true
        }
    }
}

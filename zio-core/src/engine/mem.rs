//! The engine's only door to memory: the operations it asks of the address
//! space, implemented by the real process (userfaultfd, `crate::elide`) and
//! by the model tests' simulation.

/// Memory operations the engine needs. Addresses are page-aligned where the
/// name says "page" or the doc says so.
pub trait Mem {
    /// Reads present memory (originals) into `out`.
    fn read(&self, addr: usize, out: &mut [u8]);
    /// Makes the page-aligned `[a, a+len)` elidable and drops its contents:
    /// checks it is private anonymous memory, registers it for missing
    /// faults, and discards its pages, so that its next access is a fault
    /// the engine answers. Returns false, changing nothing, if the range
    /// cannot be elided into.
    fn make_missing(&mut self, a: usize, len: usize) -> bool;
    /// Fills the missing pages from `page` with `data` (whole pages),
    /// atomically: no thread sees a page half filled. Returns false if the
    /// pages could not be filled (they stay missing; waiters are woken to
    /// fault again).
    fn fill(&mut self, page: usize, data: &[u8]) -> bool;
    /// As [`Mem::fill`], with the data read from the present memory at
    /// `src` (an original).
    fn fill_from(&mut self, page: usize, src: usize, len: usize) -> bool {
        let mut buf = vec![0; len];
        self.read(src, &mut buf);
        self.fill(page, &buf)
    }
    /// Maps zero pages from the missing page `a` on, up to `len` bytes,
    /// stopping at the first page that is present (or not registered).
    fn zero_run(&mut self, a: usize, len: usize);
    /// zio needs nothing of the page-aligned `[a, b)` around the missing
    /// page `page` (no piece, original or protection there): stop handling
    /// its faults, as much of it as lies in `page`'s mapping, and wake
    /// whoever waits on `page`. Returns false if that could not be done.
    fn release(&mut self, page: usize, a: usize, b: usize) -> bool;
    /// Maps zeroed, writable pages over the page-aligned `[a, a+len)`,
    /// which zio knows to be missing: what uses them next (an input, the
    /// allocator's next user) writes them without a fault, neither a
    /// userfaultfd round trip nor a copy-on-write fault of a zero page.
    /// Present pages in the range are left alone.
    fn zero_range(&mut self, a: usize, len: usize);
    /// Maps zero pages wherever the page-aligned `[a, a+len)` is missing
    /// without zio knowing (the allocator discarded it behind zio's back),
    /// so that zio's own access there under its lock cannot wait for the
    /// fault handler. Such pages are nearly always present and are then
    /// only asked about: no page is allocated for them.
    fn zero_if_missing(&mut self, a: usize, len: usize);
    /// Write-protects (`on`) or unprotects the page-aligned `[a, a+len)`,
    /// registering it first if needed. Returns false if refused.
    fn protect(&mut self, a: usize, len: usize, on: bool) -> bool;
    /// The program unmapped `[a, a+len)`: forget what is known about it.
    fn forget(&mut self, _a: usize, _len: usize) {}
    /// Reads the program's plain memory at `addr` into `out` (a few pages
    /// at most) under zio's lock, where zio holds nothing: no pieces, no
    /// pages left unfilled. A page there that was discarded behind zio's
    /// back (registered and missing) reads as zeros, as the kernel would
    /// map it, instead of waiting for a handler that needs this lock.
    fn read_plain(&mut self, addr: usize, out: &mut [u8]);
    /// Writes `data` into the program's plain, unprotected memory at
    /// `addr` (a page at most) under zio's lock, where zio holds nothing,
    /// as [`Mem::read_plain`] reads it: a page discarded behind zio's back
    /// gets zeros first.
    fn write_plain(&mut self, addr: usize, data: &[u8]);
    /// True if the page-aligned `[a, a+len)`, which zio left missing when it
    /// was freed, can still be elided into as it is: still the registered
    /// memory zio left there (the allocator may have unmapped and mapped it
    /// again behind zio's back).
    fn still_missing(&mut self, a: usize, len: usize) -> bool;
    /// True if the page-aligned `[a, a+len)` is all the program's private,
    /// anonymous, writable memory: where an input zio lands elsewhere can
    /// be written afterwards (asked of memory zio knows nothing of now).
    fn private_writable(&mut self, a: usize, len: usize) -> bool;
    /// As [`Mem::make_missing`], for a range [`Mem::still_missing`] just
    /// found not to be what zio left there: what it learned need not be
    /// asked again.
    fn make_missing_again(&mut self, a: usize, len: usize) -> bool {
        self.make_missing(a, len)
    }
    /// Copies the `len` bytes at `src` (present memory) into memory zio
    /// owns and returns its address; `None` if none can be had.
    fn backup(&mut self, src: usize, len: usize) -> Option<usize>;
    /// `len` bytes of memory zio owns (present, contents undefined), given
    /// back with [`Mem::backup_release`]; `None` if none can be had.
    fn own(&mut self, len: usize) -> Option<usize>;
    /// Writes `data` to present, unprotected program memory at `addr`.
    fn write(&mut self, addr: usize, data: &[u8]);
    /// Gives back a backup's memory.
    fn backup_release(&mut self, addr: usize, len: usize);
    /// True if any of `[a, a+len)` is pinned by the kernel or a device
    /// ([`crate::pins`]): [`Mem::make_missing`] and [`Mem::protect`] refuse
    /// it, and no input is redirected away from it.
    fn pinned(&self, _a: usize, _len: usize) -> bool {
        false
    }
}

//! The bridge between user-space IO stacks and zio: a safe Rust API over
//! libzio.so's contract (`libzio/include/zio.h`), found at run time, a
//! no-op when zio is not loaded.
//!
//! zio removes the copies a program makes inside itself. A user-space IO
//! stack whose buffers live in the program's memory (a socket ring, a
//! shared-memory sample) can let zio remove the copies at its API too:
//!
//! - [`Bridge::register`]: the stack received bytes into its own memory
//!   and lends them to zio as an original; the program's copies of them
//!   are then elided like copies of a `read`. zio does not write-protect
//!   lent memory: the stack promises to release it before changing it.
//! - [`Bridge::release`]: before the stack overwrites, frees or unmaps lent
//!   memory. Copies still reading it get their bytes first; while an output
//!   in flight sends from it, the answer is [`Released::Hold`].
//! - [`Bridge::resolve`] and [`Bridge::gather`]: before the stack copies a
//!   program buffer into its transmit memory, where the buffer's bytes
//!   really are (elided copies point at their originals).
//!
//! Without zio (not preloaded, or a version this crate does not know),
//! register answers false, release answers [`Released::Done`], and resolve
//! answers the buffer itself: the same program runs, byte for byte.
//!
//! Adapters: `smoltcp` (feature `smoltcp`), a TCP socket over rings the
//! bridge manages; `iceoryx2` (feature `iceoryx2`), a subscriber lending
//! its samples and a publisher gathering through the bridge.

#![deny(missing_docs)]

#[cfg(feature = "iceoryx2")]
pub mod iceoryx2;
mod pages;
#[cfg(feature = "smoltcp")]
pub mod smoltcp;

pub use pages::{PageBuf, PAGE};

use core::ffi::{c_int, c_uint, c_void, CStr};
use std::ffi::CString;
use std::marker::PhantomData;
use std::sync::OnceLock;
use std::time::Duration;

/// The contract version this crate speaks (`ZIO_CONTRACT_VERSION`):
/// major × 100 + minor. A library of another major version is not used.
pub const CONTRACT_VERSION: u32 = 100;

/// Originals one resolution can pin (`ZIO_RESOLVE_PINS`).
const RESOLVE_PINS: usize = 8;

/// Segments a [`Resolved`] holds (more: the buffer itself is the answer).
pub const RESOLVE_SEGS: usize = 16;

/// `struct zio_seg`.
#[repr(C)]
#[derive(Clone, Copy)]
struct Seg {
    base: *const c_void,
    len: usize,
}

/// `struct zio_resolution`.
#[repr(C)]
#[derive(Clone, Copy, Default)]
struct Resolution {
    npins: u32,
    pins: [u32; RESOLVE_PINS],
    resolved: usize,
}

type RegisterFn = unsafe extern "C" fn(*const c_void, usize) -> c_int;
type ReleaseFn = unsafe extern "C" fn(*const c_void, usize, u64) -> c_int;
type ResolveFn =
    unsafe extern "C" fn(*const c_void, usize, *mut Seg, usize, *mut Resolution) -> usize;
type ResolveEndFn = unsafe extern "C" fn(*mut Resolution);
type CounterFn = unsafe extern "C" fn(*const core::ffi::c_char) -> i64;
type PinFn = unsafe extern "C" fn(*const c_void, usize) -> c_int;
type UnpinFn = unsafe extern "C" fn(*const c_void) -> c_int;

/// libzio's functions, when it is loaded and speaks this contract.
#[derive(Clone, Copy)]
struct Fns {
    register: RegisterFn,
    release: ReleaseFn,
    resolve: ResolveFn,
    resolve_end: ResolveEndFn,
    counter: CounterFn,
    pin: PinFn,
    unpin: UnpinFn,
}

/// The answer of [`Bridge::release`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Released {
    /// The memory is the stack's again: it may change it.
    Done,
    /// An output in flight still reads it: keep it unchanged and ask again.
    Hold,
}

/// The contract, as found in this process.
pub struct Bridge {
    fns: Option<Fns>,
}

/// The function `name`, looked up in the process's global scope, as the
/// function pointer type `F`.
///
/// # Safety
/// `F` is a function pointer type of the signature `name` has.
unsafe fn sym<F: Copy>(name: &CStr) -> Option<F> {
    // SAFETY: a NUL-terminated name; RTLD_DEFAULT searches the loaded
    // objects.
    let p = unsafe { libc::dlsym(libc::RTLD_DEFAULT, name.as_ptr()) };
    if p.is_null() {
        return None;
    }
    assert_eq!(
        core::mem::size_of::<F>(),
        core::mem::size_of::<*mut c_void>()
    );
    // SAFETY: the caller's contract: `F` is a function pointer of that
    // function's signature, which on Linux is a data pointer's size.
    Some(unsafe { core::mem::transmute_copy::<*mut c_void, F>(&p) })
}

impl Bridge {
    /// The process's bridge: libzio's contract if zio is preloaded and of
    /// this major version, else the no-op one. Looked up once.
    pub fn get() -> &'static Bridge {
        static B: OnceLock<Bridge> = OnceLock::new();
        B.get_or_init(Bridge::find)
    }

    /// The no-op bridge, whatever is loaded (for side-by-side runs of one
    /// program with and without the bridge under zio).
    pub fn none() -> &'static Bridge {
        static NONE: Bridge = Bridge { fns: None };
        &NONE
    }

    fn find() -> Bridge {
        let fns = (|| {
            // SAFETY: `zio_contract_version` has this signature in every
            // version of zio.h.
            let version: unsafe extern "C" fn() -> c_uint =
                unsafe { sym(c"zio_contract_version")? };
            // SAFETY: no arguments, no preconditions.
            if unsafe { version() } / 100 != CONTRACT_VERSION / 100 {
                return None;
            }
            // SAFETY: each type is the signature zio.h gives that name in
            // the contract version just checked.
            unsafe {
                Some(Fns {
                    register: sym(c"zio_register")?,
                    release: sym(c"zio_release")?,
                    resolve: sym(c"zio_resolve")?,
                    resolve_end: sym(c"zio_resolve_end")?,
                    counter: sym(c"zio_counter")?,
                    pin: sym(c"zio_pin")?,
                    unpin: sym(c"zio_unpin")?,
                })
            }
        })();
        Bridge { fns }
    }

    /// True if zio is loaded and speaks this contract.
    pub fn is_active(&self) -> bool {
        self.fns.is_some()
    }

    /// Lends `[ptr, ptr+len)`, which holds bytes the stack received, to zio
    /// as an original. True if zio took it; false without zio, or if zio
    /// does not elide in this process.
    ///
    /// # Safety
    /// The stack must call [`Bridge::release`] on this memory before it
    /// changes, frees or unmaps it: zio's elided copies read it until then.
    pub unsafe fn register(&self, ptr: *const u8, len: usize) -> bool {
        match self.fns {
            // SAFETY: libzio's function; it only records the range.
            Some(f) => unsafe { (f.register)(ptr.cast(), len) == 1 },
            None => false,
        }
    }

    /// Takes `[ptr, ptr+len)` back (safe for memory never lent): once
    /// [`Released::Done`], the stack may change it. Waits about `wait` for
    /// outputs in flight before answering [`Released::Hold`].
    pub fn release(&self, ptr: *const u8, len: usize, wait: Duration) -> Released {
        let Some(f) = self.fns else {
            return Released::Done;
        };
        let ns = u64::try_from(wait.as_nanos()).unwrap_or(u64::MAX);
        // SAFETY: libzio's function; it reads no memory of the range itself
        // beyond what zio lent and tracks.
        match unsafe { (f.release)(ptr.cast(), len, ns) } {
            0 => Released::Done,
            _ => Released::Hold,
        }
    }

    /// Where the bytes of `buf` really are, for a transmit: the segments of
    /// the answer, read in order, hold `buf`'s bytes; the originals they
    /// name stay unchanged until the [`Resolved`] is dropped.
    pub fn resolve<'a>(&self, buf: &'a [u8]) -> Resolved<'a> {
        let mut r = Resolved {
            buf: PhantomData,
            segs: [Seg {
                base: core::ptr::null(),
                len: 0,
            }; RESOLVE_SEGS],
            n: 0,
            res: Resolution::default(),
            end: None,
        };
        if buf.is_empty() {
            return r;
        }
        let Some(f) = self.fns else {
            r.segs[0] = Seg {
                base: buf.as_ptr().cast(),
                len: buf.len(),
            };
            r.n = 1;
            return r;
        };
        // SAFETY: RESOLVE_SEGS writable segments and a writable resolution.
        r.n = unsafe {
            (f.resolve)(
                buf.as_ptr().cast(),
                buf.len(),
                r.segs.as_mut_ptr(),
                RESOLVE_SEGS,
                &mut r.res,
            )
        };
        r.end = Some(f.resolve_end);
        r
    }

    /// Copies `src` into `dst` (of the same length) from wherever `src`'s
    /// bytes really are: a stack's transmit copy.
    ///
    /// # Panics
    /// If the lengths differ, as `copy_from_slice` does.
    pub fn gather(&self, dst: &mut [u8], src: &[u8]) {
        assert_eq!(dst.len(), src.len(), "gather: lengths differ");
        let r = self.resolve(src);
        let mut at = 0;
        for seg in r.segments() {
            dst[at..at + seg.len()].copy_from_slice(seg);
            at += seg.len();
        }
        debug_assert_eq!(at, src.len());
    }

    /// Tells zio that a device (or the stack's own frame copies, which zio
    /// does not see) reads `[ptr, ptr+len)`: zio never elides into it, so
    /// what the stack gathers there is really there. Until
    /// [`Bridge::unpin`] of `ptr`.
    pub fn pin(&self, ptr: *const u8, len: usize) {
        if let Some(f) = self.fns {
            // SAFETY: libzio's function; it only records the range.
            unsafe { (f.pin)(ptr.cast(), len) };
        }
    }

    /// Ends [`Bridge::pin`] of `ptr`.
    pub fn unpin(&self, ptr: *const u8) {
        if let Some(f) = self.fns {
            // SAFETY: libzio's function; it only drops the record.
            unsafe { (f.unpin)(ptr.cast()) };
        }
    }

    /// The zio counter `name` (`elided_copies`, `bytes_lent`, ...), or
    /// `None` without zio or before its engine starts.
    pub fn counter(&self, name: &str) -> Option<u64> {
        let f = self.fns?;
        let name = CString::new(name).ok()?;
        // SAFETY: a NUL-terminated name.
        let v = unsafe { (f.counter)(name.as_ptr()) };
        u64::try_from(v).ok()
    }
}

/// Where a buffer's bytes are ([`Bridge::resolve`]); the originals it names
/// are pinned until it is dropped.
pub struct Resolved<'a> {
    /// The buffer resolved, which a segment may be.
    buf: PhantomData<&'a [u8]>,
    segs: [Seg; RESOLVE_SEGS],
    n: usize,
    res: Resolution,
    end: Option<ResolveEndFn>,
}

impl Resolved<'_> {
    /// The segments, in order; together `buf`'s bytes.
    pub fn segments(&self) -> impl Iterator<Item = &[u8]> + '_ {
        self.segs[..self.n].iter().map(|s| {
            // SAFETY: zio answered runs of readable memory holding the
            // buffer's bytes (or the buffer itself), kept unchanged while
            // this resolution lives.
            unsafe { core::slice::from_raw_parts(s.base.cast::<u8>(), s.len) }
        })
    }

    /// Bytes the segments take from originals rather than from the buffer.
    pub fn resolved_bytes(&self) -> usize {
        self.res.resolved
    }
}

impl Drop for Resolved<'_> {
    fn drop(&mut self) {
        if let Some(end) = self.end {
            // SAFETY: a resolution zio filled and nothing ended yet.
            unsafe { end(&mut self.res) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Without zio (unit tests do not preload it) the bridge is the no-op
    /// one: nothing is lent, release is immediate, resolve is the buffer.
    #[test]
    fn without_zio_everything_is_the_plain_operation() {
        let b = Bridge::get();
        assert!(!b.is_active());
        let data: Vec<u8> = (0..10_000u32).map(|i| i as u8).collect();
        // SAFETY: released below, nothing changes it before.
        assert!(!unsafe { b.register(data.as_ptr(), data.len()) });
        let r = b.resolve(&data);
        assert_eq!(r.segments().count(), 1);
        assert_eq!(r.segments().next().unwrap(), &data[..]);
        assert_eq!(r.resolved_bytes(), 0);
        drop(r);
        let mut out = vec![0u8; data.len()];
        b.gather(&mut out, &data);
        assert_eq!(out, data);
        assert_eq!(
            b.release(data.as_ptr(), data.len(), Duration::ZERO),
            Released::Done
        );
        assert_eq!(b.counter("elided_copies"), None);
    }
}

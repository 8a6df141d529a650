//! The caller's buffers as the IO hooks see them: iovecs walked in place
//! once they are known readable, and the bytes a call moved.

use core::ffi::{c_int, c_uint};
use core::mem::size_of;
use core::ptr;

use libc::{iovec, mmsghdr, msghdr, ssize_t};
use smallvec::SmallVec;
use zio_core::usermem;

/// The most pieces one vector call takes (the kernel's `UIO_MAXIOV`).
pub(crate) const IOV_MAX: usize = 1024;

/// Bytes moved according to a read/write style return value.
#[inline(always)]
pub(crate) fn io(ret: ssize_t) -> u64 {
    if ret > 0 {
        ret as u64
    } else {
        0
    }
}

/// The messages of an `mmsghdr` vector, their iovecs walked in place.
#[derive(Clone)]
pub(crate) struct Messages {
    m: *const mmsghdr,
    next: usize,
    n: usize,
}

/// The `n` messages at `m`, or `None` (pass the call through untouched) if
/// the vector, a header or an iovec cannot be read, or a count is one the
/// kernel refuses.
///
/// # Safety
/// As for [`Iov::new`], for every message.
pub(crate) unsafe fn messages(m: *const mmsghdr, n: c_uint) -> Option<Messages> {
    let n = n as usize;
    if n > IOV_MAX || !usermem::readable(m as usize, n * size_of::<mmsghdr>()) {
        return None;
    }
    let all = Messages { m, next: 0, n };
    // SAFETY: the vector is readable; `Iov::of` checks each header.
    let ok = (0..n).all(|i| unsafe { Iov::of(ptr::addr_of!((*m.add(i)).msg_hdr)) }.is_some());
    ok.then_some(all)
}

impl Iterator for Messages {
    type Item = Iov;

    fn next(&mut self) -> Option<Iov> {
        if self.next == self.n {
            return None;
        }
        // SAFETY: `messages` found this header and its iovec readable.
        let v = unsafe { Iov::of(ptr::addr_of!((*self.m.add(self.next)).msg_hdr)) };
        self.next += 1;
        v
    }
}

/// Bytes moved by the first `ret` messages of an `mmsghdr` vector.
///
/// # Safety
/// `v` must hold at least `ret` entries when `ret > 0`.
#[inline]
pub(crate) unsafe fn mmsg_bytes(v: *const mmsghdr, ret: c_int) -> u64 {
    let mut total = 0u64;
    for i in 0..ret.max(0) as usize {
        // SAFETY: the kernel filled `ret` entries of the caller's vector
        // (perhaps misaligned: read without forming a reference).
        total += u64::from(unsafe { ptr::read_unaligned(ptr::addr_of!((*v.add(i)).msg_len)) });
    }
    total
}

/// A caller's iovec array, walked in place as `(base, len)` pairs: reading
/// it builds nothing, so the pass-through path can afford it.
#[derive(Clone)]
pub(crate) struct Iov {
    at: *const iovec,
    left: usize,
}

impl Iov {
    /// The iovec argument of a vector call, `cnt` entries at `v`; `None`
    /// (pass the call through untouched: the kernel answers it) if the
    /// kernel refuses the count (negative, or over `IOV_MAX`, checked
    /// before the array is read) or the array cannot be read.
    ///
    /// # Safety
    /// The entries, once found readable, stay so while the result is used
    /// (a program unmapping them from another thread meanwhile is racing
    /// with its own call).
    pub(crate) unsafe fn new(v: *const iovec, cnt: c_int) -> Option<Iov> {
        let n = usize::try_from(cnt).ok().filter(|&n| n <= IOV_MAX)?;
        usermem::readable(v as usize, n * size_of::<iovec>()).then_some(Iov { at: v, left: n })
    }

    /// The iovec of the message `m`; `None` as for [`Iov::new`], or if the
    /// header itself cannot be read.
    ///
    /// # Safety
    /// As for [`Iov::new`], for the header and its iovec.
    pub(crate) unsafe fn of(m: *const msghdr) -> Option<Iov> {
        if !usermem::readable(m as usize, size_of::<msghdr>()) {
            return None;
        }
        // SAFETY: the header is readable (perhaps misaligned: read field by
        // field, without forming a reference).
        let (at, left) = unsafe {
            (
                ptr::read_unaligned(ptr::addr_of!((*m).msg_iov)),
                ptr::read_unaligned(ptr::addr_of!((*m).msg_iovlen)),
            )
        };
        // SAFETY: the caller's contract, passed on.
        unsafe { Iov::new(at, c_int::try_from(left).unwrap_or(-1)) }
    }

    /// Bytes the buffers hold (saturating: the kernel refuses a total
    /// beyond `ssize_t` anyway).
    pub(crate) fn total(self) -> usize {
        self.fold(0, |t, (_, n)| t.saturating_add(n))
    }

    /// Calls `got(base, n)` for each buffer that `r` bytes received filled,
    /// in order, the last one perhaps in part: how an input call spreads
    /// its bytes over an iovec.
    pub(crate) fn fill(self, mut r: usize, mut got: impl FnMut(usize, usize)) {
        for (a, n) in self {
            if r == 0 {
                break;
            }
            let k = n.min(r);
            got(a, k);
            r -= k;
        }
    }

    /// The pairs collected for the engine, which takes a slice: only when
    /// it is needed, and inline for short arrays.
    pub(crate) fn pieces(self) -> SmallVec<[(usize, usize); 8]> {
        self.collect()
    }
}

impl Iterator for Iov {
    type Item = (usize, usize);

    fn next(&mut self) -> Option<(usize, usize)> {
        if self.left == 0 {
            return None;
        }
        // SAFETY: `Iov::new` found the `left` entries from `at` readable
        // (perhaps misaligned: read without forming a reference).
        let (base, len) = unsafe {
            (
                ptr::read_unaligned(ptr::addr_of!((*self.at).iov_base)),
                ptr::read_unaligned(ptr::addr_of!((*self.at).iov_len)),
            )
        };
        self.at = self.at.wrapping_add(1);
        self.left -= 1;
        Some((base as usize, len))
    }
}

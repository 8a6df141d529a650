//! The caller's buffers as the IO hooks see them: iovecs walked in place,
//! and the bytes a call moved.

use core::ffi::c_int;

use libc::{iovec, mmsghdr, msghdr, ssize_t};
use smallvec::SmallVec;

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

/// Bytes moved by the first `ret` messages of an `mmsghdr` vector.
///
/// # Safety
/// `v` must hold at least `ret` entries when `ret > 0`.
#[inline]
pub(crate) unsafe fn mmsg_bytes(v: *const mmsghdr, ret: c_int) -> u64 {
    let mut total = 0u64;
    for i in 0..ret.max(0) as usize {
        // SAFETY: the kernel filled `ret` entries of the caller's vector.
        total += u64::from(unsafe { (*v.add(i)).msg_len });
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
    /// The iovec argument of a vector call: `cnt` entries at `v` (none if
    /// `cnt` is negative; the kernel refuses the call then).
    ///
    /// # Safety
    /// `v` holds `cnt` valid entries, which stay valid while the result is
    /// used.
    pub(crate) unsafe fn new(v: *const iovec, cnt: c_int) -> Iov {
        Iov {
            at: v,
            left: cnt.max(0) as usize,
        }
    }

    /// The iovec of the message `m`.
    ///
    /// # Safety
    /// `m` is a valid msghdr with a valid iovec, which stays valid while the
    /// result is used.
    pub(crate) unsafe fn of(m: *const msghdr) -> Iov {
        // SAFETY: the caller's message is valid.
        let (at, left) = unsafe { ((*m).msg_iov as *const iovec, (*m).msg_iovlen) };
        Iov { at, left }
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
        // SAFETY: `Iov::new`'s contract: `at` is the first of `left` valid
        // entries.
        let e = unsafe { &*self.at };
        self.at = self.at.wrapping_add(1);
        self.left -= 1;
        Some((e.iov_base as usize, e.iov_len))
    }
}

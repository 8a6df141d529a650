//! The input hooks (the `read`, `pread` and `recv` families, into one
//! buffer or an iovec): where received bytes land, and their recording as
//! originals.

use core::ffi::{c_int, c_uint, c_void};

use libc::{iovec, mmsghdr, msghdr, off_t, sockaddr, socklen_t, ssize_t, timespec};
use zio_core::stats::{self, Hook};
use zio_core::{elide, real};

use crate::iov::{io, mmsg_bytes, Iov};

/// Input hooks into one buffer: prepare the target, call, record the bytes
/// received as an original.
macro_rules! input_hooks {
    ($( $name:ident ( $($a:ident : $t:ty),* ), $hook:ident, $buf:ident, $len:ident; )*) => {$(
        #[doc = concat!("Exported `", stringify!($name), "`: an input call into one buffer.")]
        #[no_mangle]
        pub unsafe extern "C" fn $name($($a: $t),*) -> ssize_t {
            if !elide::input_needs_engine($len) {
                // SAFETY: the caller's contract.
                let r = unsafe { real::$name($($a),*) };
                stats::count(Hook::$hook, io(r));
                return r;
            }
            let at = $buf as usize;
            // A reused input buffer's bytes land in zio's memory instead.
            let redirect = elide::input_begin(at, $len);
            let $buf = match redirect {
                Some(to) => to.to as *mut c_void,
                None => $buf,
            };
            // SAFETY: the caller's contract; a redirected call reads into
            // zio's memory of at least `$len` bytes.
            let r = unsafe { real::$name($($a),*) };
            elide::input_end(at, $len, redirect, r);
            stats::count(Hook::$hook, io(r));
            r
        }

        twin!($name ($($a: $t),*) -> ssize_t);
    )*};
}

input_hooks! {
    read (fd: c_int, b: *mut c_void, n: usize), Read, b, n;
    __read_chk (fd: c_int, b: *mut c_void, n: usize, bl: usize), ReadChk, b, n;
    pread (fd: c_int, b: *mut c_void, n: usize, o: off_t), Pread, b, n;
    pread64 (fd: c_int, b: *mut c_void, n: usize, o: off_t), Pread64, b, n;
    __pread_chk (fd: c_int, b: *mut c_void, n: usize, o: off_t, bl: usize), PreadChk, b, n;
    __pread64_chk (fd: c_int, b: *mut c_void, n: usize, o: off_t, bl: usize), Pread64Chk, b, n;
    recv (fd: c_int, b: *mut c_void, n: usize, f: c_int), Recv, b, n;
    __recv_chk (fd: c_int, b: *mut c_void, n: usize, bl: usize, f: c_int), RecvChk, b, n;
    recvfrom (fd: c_int, b: *mut c_void, n: usize, f: c_int, a: *mut sockaddr, al: *mut socklen_t), Recvfrom, b, n;
    __recvfrom_chk (fd: c_int, b: *mut c_void, n: usize, bl: usize, f: c_int, a: *mut sockaddr, al: *mut socklen_t), RecvfromChk, b, n;
}

/// Input into the iovecs of one message or several (`msgs`): when the engine
/// may be needed, every buffer is prepared before the call, and after it
/// the bytes each message received (`received(r, i)` for message `i` of a
/// call that returned `r`; `None` past the last one filled) are recorded
/// buffer by buffer, in order. Otherwise the call alone, with nothing built.
fn vec_input<R: Copy>(
    msgs: impl Iterator<Item = Iov> + Clone,
    call: impl FnOnce() -> R,
    received: impl Fn(R, usize) -> Option<usize>,
) -> R {
    // Inactive (ZIO_ENABLE=0, no userfaultfd): not even the walk.
    if !elide::active()
        || !elide::input_needs_engine(msgs.clone().fold(0, |t, v| t.saturating_add(v.total())))
    {
        return call();
    }
    for (a, n) in msgs.clone().flatten() {
        elide::input_prepare(a, n);
    }
    let r = call();
    for (i, v) in msgs.enumerate() {
        match received(r, i) {
            Some(got) => v.fill(got, elide::input_done),
            None => break,
        }
    }
    r
}

/// [`vec_input`] of one iovec, whose call returns the bytes received.
///
/// # Safety
/// `v` holds `cnt` valid entries.
unsafe fn iov_input(v: *const iovec, cnt: c_int, call: impl FnOnce() -> ssize_t) -> ssize_t {
    // SAFETY: the caller's array.
    let iov = unsafe { Iov::new(v, cnt) };
    vec_input(core::iter::once(iov), call, |r, _| {
        (r > 0).then_some(r as usize)
    })
}

hooks! {
    /// Exported `readv`.
    fn readv(fd: c_int, v: *const iovec, c: c_int) -> ssize_t {
        // SAFETY: the caller's contract.
        let r = unsafe { iov_input(v, c, || real::readv(fd, v, c)) };
        stats::count(Hook::Readv, io(r));
        r
    }

    /// Exported `preadv`.
    fn preadv(fd: c_int, v: *const iovec, c: c_int, o: off_t) -> ssize_t {
        // SAFETY: the caller's contract.
        let r = unsafe { iov_input(v, c, || real::preadv(fd, v, c, o)) };
        stats::count(Hook::Preadv, io(r));
        r
    }

    /// Exported `preadv2`.
    fn preadv2(
        fd: c_int,
        v: *const iovec,
        c: c_int,
        o: off_t,
        f: c_int,
    ) -> ssize_t {
        // SAFETY: the caller's contract.
        let r = unsafe { iov_input(v, c, || real::preadv2(fd, v, c, o, f)) };
        stats::count(Hook::Preadv2, io(r));
        r
    }

    /// Exported `recvmsg`.
    fn recvmsg(fd: c_int, m: *mut msghdr, f: c_int) -> ssize_t {
        // SAFETY: the caller's msghdr and its iovec are valid.
        let iov = unsafe { Iov::of(m) };
        let r = vec_input(
            core::iter::once(iov),
            // SAFETY: the caller's contract.
            || unsafe { real::recvmsg(fd, m, f) },
            |r, _| (r > 0).then_some(r as usize),
        );
        stats::count(Hook::Recvmsg, io(r));
        r
    }

    /// Exported `recvmmsg`: each message's buffers are prepared and recorded.
    fn recvmmsg(
        fd: c_int,
        m: *mut mmsghdr,
        n: c_uint,
        f: c_int,
        t: *mut timespec,
    ) -> c_int {
        let r = vec_input(
            // SAFETY: the caller's vector holds `n` messages, each with a valid
            // iovec.
            (0..n as usize).map(|i| unsafe { Iov::of(&(*m.add(i)).msg_hdr) }),
            // SAFETY: the caller's contract.
            || unsafe { real::recvmmsg(fd, m, n, f, t) },
            // SAFETY: the kernel filled the first `r` entries' lengths.
            |r, i| (i < r.max(0) as usize).then(|| unsafe { (*m.add(i)).msg_len } as usize),
        );
        // SAFETY: `r` entries were filled.
        stats::count(Hook::Recvmmsg, unsafe { mmsg_bytes(m, r) });
        r
    }
}

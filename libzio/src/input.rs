//! The input hooks (the `read`, `pread` and `recv` families, into one
//! buffer or an iovec): where received bytes land, and their recording as
//! originals.

use core::ffi::{c_int, c_uint, c_void};

use libc::{iovec, mmsghdr, msghdr, off_t, sockaddr, socklen_t, ssize_t, timespec};
use zio_core::{elide, real};

use crate::iov::{io, messages, mmsg_bytes, Iov};

/// True if an input into the iovecs of one message or several (`msgs()`
/// walks them) may need the engine. Inactive (`ZIO_ENABLE=0`, no
/// userfaultfd): not even the walk.
#[inline(always)]
fn needs_engine<I: Iterator<Item = Iov>>(msgs: impl Fn() -> I) -> bool {
    elide::active() && elide::input_needs_engine(msgs().fold(0, |t, v| t.saturating_add(v.total())))
}

/// An input into the iovecs of one message or several (`msgs()` walks
/// them) that may need the engine: every buffer is prepared before the
/// call, and after it the bytes each message received (`received(r, i)`
/// for message `i` of a call that returned `r`; `None` past the last one
/// filled) are recorded buffer by buffer, in order.
fn vec_input<R: Copy, I: Iterator<Item = Iov>>(
    msgs: impl Fn() -> I,
    call: impl FnOnce() -> R,
    received: impl Fn(R, usize) -> Option<usize>,
) -> R {
    for (a, n) in msgs().flatten() {
        elide::input_prepare(a, n);
    }
    let r = call();
    for (i, v) in msgs().enumerate() {
        match received(r, i) {
            Some(got) => v.fill(got, elide::input_done),
            None => break,
        }
    }
    r
}

/// Input hooks. A line: `name (arguments), Hook, buf(buffer, length) or
/// vec(iovec);`. Into one buffer: prepare the target (or redirect the call
/// into zio's memory), call, record the bytes received as an original.
/// Into an iovec: the same per buffer, the bytes received spread over the
/// buffers in order. What needs the engine is out of line.
macro_rules! input_hooks {
    ($( $name:ident ( $($a:ident : $t:ty),* ), $hook:ident, $into:ident $what:tt; )*) => {$(
        io_hook!(
            #[doc = concat!("Exported `", stringify!($name), "`: received bytes are recorded as originals.")]
            fn $name($($a: $t),*) -> ssize_t,
            $hook, moved |r| io(r),
            if input_hooks!(@needs $into $what) => input_hooks!(@$into $what, real::$name($($a),*))
        );
    )*};
    (@needs buf ($buf:ident, $len:ident)) => {
        elide::input_needs_engine($len)
    };
    (@needs vec ($iov:expr)) => {
        // Inactive: the iovec is not even proved readable.
        elide::active()
            // SAFETY: the caller's iovec, read only if readable.
            && unsafe { $iov }.is_some_and(|v| needs_engine(|| core::iter::once(v.clone())))
    };
    (@buf ($buf:ident, $len:ident), $call:expr) => {{
        let at = $buf as usize;
        // A reused input buffer's bytes land in zio's memory instead.
        let redirect = elide::input_begin(at, $len);
        let $buf = match redirect {
            Some(to) => to.to as *mut c_void,
            None => $buf,
        };
        // SAFETY: the caller's contract; a redirected call reads into zio's
        // memory of at least `$len` bytes.
        let r = unsafe { $call };
        elide::input_end(at, $len, redirect, r);
        r
    }};
    (@vec ($iov:expr), $call:expr) => {
        // SAFETY: the caller's iovec, read only if readable.
        match unsafe { $iov } {
            Some(v) => vec_input(
                || core::iter::once(v.clone()),
                // SAFETY: the caller's contract.
                || unsafe { $call },
                |r, _| (r > 0).then_some(r as usize),
            ),
            // SAFETY: the caller's contract.
            None => unsafe { $call },
        }
    };
}

input_hooks! {
    read (fd: c_int, b: *mut c_void, n: usize), Read, buf(b, n);
    __read_chk (fd: c_int, b: *mut c_void, n: usize, bl: usize), ReadChk, buf(b, n);
    pread (fd: c_int, b: *mut c_void, n: usize, o: off_t), Pread, buf(b, n);
    pread64 (fd: c_int, b: *mut c_void, n: usize, o: off_t), Pread64, buf(b, n);
    __pread_chk (fd: c_int, b: *mut c_void, n: usize, o: off_t, bl: usize), PreadChk, buf(b, n);
    __pread64_chk (fd: c_int, b: *mut c_void, n: usize, o: off_t, bl: usize), Pread64Chk, buf(b, n);
    readv (fd: c_int, v: *const iovec, c: c_int), Readv, vec(Iov::new(v, c));
    preadv (fd: c_int, v: *const iovec, c: c_int, o: off_t), Preadv, vec(Iov::new(v, c));
    preadv2 (fd: c_int, v: *const iovec, c: c_int, o: off_t, f: c_int), Preadv2, vec(Iov::new(v, c));
    recv (fd: c_int, b: *mut c_void, n: usize, f: c_int), Recv, buf(b, n);
    __recv_chk (fd: c_int, b: *mut c_void, n: usize, bl: usize, f: c_int), RecvChk, buf(b, n);
    recvfrom (fd: c_int, b: *mut c_void, n: usize, f: c_int, a: *mut sockaddr, al: *mut socklen_t), Recvfrom, buf(b, n);
    __recvfrom_chk (fd: c_int, b: *mut c_void, n: usize, bl: usize, f: c_int, a: *mut sockaddr, al: *mut socklen_t), RecvfromChk, buf(b, n);
    recvmsg (fd: c_int, m: *mut msghdr, f: c_int), Recvmsg, vec(Iov::of(m));
}

io_hook! {
    /// Exported `recvmmsg`: each message's buffers are prepared, and
    /// recorded with the length the kernel reports for that message.
    fn recvmmsg(fd: c_int, m: *mut mmsghdr, n: c_uint, f: c_int, t: *mut timespec) -> c_int,
    Recvmmsg,
    // SAFETY: the kernel filled `r` entries.
    moved |r| unsafe { mmsg_bytes(m, r) },
    // SAFETY: the caller's vector, read only if readable (and only while
    // zio is active).
    if elide::active() && unsafe { messages(m, n) }.is_some_and(|v| needs_engine(|| v.clone())) => vec_input(
        // SAFETY: found readable by the test above.
        || unsafe { messages(m, n) }.into_iter().flatten(),
        // SAFETY: the caller's contract.
        || unsafe { real::recvmmsg(fd, m, n, f, t) },
        // SAFETY: the kernel filled the lengths of the first `r` entries.
        |r, i| (i < r.max(0) as usize).then(|| unsafe { (*m.add(i)).msg_len } as usize),
    )
}

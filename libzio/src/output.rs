//! The output hooks (the `write`, `pwrite` and `send` families, from one
//! buffer or an iovec): what goes out from originals in place of the
//! unmapped pieces of elided copies.

use core::ffi::{c_int, c_uint, c_void};

use libc::{iovec, mmsghdr, msghdr, off_t, sockaddr, socklen_t, ssize_t};
use smallvec::SmallVec;
use zio_core::engine::Gather;
use zio_core::stats::{self, Hook};
use zio_core::{elide, real};

use crate::iov::{io, mmsg_bytes, Iov, IOV_MAX};

/// The kernel's form of a gather list: inline for the usual one to three
/// runs, as the engine's `Gather` (a heap block per output call is slow:
/// the allocator's state is cold after the socket copies).
fn to_iovecs(iov: &[(usize, usize)]) -> SmallVec<[iovec; 4]> {
    iov.iter()
        .map(|&(a, n)| iovec {
            iov_base: a as *mut c_void,
            iov_len: n,
        })
        .collect()
}

/// Sends a gather list in `IOV_MAX` chunks with `call(iov, cnt, done)`
/// (`done` = bytes already written, for offsets). Stops at the first short
/// write or error, returning what was written, as a single large write
/// would; an error before any byte is returned as is.
fn send_chunks(
    iov: &[(usize, usize)],
    mut call: impl FnMut(*const iovec, c_int, usize) -> ssize_t,
) -> ssize_t {
    let v = to_iovecs(iov);
    let mut done = 0usize;
    for chunk in v.chunks(IOV_MAX) {
        let want: usize = chunk.iter().map(|x| x.iov_len).sum();
        let r = call(chunk.as_ptr(), chunk.len() as c_int, done);
        if r < 0 {
            return if done > 0 { done as ssize_t } else { r };
        }
        done += r as usize;
        if (r as usize) < want {
            break;
        }
    }
    done as ssize_t
}

hooks! {
    /// Exported `write`: unmapped pieces are written from their originals.
    fn write(fd: c_int, b: *const c_void, n: usize) -> ssize_t {
        let r = match elide::output(b as usize, n) {
            // SAFETY: the caller's contract.
            None => unsafe { real::write(fd, b, n) },
            Some(g) => {
                // The gather list points at mapped memory (originals, pinned,
                // and the caller's own buffer).
                let r = match single(&g) {
                    // SAFETY: one mapped run of the gather list.
                    Some((a, len)) => unsafe { real::write(fd, a, len) },
                    // SAFETY: chunks of the mapped gather list.
                    None => send_chunks(&g.iov, |v, c, _| unsafe { real::writev(fd, v, c) }),
                };
                elide::output_done(&g, r);
                r
            }
        };
        stats::count(Hook::Write, io(r));
        r
    }
}

macro_rules! pwrite_hooks {
    ($($name:ident, $hook:ident;)*) => {$(
        #[doc = concat!("Exported `", stringify!($name), "`: unmapped pieces are written from their originals.")]
        #[no_mangle]
        pub unsafe extern "C" fn $name(fd: c_int, b: *const c_void, n: usize, o: off_t) -> ssize_t {
            let r = match elide::output(b as usize, n) {
                // SAFETY: the caller's contract.
                None => unsafe { real::$name(fd, b, n, o) },
                Some(g) => {
                    // As in `write`; offsets advance per chunk.
                    let r = match single(&g) {
                        // SAFETY: one mapped run of the gather list.
                        Some((a, len)) => unsafe { real::$name(fd, a, len, o) },
                        // SAFETY: chunks of the mapped gather list.
                        None => send_chunks(&g.iov, |v, c, done| unsafe { real::pwritev(fd, v, c, o + done as off_t) }),
                    };
                    elide::output_done(&g, r);
                    r
                }
            };
            stats::count(Hook::$hook, io(r));
            r
        }

        twin!($name (fd: c_int, b: *const c_void, n: usize, o: off_t) -> ssize_t);
    )*};
}

pwrite_hooks! {
    pwrite, Pwrite;
    pwrite64, Pwrite64;
}

/// Output from an iovec: the whole vector is rewritten, then sent in
/// `IOV_MAX` chunks with `call`.
///
/// # Safety
/// `v` holds `cnt` valid entries.
unsafe fn vec_output(
    v: *const iovec,
    cnt: c_int,
    direct: impl FnOnce() -> ssize_t,
    call: impl FnMut(*const iovec, c_int, usize) -> ssize_t,
) -> ssize_t {
    if !elide::tracking() {
        return direct();
    }
    // SAFETY: the caller's array.
    match elide::output_vec(&unsafe { Iov::new(v, cnt) }.pieces()) {
        None => direct(),
        Some(g) => {
            let r = send_chunks(&g.iov, call);
            elide::output_done(&g, r);
            r
        }
    }
}

hooks! {
    /// Exported `writev`.
    fn writev(fd: c_int, v: *const iovec, c: c_int) -> ssize_t {
        // SAFETY: the caller's contract; chunks point at mapped memory.
        let r = unsafe {
            vec_output(
                v,
                c,
                || real::writev(fd, v, c),
                |v2, c2, _| real::writev(fd, v2, c2),
            )
        };
        stats::count(Hook::Writev, io(r));
        r
    }

    /// Exported `pwritev`.
    fn pwritev(fd: c_int, v: *const iovec, c: c_int, o: off_t) -> ssize_t {
        // SAFETY: as in `writev`.
        let r = unsafe {
            vec_output(
                v,
                c,
                || real::pwritev(fd, v, c, o),
                |v2, c2, done| real::pwritev(fd, v2, c2, o + done as off_t),
            )
        };
        stats::count(Hook::Pwritev, io(r));
        r
    }

    /// Exported `pwritev2`. With offset -1 (the current position) every chunk
    /// also writes at the current position, which advances, as one call would.
    fn pwritev2(
        fd: c_int,
        v: *const iovec,
        c: c_int,
        o: off_t,
        f: c_int,
    ) -> ssize_t {
        // SAFETY: as in `writev`.
        let r = unsafe {
            vec_output(
                v,
                c,
                || real::pwritev2(fd, v, c, o, f),
                |v2, c2, done| {
                    let off = if o < 0 { o } else { o + done as off_t };
                    real::pwritev2(fd, v2, c2, off, f)
                },
            )
        };
        stats::count(Hook::Pwritev2, io(r));
        r
    }
}

/// Sends a gather list as one message (`sendmsg`) with the caller's name,
/// control data and flags. A message needing more than `IOV_MAX` pieces is
/// not substituted (splitting it could split a datagram): it goes out from
/// the caller's buffer, whose unmapped pages the kernel faults in.
///
/// # Safety
/// `tmpl` is a valid msghdr whose iovec is replaced.
unsafe fn send_gather(fd: c_int, g: &Gather, tmpl: &msghdr, f: c_int) -> ssize_t {
    let v = to_iovecs(&g.iov);
    // SAFETY: `tmpl` is a valid msghdr (a plain C struct, copied bitwise).
    let mut m: msghdr = unsafe { core::ptr::read(tmpl) };
    m.msg_iov = v.as_ptr() as *mut iovec;
    m.msg_iovlen = v.len() as _;
    // SAFETY: `m` is the caller's message with a valid, mapped iovec.
    unsafe { real::sendmsg(fd, &m, f) }
}

/// The gather list's only run, if it has just one (the usual case: a whole
/// copy elided from one message): the output then goes out by the caller's
/// own call from the substituted address, cheaper than as a `writev` (the
/// kernel imports the vector).
fn single(g: &Gather) -> Option<(*const c_void, usize)> {
    match *g.iov.as_slice() {
        [(a, n)] => Some((a as *const c_void, n)),
        _ => None,
    }
}

fn empty_msg() -> msghdr {
    // SAFETY: an all-zero msghdr is a valid empty message.
    unsafe { core::mem::zeroed() }
}

hooks! {
    /// Exported `send`.
    fn send(fd: c_int, b: *const c_void, n: usize, f: c_int) -> ssize_t {
        let r = match elide::output(b as usize, n) {
            Some(g) if g.iov.len() <= IOV_MAX => {
                let r = match single(&g) {
                    // SAFETY: the run is mapped memory (as in `write`).
                    Some((a, len)) => unsafe { real::send(fd, a, len, f) },
                    // SAFETY: an empty template: no name, no control data.
                    None => unsafe { send_gather(fd, &g, &empty_msg(), f) },
                };
                elide::output_done(&g, r);
                r
            }
            other => {
                if let Some(g) = other {
                    elide::output_done(&g, 0);
                }
                // SAFETY: the caller's contract.
                unsafe { real::send(fd, b, n, f) }
            }
        };
        stats::count(Hook::Send, io(r));
        r
    }

    /// Exported `sendto`.
    fn sendto(
        fd: c_int,
        b: *const c_void,
        n: usize,
        f: c_int,
        a: *const sockaddr,
        al: socklen_t,
    ) -> ssize_t {
        let r = match elide::output(b as usize, n) {
            Some(g) if g.iov.len() <= IOV_MAX => {
                let r = match single(&g) {
                    // SAFETY: the run is mapped memory (as in `write`); the
                    // caller's address as is.
                    Some((run, len)) => unsafe { real::sendto(fd, run, len, f, a, al) },
                    None => {
                        let mut m = empty_msg();
                        m.msg_name = a as *mut c_void;
                        m.msg_namelen = al;
                        // SAFETY: the caller's address, as sendto would pass it.
                        unsafe { send_gather(fd, &g, &m, f) }
                    }
                };
                elide::output_done(&g, r);
                r
            }
            other => {
                if let Some(g) = other {
                    elide::output_done(&g, 0);
                }
                // SAFETY: the caller's contract.
                unsafe { real::sendto(fd, b, n, f, a, al) }
            }
        };
        stats::count(Hook::Sendto, io(r));
        r
    }

    /// Exported `sendmsg`.
    fn sendmsg(fd: c_int, m: *const msghdr, f: c_int) -> ssize_t {
        let g = if elide::tracking() {
            // SAFETY: the caller's msghdr and its iovec are valid.
            elide::output_vec(&unsafe { Iov::of(m) }.pieces())
        } else {
            None
        };
        let r = match g {
            Some(g) if g.iov.len() <= IOV_MAX => {
                // SAFETY: the caller's message with its iovec replaced.
                let r = unsafe { send_gather(fd, &g, &*m, f) };
                elide::output_done(&g, r);
                r
            }
            other => {
                if let Some(g) = other {
                    elide::output_done(&g, 0);
                }
                // SAFETY: the caller's contract.
                unsafe { real::sendmsg(fd, m, f) }
            }
        };
        stats::count(Hook::Sendmsg, io(r));
        r
    }

    /// Exported `sendmmsg`: every message is rewritten like `sendmsg`.
    fn sendmmsg(fd: c_int, m: *mut mmsghdr, n: c_uint, f: c_int) -> c_int {
        if !elide::tracking() {
            // SAFETY: the caller's contract.
            let r = unsafe { real::sendmmsg(fd, m, n, f) };
            // SAFETY: `r` entries were filled.
            stats::count(Hook::Sendmmsg, unsafe { mmsg_bytes(m, r) });
            return r;
        }
        let mut copies: Vec<mmsghdr> = Vec::with_capacity(n as usize);
        let mut vecs: Vec<Vec<iovec>> = Vec::with_capacity(n as usize);
        let mut gathers = Vec::with_capacity(n as usize);
        for i in 0..n as usize {
            // SAFETY: the caller's vector holds `n` entries.
            let mut h: mmsghdr = unsafe { core::ptr::read(m.add(i)) };
            // SAFETY: each header's iovec is valid.
            let g = elide::output_vec(&unsafe { Iov::of(&h.msg_hdr) }.pieces());
            if let Some(g) = &g {
                if g.iov.len() <= IOV_MAX {
                    // On the heap: `vecs` moves its elements as it grows, and
                    // an inline array would move with them.
                    let v = to_iovecs(&g.iov).into_vec();
                    h.msg_hdr.msg_iov = v.as_ptr() as *mut iovec;
                    h.msg_hdr.msg_iovlen = v.len() as _;
                    vecs.push(v);
                }
            }
            gathers.push(g);
            copies.push(h);
        }
        // SAFETY: the copies are the caller's messages with mapped iovecs.
        let r = unsafe { real::sendmmsg(fd, copies.as_mut_ptr(), n, f) };
        // Pins first: writing into the caller's memory while holding them could
        // land on a protected page of a pinned original and wait for ourselves.
        for (i, g) in gathers.iter().enumerate() {
            if let Some(g) = g {
                let sent_from_gather = g.iov.len() <= IOV_MAX && (i as c_int) < r;
                let sent = if sent_from_gather {
                    copies[i].msg_len as isize
                } else {
                    0
                };
                elide::output_done(g, sent);
            }
        }
        for (i, c) in copies.iter().enumerate().take(r.max(0) as usize) {
            // SAFETY: report each message's length back in the caller's vector.
            unsafe { (*m.add(i)).msg_len = c.msg_len };
        }
        drop(vecs);
        // SAFETY: `r` entries were filled.
        stats::count(Hook::Sendmmsg, unsafe { mmsg_bytes(m, r) });
        r
    }
}

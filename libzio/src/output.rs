//! The output hooks (the `write`, `pwrite` and `send` families, from one
//! buffer or an iovec): what goes out from originals in place of the
//! unmapped pieces of elided copies.

use core::ffi::{c_int, c_uint, c_void};

use libc::{iovec, mmsghdr, msghdr, off_t, sockaddr, socklen_t, ssize_t};
use smallvec::SmallVec;
use zio_core::engine::Gather;
use zio_core::{elide, real};

use crate::iov::{io, messages, mmsg_bytes, Iov, IOV_MAX};

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

/// Writes a gather list in `IOV_MAX` chunks with `call(iov, cnt, done)`
/// (`done` = bytes already written, for offsets). Stops at the first short
/// write or error, returning what was written, as a single large write
/// would; an error before any byte is returned as is. Never refuses.
fn chunked(
    g: &Gather,
    mut call: impl FnMut(*const iovec, c_int, usize) -> ssize_t,
) -> Option<ssize_t> {
    let v = to_iovecs(&g.iov);
    let mut done = 0usize;
    for chunk in v.chunks(IOV_MAX) {
        let want: usize = chunk.iter().map(|x| x.iov_len).sum();
        let r = call(chunk.as_ptr(), chunk.len() as c_int, done);
        if r < 0 {
            return Some(if done > 0 { done as ssize_t } else { r });
        }
        done += r as usize;
        if (r as usize) < want {
            break;
        }
    }
    Some(done as ssize_t)
}

/// The offset of a chunk `done` bytes into a positioned write at `o`. A
/// negative offset stays: -1 is `pwritev2`'s current position, which
/// advances with every chunk as with one call, and `pwrite` and `pwritev`
/// refuse it on the first chunk as they would the whole write.
fn at(o: off_t, done: usize) -> off_t {
    if o < 0 {
        o
    } else {
        o + done as off_t
    }
}

/// Sends a gather list as one message (`sendmsg`) with the caller's name,
/// control data and flags from `tmpl`. Refuses (`None`) a list needing more
/// than `IOV_MAX` pieces: splitting it could split a datagram.
///
/// # Safety
/// `tmpl` is a readable msghdr (perhaps misaligned) whose iovec is replaced.
unsafe fn one_message(fd: c_int, g: &Gather, tmpl: *const msghdr, f: c_int) -> Option<ssize_t> {
    if g.iov.len() > IOV_MAX {
        return None;
    }
    let v = to_iovecs(&g.iov);
    // SAFETY: `tmpl` is a readable msghdr (a plain C struct, copied bitwise).
    let mut m: msghdr = unsafe { core::ptr::read_unaligned(tmpl) };
    m.msg_iov = v.as_ptr() as *mut iovec;
    m.msg_iovlen = v.len() as _;
    // SAFETY: `m` is the caller's message with a valid, mapped iovec.
    Some(unsafe { real::sendmsg(fd, &m, f) })
}

/// A message with no name and no control data, or with the name of a
/// `sendto` (null for none).
fn named_msg(name: *const sockaddr, len: socklen_t) -> msghdr {
    // SAFETY: an all-zero msghdr is a valid empty message.
    let mut m: msghdr = unsafe { core::mem::zeroed() };
    m.msg_name = name as *mut c_void;
    m.msg_namelen = len;
    m
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

/// Ends an output that had a gather list: `sent` is what the call made
/// from it returned, or `None` if the list was refused. Either way the
/// list's pins are dropped (nothing was sent from a refused one), and
/// `sent` is passed on: the caller then makes a refused call from its own
/// buffers, whose unmapped pages the kernel faults in.
fn done(g: &Gather, sent: Option<ssize_t>) -> Option<ssize_t> {
    elide::output_done(g, sent.unwrap_or(0));
    sent
}

/// An output from the buffer `[b, b+n)` while something is tracked:
/// `direct(buf, len)` makes the call from a buffer (the caller's, or the
/// gather list's only run), `many(g)` from a gather list of several runs.
/// Each run is mapped memory: an original (pinned until the call returns)
/// or the caller's own.
fn from_buffer(
    b: *const c_void,
    n: usize,
    direct: impl Fn(*const c_void, usize) -> ssize_t,
    many: impl FnOnce(&Gather) -> Option<ssize_t>,
) -> ssize_t {
    let Some(g) = elide::output(b as usize, n) else {
        return direct(b, n);
    };
    let sent = match single(&g) {
        Some((a, len)) => Some(direct(a, len)),
        None => many(&g),
    };
    done(&g, sent).unwrap_or_else(|| direct(b, n))
}

/// An output from the iovec `iov` while something is tracked: `direct()`
/// makes the call as the caller asked (also when the iovec cannot be read:
/// `None`), `many(g)` from the gather list that replaces the whole vector.
fn from_iovec(
    iov: Option<Iov>,
    direct: impl Fn() -> ssize_t,
    many: impl FnOnce(&Gather) -> Option<ssize_t>,
) -> ssize_t {
    let Some(g) = iov.and_then(|v| elide::output_vec(&v.pieces())) else {
        return direct();
    };
    done(&g, many(&g)).unwrap_or_else(direct)
}

/// Output hooks. A line: `name (arguments), Hook, buf(buffer, length) or
/// vec(iovec), |g| the call from a gather list g of several runs;`. From
/// one run, the call is the hook's own libc function with the run for
/// buffer and length. With nothing tracked every output goes out as is:
/// one load and a test before the libc call; the rest is out of line.
macro_rules! output_hooks {
    ($( $name:ident ( $($a:ident : $t:ty),* ), $hook:ident, $from:ident $what:tt, |$g:ident| $many:expr; )*) => {$(
        io_hook!(
            #[doc = concat!("Exported `", stringify!($name), "`: unmapped pieces go out from their originals.")]
            fn $name($($a: $t),*) -> ssize_t,
            $hook, moved |r| io(r),
            if elide::tracking() => output_hooks!(@$from $what, real::$name($($a),*), |$g| $many)
        );
    )*};
    (@buf ($buf:ident, $len:ident), $call:expr, |$g:ident| $many:expr) => {
        from_buffer(
            $buf,
            $len,
            // SAFETY: the caller's contract, with its buffer or a mapped run
            // of the gather list no longer than it.
            |$buf, $len| unsafe { $call },
            // SAFETY: the caller's contract; the list's runs are mapped.
            |$g| unsafe { $many },
        )
    };
    (@vec ($iov:expr), $call:expr, |$g:ident| $many:expr) => {
        from_iovec(
            // SAFETY: the caller's iovec, read only if readable.
            unsafe { $iov },
            // SAFETY: the caller's contract.
            || unsafe { $call },
            // SAFETY: the caller's contract; the list's runs are mapped.
            |$g| unsafe { $many },
        )
    };
}

output_hooks! {
    write (fd: c_int, b: *const c_void, n: usize), Write, buf(b, n),
        |g| chunked(g, |v, c, _| real::writev(fd, v, c));
    pwrite (fd: c_int, b: *const c_void, n: usize, o: off_t), Pwrite, buf(b, n),
        |g| chunked(g, |v, c, done| real::pwritev(fd, v, c, at(o, done)));
    pwrite64 (fd: c_int, b: *const c_void, n: usize, o: off_t), Pwrite64, buf(b, n),
        |g| chunked(g, |v, c, done| real::pwritev(fd, v, c, at(o, done)));
    writev (fd: c_int, v: *const iovec, c: c_int), Writev, vec(Iov::new(v, c)),
        |g| chunked(g, |v, c, _| real::writev(fd, v, c));
    pwritev (fd: c_int, v: *const iovec, c: c_int, o: off_t), Pwritev, vec(Iov::new(v, c)),
        |g| chunked(g, |v, c, done| real::pwritev(fd, v, c, at(o, done)));
    pwritev2 (fd: c_int, v: *const iovec, c: c_int, o: off_t, f: c_int), Pwritev2, vec(Iov::new(v, c)),
        |g| chunked(g, |v, c, done| real::pwritev2(fd, v, c, at(o, done), f));
    send (fd: c_int, b: *const c_void, n: usize, f: c_int), Send, buf(b, n),
        |g| one_message(fd, g, &named_msg(core::ptr::null(), 0), f);
    sendto (fd: c_int, b: *const c_void, n: usize, f: c_int, a: *const sockaddr, al: socklen_t), Sendto, buf(b, n),
        |g| one_message(fd, g, &named_msg(a, al), f);
    sendmsg (fd: c_int, m: *const msghdr, f: c_int), Sendmsg, vec(Iov::of(m)),
        |g| one_message(fd, g, m, f);
}

io_hook! {
    /// Exported `sendmmsg`: every message is rewritten like `sendmsg`.
    fn sendmmsg(fd: c_int, m: *mut mmsghdr, n: c_uint, f: c_int) -> c_int,
    Sendmmsg,
    // SAFETY: the kernel filled `r` entries.
    moved |r| unsafe { mmsg_bytes(m, r) },
    // SAFETY: the caller's contract, passed on; the vector is read only if
    // readable.
    if elide::tracking() && unsafe { messages(m, n) }.is_some() => unsafe { sendmmsg_tracked(fd, m, n, f) }
}

/// [`sendmmsg`] while something is tracked: the messages are copied, each
/// with the iovec of its gather list if it has one (and needs at most
/// `IOV_MAX` pieces; a longer one goes out from the caller's iovec, as in
/// `sendmsg`), sent, and their lengths reported back.
///
/// # Safety
/// `sendmmsg`'s contract, with a vector [`messages`] found readable.
unsafe fn sendmmsg_tracked(fd: c_int, m: *mut mmsghdr, n: c_uint, f: c_int) -> c_int {
    let mut copies: Vec<mmsghdr> = Vec::with_capacity(n as usize);
    let mut vecs: Vec<Vec<iovec>> = Vec::with_capacity(n as usize);
    let mut gathers = Vec::with_capacity(n as usize);
    for i in 0..n as usize {
        // SAFETY: the caller's vector holds `n` readable entries.
        let mut h: mmsghdr = unsafe { core::ptr::read_unaligned(m.add(i)) };
        // SAFETY: each header's iovec was found readable.
        let g = unsafe { Iov::of(&h.msg_hdr) }.and_then(|v| elide::output_vec(&v.pieces()));
        if let Some(g) = &g {
            if g.iov.len() <= IOV_MAX {
                // On the heap: `vecs` moves its elements as it grows,
                // and an inline array would move with them.
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
    // Pins first: writing into the caller's memory while holding them
    // could land on a protected page of a pinned original and wait for
    // ourselves.
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
        // SAFETY: report each message's length back in the caller's
        // vector.
        unsafe { (*m.add(i)).msg_len = c.msg_len };
    }
    drop(vecs);
    r
}

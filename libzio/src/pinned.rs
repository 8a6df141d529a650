//! The registration hooks: the calls that hand memory to the kernel or a
//! device for long-term use (liburing's buffer registration, libibverbs'
//! memory regions, and `io_uring_register` made through `syscall`). zio
//! learns the pinned ranges from them and never elides there
//! (`zio_core::pins`). These are not libc functions: they are found with
//! `dlsym(RTLD_NEXT)` when the program loads their library, and are not
//! counted in the stats table.
//!
//! A pin is taken before the real call (the kernel takes its reference
//! during it) and dropped if the call fails. A buffer update adds the new
//! buffers and keeps the replaced ones pinned until the ring unregisters:
//! erring on the side of copying.

use core::ffi::{c_int, c_long, c_uint, c_void};

use libc::iovec;
use zio_core::{elide, real, usermem};

/// Pins each buffer of an iovec array of `n` entries for `owner`; false
/// (nothing pinned) if the array cannot be read (the kernel refuses it).
///
/// # Safety
/// `v` is the caller's array, read only if readable.
unsafe fn pin_iovecs(owner: usize, v: *const iovec, n: usize) -> bool {
    if n > (1 << 16) || !usermem::readable(v as usize, n * size_of::<iovec>()) {
        return false;
    }
    for i in 0..n {
        // SAFETY: readable (perhaps misaligned: read unaligned).
        let e = unsafe { core::ptr::read_unaligned(v.add(i)) };
        elide::pin(owner, e.iov_base as usize, e.iov_len);
    }
    true
}

/// Runs a registration `call` with the iovecs pinned for `owner`, keeping
/// the pins only if it succeeded (`ok`).
///
/// # Safety
/// As for [`pin_iovecs`].
unsafe fn registering<R>(
    owner: usize,
    v: *const iovec,
    n: usize,
    call: impl FnOnce() -> R,
    ok: impl Fn(&R) -> bool,
) -> R {
    // SAFETY: passed on.
    let pinned = unsafe { pin_iovecs(owner, v, n) };
    let r = call();
    if pinned && !ok(&r) {
        elide::unpin(owner);
    }
    r
}

/// The owner of a ring's pins: the `struct io_uring` for liburing's
/// calls, and, tagged apart, the ring's descriptor for raw system calls.
fn fd_owner(fd: c_long) -> usize {
    (1 << 63) | fd as usize
}

/// An `io_uring_register(fd, opcode, arg, nr)` made through `syscall`:
/// buffers registered are pinned, an unregistration drops them. Other
/// opcodes pass.
///
/// # Safety
/// The system call's contract (the arguments are read only if readable).
pub(crate) unsafe fn io_uring_register(
    fd: c_long,
    op: c_long,
    arg: c_long,
    nr: c_long,
    call: impl FnOnce() -> c_long,
) -> c_long {
    const REGISTER_BUFFERS: c_long = 0;
    const UNREGISTER_BUFFERS: c_long = 1;
    const REGISTER_BUFFERS2: c_long = 15;
    const REGISTER_BUFFERS_UPDATE: c_long = 16;
    let owner = fd_owner(fd);
    let ok = |r: &c_long| *r >= 0;
    match op {
        REGISTER_BUFFERS => {
            // SAFETY: the caller's array, read only if readable.
            unsafe { registering(owner, arg as *const iovec, nr as usize, call, ok) }
        }
        REGISTER_BUFFERS2 | REGISTER_BUFFERS_UPDATE => {
            // `io_uring_rsrc_register` {nr: u32, flags, resv2: u64, data: u64,
            // tags} or `io_uring_rsrc_update2` {offset: u32, resv, data: u64,
            // tags, nr: u32, ...}.
            let words = arg as *const u32;
            if !usermem::readable(arg as usize, 32) {
                return call();
            }
            // SAFETY: 32 readable bytes (read unaligned).
            let (n, data) = unsafe {
                if op == REGISTER_BUFFERS2 {
                    (
                        words.read_unaligned(),
                        words.add(4).cast::<u64>().read_unaligned(),
                    )
                } else {
                    (
                        words.add(6).read_unaligned(),
                        words.add(2).cast::<u64>().read_unaligned(),
                    )
                }
            };
            // SAFETY: as above.
            unsafe { registering(owner, data as *const iovec, n as usize, call, ok) }
        }
        UNREGISTER_BUFFERS => {
            let r = call();
            if r >= 0 {
                elide::unpin(owner);
            }
            r
        }
        _ => call(),
    }
}

hooks! {
    /// Exported `io_uring_register_buffers` (liburing): the buffers are
    /// pinned for the ring.
    fn io_uring_register_buffers(ring: *mut c_void, v: *const iovec, n: c_uint) -> c_int {
        // SAFETY: the caller's contract.
        unsafe {
            registering(ring as usize, v, n as usize, || real::io_uring_register_buffers(ring, v, n), |r| *r >= 0)
        }
    }

    /// Exported `io_uring_register_buffers_tags` (liburing).
    fn io_uring_register_buffers_tags(ring: *mut c_void, v: *const iovec, tags: *const u64, n: c_uint) -> c_int {
        // SAFETY: the caller's contract.
        unsafe {
            registering(ring as usize, v, n as usize, || real::io_uring_register_buffers_tags(ring, v, tags, n), |r| *r >= 0)
        }
    }

    /// Exported `io_uring_register_buffers_update_tag` (liburing): the new
    /// buffers are pinned too.
    fn io_uring_register_buffers_update_tag(ring: *mut c_void, off: c_uint, v: *const iovec, tags: *const u64, n: c_uint) -> c_int {
        // SAFETY: the caller's contract.
        unsafe {
            registering(ring as usize, v, n as usize, || real::io_uring_register_buffers_update_tag(ring, off, v, tags, n), |r| *r >= 0)
        }
    }

    /// Exported `io_uring_unregister_buffers` (liburing): the ring's pins
    /// are dropped.
    fn io_uring_unregister_buffers(ring: *mut c_void) -> c_int {
        // SAFETY: the caller's contract.
        let r = unsafe { real::io_uring_unregister_buffers(ring) };
        if r >= 0 {
            elide::unpin(ring as usize);
        }
        r
    }

    /// Exported `ibv_reg_mr` (libibverbs): the region is pinned for the
    /// memory region it returns.
    fn ibv_reg_mr(pd: *mut c_void, a: *mut c_void, n: usize, access: c_int) -> *mut c_void {
        // SAFETY: the caller's contract.
        region(a, n, || unsafe { real::ibv_reg_mr(pd, a, n, access) })
    }

    /// Exported `ibv_reg_mr_iova` (libibverbs).
    fn ibv_reg_mr_iova(pd: *mut c_void, a: *mut c_void, n: usize, iova: u64, access: c_int) -> *mut c_void {
        // SAFETY: the caller's contract.
        region(a, n, || unsafe { real::ibv_reg_mr_iova(pd, a, n, iova, access) })
    }

    /// Exported `ibv_reg_mr_iova2` (libibverbs; what `ibv_reg_mr` becomes
    /// with optional access flags).
    fn ibv_reg_mr_iova2(pd: *mut c_void, a: *mut c_void, n: usize, iova: u64, access: c_uint) -> *mut c_void {
        // SAFETY: the caller's contract.
        region(a, n, || unsafe { real::ibv_reg_mr_iova2(pd, a, n, iova, access) })
    }

    /// Exported `ibv_dereg_mr` (libibverbs): the region's pin is dropped.
    fn ibv_dereg_mr(mr: *mut c_void) -> c_int {
        // SAFETY: the caller's contract.
        let r = unsafe { real::ibv_dereg_mr(mr) };
        if r == 0 {
            elide::unpin(mr as usize);
        }
        r
    }
}

/// An RDMA registration of `[a, a+n)` by `call`: pinned under a
/// provisional owner (the address itself, tagged apart) until the region
/// that owns it is known.
fn region(a: *mut c_void, n: usize, call: impl FnOnce() -> *mut c_void) -> *mut c_void {
    let provisional = (1 << 62) | a as usize;
    elide::pin(provisional, a as usize, n);
    let mr = call();
    if mr.is_null() {
        elide::unpin(provisional);
    } else {
        zio_core::pins::rename_owner(provisional, mr as usize);
    }
    mr
}

//! userfaultfd: the descriptor, its ioctls, and the start-up probe.
//!
//! The system headers here are from Linux 6.1, so the ioctl numbers and
//! feature bits are written out by hand (from `linux/userfaultfd.h`; the
//! numbers were checked against a C program built with those headers).

use core::ffi::c_int;

/// `UFFD_API`: the only API version.
pub const UFFD_API: u64 = 0xAA;
/// `_IOWR(0xAA, 0x3F, struct uffdio_api)`.
pub const UFFDIO_API: libc::c_ulong = 0xc018_aa3f;
/// `_IO(0xAA, 0x00)` on `/dev/userfaultfd`.
pub const USERFAULTFD_IOC_NEW: libc::c_ulong = 0xaa00;
const UFFDIO_REGISTER: libc::c_ulong = 0xc020_aa00;
const UFFDIO_WAKE: libc::c_ulong = 0x8010_aa02;
const UFFDIO_COPY: libc::c_ulong = 0xc028_aa03;
const UFFDIO_ZEROPAGE: libc::c_ulong = 0xc020_aa04;
const UFFDIO_WRITEPROTECT: libc::c_ulong = 0xc018_aa06;
const REGISTER_MODE_MISSING: u64 = 1;
const REGISTER_MODE_WP: u64 = 2;
const WRITEPROTECT_MODE_WP: u64 = 1;
/// `UFFD_EVENT_PAGEFAULT`.
pub const EVENT_PAGEFAULT: u8 = 0x12;
/// `UFFD_PAGEFAULT_FLAG_WP`: the fault is a write to a protected page.
pub const PAGEFAULT_FLAG_WP: u64 = 2;

#[repr(C)]
struct Range {
    start: u64,
    len: u64,
}

#[repr(C)]
struct Register {
    range: Range,
    mode: u64,
    ioctls: u64,
}

#[repr(C)]
struct Copy {
    dst: u64,
    src: u64,
    len: u64,
    mode: u64,
    copy: i64,
}

#[repr(C)]
struct Zeropage {
    range: Range,
    mode: u64,
    zeropage: i64,
}

#[repr(C)]
struct Writeprotect {
    range: Range,
    mode: u64,
}

/// A message read from the descriptor (`struct uffd_msg`, 32 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct Msg {
    /// `UFFD_EVENT_*`.
    pub event: u8,
    reserved: [u8; 7],
    /// For page faults: `UFFD_PAGEFAULT_FLAG_*`.
    pub flags: u64,
    /// For page faults: the faulting address.
    pub address: u64,
    reserved2: u64,
}

/// Feature bits zio cares about (`UFFD_FEATURE_*`).
pub mod feature {
    /// Write-protect faults (`UFFD_FEATURE_PAGEFAULT_FLAG_WP`).
    pub const PAGEFAULT_FLAG_WP: u64 = 1 << 0;
    /// Fork events.
    pub const EVENT_FORK: u64 = 1 << 1;
    /// `mremap` events.
    pub const EVENT_REMAP: u64 = 1 << 2;
    /// `MADV_DONTNEED`/`MADV_REMOVE` events.
    pub const EVENT_REMOVE: u64 = 1 << 3;
    /// `munmap` events.
    pub const EVENT_UNMAP: u64 = 1 << 6;
    /// Faulting thread id in messages.
    pub const THREAD_ID: u64 = 1 << 8;
    /// WP of never-touched pages traps.
    pub const WP_UNPOPULATED: u64 = 1 << 13;
    /// `UFFDIO_MOVE`.
    pub const MOVE: u64 = 1 << 15;
}

#[repr(C)]
struct UffdioApi {
    api: u64,
    features: u64,
    ioctls: u64,
}

/// How an attempt to get a userfaultfd failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OpenError {
    /// `errno` of the failing step.
    pub errno: i32,
    /// Which step failed.
    pub step: &'static str,
}

/// An open userfaultfd with its API handshake done.
#[derive(Debug)]
pub struct Uffd {
    /// The descriptor (close-on-exec, blocking reads).
    pub fd: c_int,
    /// Features enabled on it.
    pub features: u64,
}

impl Uffd {
    fn ioctl<T>(&self, req: libc::c_ulong, arg: &mut T) -> Result<(), i32> {
        // SAFETY: `arg` is the struct this request expects, valid for the call.
        if unsafe { libc::ioctl(self.fd, req, arg as *mut T) } < 0 {
            Err(errno())
        } else {
            Ok(())
        }
    }

    /// Registers `[a, a+len)` for missing and write-protect faults. Ranges
    /// already registered with this descriptor are accepted again cheaply.
    pub fn register(&self, a: usize, len: usize) -> Result<(), i32> {
        let mut r = Register {
            range: Range {
                start: a as u64,
                len: len as u64,
            },
            mode: REGISTER_MODE_MISSING | REGISTER_MODE_WP,
            ioctls: 0,
        };
        self.ioctl(UFFDIO_REGISTER, &mut r)
    }

    /// Atomically maps a copy of `len` bytes at `src` (whole pages) at the
    /// missing pages from `dst`, waking the threads waiting on them. A page
    /// that is already present is left alone (the kernel stops there and
    /// reports how far it got; the rest is done after it) and its waiters
    /// woken.
    pub fn copy(&self, dst: usize, src: *const u8, len: usize) -> Result<(), i32> {
        const PAGE: usize = 4096;
        let mut done = 0;
        while done < len {
            let mut c = Copy {
                dst: (dst + done) as u64,
                src: src as u64 + done as u64,
                len: (len - done) as u64,
                mode: 0,
                copy: 0,
            };
            match self.ioctl(UFFDIO_COPY, &mut c) {
                Ok(()) => return Ok(()),
                Err(libc::EEXIST) => {
                    done += c.copy.max(0) as usize;
                    self.wake(dst + done, PAGE)?;
                    done += PAGE;
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Maps zero pages at the missing `[a, a+len)` and wakes waiters (a
    /// page that is already present is only woken).
    pub fn zeropage(&self, a: usize, len: usize) -> Result<(), i32> {
        match self.zeropage_partial(a, len) {
            Err((libc::EEXIST, _)) => self.wake(a, len),
            r => r.map_err(|(e, _)| e),
        }
    }

    /// Maps zero pages at `[a, a+len)`, stopping at the first present page:
    /// `Err((EEXIST, bytes done))` then. Other errors: `(errno, 0)`.
    pub fn zeropage_partial(&self, a: usize, len: usize) -> Result<(), (i32, usize)> {
        let mut z = Zeropage {
            range: Range {
                start: a as u64,
                len: len as u64,
            },
            mode: 0,
            zeropage: 0,
        };
        self.ioctl(UFFDIO_ZEROPAGE, &mut z)
            .map_err(|e| (e, z.zeropage.max(0) as usize))
    }

    /// Write-protects or unprotects `[a, a+len)`; unprotecting wakes the
    /// threads waiting to write.
    pub fn writeprotect(&self, a: usize, len: usize, on: bool) -> Result<(), i32> {
        let mut w = Writeprotect {
            range: Range {
                start: a as u64,
                len: len as u64,
            },
            mode: if on { WRITEPROTECT_MODE_WP } else { 0 },
        };
        self.ioctl(UFFDIO_WRITEPROTECT, &mut w)
    }

    /// Wakes threads waiting on faults in `[a, a+len)`.
    pub fn wake(&self, a: usize, len: usize) -> Result<(), i32> {
        let mut r = Range {
            start: a as u64,
            len: len as u64,
        };
        self.ioctl(UFFDIO_WAKE, &mut r)
    }
}

/// Blocks until the next message on descriptor `fd` (opened blocking).
pub fn read_msg(fd: c_int) -> Result<Msg, i32> {
    let mut m = Msg::default();
    loop {
        // SAFETY: `m` is 32 writable bytes, the size of one uffd_msg.
        let n = unsafe { libc::read(fd, (&mut m as *mut Msg).cast(), core::mem::size_of::<Msg>()) };
        if n == core::mem::size_of::<Msg>() as isize {
            return Ok(m);
        }
        let e = errno();
        if n < 0 && (e == libc::EINTR || e == libc::EAGAIN) {
            continue;
        }
        return Err(if n < 0 { e } else { libc::EIO });
    }
}

impl Drop for Uffd {
    fn drop(&mut self) {
        // SAFETY: we own this descriptor.
        unsafe { libc::close(self.fd) };
    }
}

fn errno() -> i32 {
    crate::log::errno()
}

fn raw_open() -> Result<c_int, OpenError> {
    // Blocking: the handler thread sleeps in read(2) until a fault arrives.
    let flags = libc::O_CLOEXEC;
    // SAFETY: the userfaultfd system call takes only flags.
    let fd = unsafe { libc::syscall(libc::SYS_userfaultfd, flags) } as c_int;
    if fd >= 0 {
        return Ok(fd);
    }
    let sys_err = errno();
    // Kernels built without the syscall, or seccomp filters that forbid it,
    // may still allow /dev/userfaultfd (Linux 6.1+).
    // SAFETY: the path is a NUL-terminated literal.
    let dev = unsafe { libc::open(c"/dev/userfaultfd".as_ptr(), libc::O_RDWR | libc::O_CLOEXEC) };
    if dev < 0 {
        return Err(OpenError {
            errno: sys_err,
            step: "userfaultfd()",
        });
    }
    // SAFETY: USERFAULTFD_IOC_NEW takes the flags as its argument.
    let fd = unsafe { libc::ioctl(dev, USERFAULTFD_IOC_NEW, flags) };
    let e = errno();
    // SAFETY: closing the device fd we opened.
    unsafe { libc::close(dev) };
    if fd < 0 {
        return Err(OpenError {
            errno: e,
            step: "/dev/userfaultfd",
        });
    }
    Ok(fd)
}

fn handshake(fd: c_int, features: u64) -> Result<u64, OpenError> {
    let mut api = UffdioApi {
        api: UFFD_API,
        features,
        ioctls: 0,
    };
    // SAFETY: `api` is a valid uffdio_api for the duration of the call.
    if unsafe { libc::ioctl(fd, UFFDIO_API, &mut api) } < 0 {
        return Err(OpenError {
            errno: errno(),
            step: "UFFDIO_API",
        });
    }
    Ok(api.features)
}

/// The features this kernel offers to this process, or why it offers none.
pub fn probe() -> Result<u64, OpenError> {
    // Asking for no features makes the kernel report all it supports.
    let fd = raw_open()?;
    let r = handshake(fd, 0);
    // SAFETY: closing the descriptor opened above.
    unsafe { libc::close(fd) };
    r
}

/// Opens a userfaultfd with `wanted` features (those the kernel lacks are
/// left out; check [`Uffd::features`]).
pub fn open(wanted: u64) -> Result<Uffd, OpenError> {
    let available = probe()?;
    let fd = raw_open()?;
    match handshake(fd, wanted & available) {
        Ok(_) => Ok(Uffd {
            fd,
            features: wanted & available,
        }),
        Err(e) => {
            // SAFETY: closing the descriptor opened above.
            unsafe { libc::close(fd) };
            Err(e)
        }
    }
}

/// A short name for common errno values, for messages that must not call
/// `strerror` (it may allocate for unknown values in some locales).
pub fn errno_name(e: i32) -> &'static str {
    match e {
        libc::EPERM => "EPERM",
        libc::EACCES => "EACCES",
        libc::ENOSYS => "ENOSYS",
        libc::EINVAL => "EINVAL",
        libc::ENOMEM => "ENOMEM",
        libc::EMFILE => "EMFILE",
        libc::ENFILE => "ENFILE",
        libc::ENOENT => "ENOENT",
        libc::EFAULT => "EFAULT",
        _ => "error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_as_root_sees_features() {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            // The unprivileged path is tested under LD_PRELOAD with setpriv.
            return;
        }
        let f = probe().expect("root may always open a userfaultfd");
        assert!(f & feature::PAGEFAULT_FLAG_WP != 0, "features {f:#x}");
        let u = open(feature::PAGEFAULT_FLAG_WP | feature::EVENT_FORK).unwrap();
        assert_eq!(
            u.features & feature::PAGEFAULT_FLAG_WP,
            feature::PAGEFAULT_FLAG_WP
        );
    }
}

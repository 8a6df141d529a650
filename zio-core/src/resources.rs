//! zio's own resources running out: its heap's mappings refused, a
//! userfaultfd operation answered `ENOMEM` (the kernel's page tables, or
//! the VMAs registration splits against `vm.max_map_count`). The first
//! time, zio says so in one line and stops eliding for good: what is
//! already elided stays served, every new copy is made for real.
//!
//! `ZIO_INJECT=N` makes every Nth of those requests fail as if refused
//! (`ENOMEM` and `EAGAIN` in turn for userfaultfd, `ENOMEM` for mappings),
//! so that tests can prove the program's bytes stay exact meanwhile.

use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crate::config::{self, Opt};
use crate::log::Level;
use crate::zio_log;

static OUT: AtomicBool = AtomicBool::new(false);
static REQUESTS: AtomicU64 = AtomicU64::new(0);

/// The error to fail this request for one of zio's own resources with,
/// if it is to be refused (`ZIO_INJECT`): `ENOMEM` and `EAGAIN` (the
/// kernel's answer while the address space is changing, which is not
/// running out) in turn.
#[inline]
pub fn refuse() -> Option<i32> {
    let every = config::get(Opt::Inject);
    if every == 0 {
        return None;
    }
    let n = REQUESTS.fetch_add(1, Ordering::Relaxed) + 1;
    n.is_multiple_of(every).then(|| {
        if (n / every).is_multiple_of(2) {
            libc::EAGAIN
        } else {
            libc::ENOMEM
        }
    })
}

/// A resource of zio's own was refused at `step` with `errno`: elision
/// stops for good (see [`exhausted`]); said once.
pub fn ran_out(step: &str, errno: i32) {
    if !OUT.swap(true, Ordering::Relaxed) {
        zio_log!(
            Level::Warn,
            "zio's own resources ran out ({step}: {}); no more copies are elided, those elided are kept",
            crate::uffd::errno_name(errno)
        );
    }
}

/// True once zio's own resources ran out in this process.
#[inline]
pub fn exhausted() -> bool {
    OUT.load(Ordering::Relaxed)
}

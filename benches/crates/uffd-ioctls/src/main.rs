//! ns per userfaultfd ioctl, the `userfaultfd` crate against a raw ioctl
//! on the same descriptor, in alternating rounds, for the two calls zio
//! makes in the steady state of a server: a zero-page request on a page
//! already present (it fails with EEXIST) and a no-op un-protect (the
//! registration check). Prints one line per round.

use std::os::fd::AsRawFd;
use std::time::Instant;

use userfaultfd::{FeatureFlags, RegisterMode, UffdBuilder};

#[repr(C)]
struct Range {
    start: u64,
    len: u64,
}

#[repr(C)]
struct ZeroPage {
    range: Range,
    mode: u64,
    zeropage: i64,
}

#[repr(C)]
struct WriteProtect {
    range: Range,
    mode: u64,
}

/// `_IOWR(0xAA, 4, struct uffdio_zeropage)`.
const UFFDIO_ZEROPAGE: u64 = 0xc020_aa04;
/// `_IOWR(0xAA, 6, struct uffdio_writeprotect)`.
const UFFDIO_WRITEPROTECT: u64 = 0xc018_aa06;
const PAGE: usize = 4096;
const CALLS: u32 = 200_000;

/// Mean ns per call of `f` over `CALLS` calls.
fn per_call(mut f: impl FnMut()) -> f64 {
    let t = Instant::now();
    for _ in 0..CALLS {
        f();
    }
    t.elapsed().as_nanos() as f64 / f64::from(CALLS)
}

fn main() {
    let uffd = UffdBuilder::new()
        .close_on_exec(true)
        .non_blocking(true)
        .user_mode_only(false)
        .require_features(FeatureFlags::PAGEFAULT_FLAG_WP)
        .create()
        .expect("userfaultfd (run as root, or with vm.unprivileged_userfaultfd=1)");
    // SAFETY: a fresh private anonymous page, unmapped by the exit.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            PAGE,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    assert_ne!(p, libc::MAP_FAILED, "mmap");
    // Present before registration: no fault ever waits for a handler.
    // SAFETY: the page just mapped.
    unsafe { (p as *mut u8).write_volatile(1) };
    uffd.register_with_mode(p, PAGE, RegisterMode::MISSING | RegisterMode::WRITE_PROTECT)
        .expect("register");
    let fd = uffd.as_raw_fd();
    let range = || Range {
        start: p as u64,
        len: PAGE as u64,
    };
    for round in 1..=5 {
        // SAFETY: a registered, present page: the call fails with EEXIST.
        let crate_zero = per_call(|| assert!(unsafe { uffd.zeropage(p, PAGE, true) }.is_err()));
        let raw_zero = per_call(|| {
            let mut z = ZeroPage {
                range: range(),
                mode: 0,
                zeropage: 0,
            };
            // SAFETY: the kernel's layout of struct uffdio_zeropage.
            assert!(unsafe { libc::ioctl(fd, UFFDIO_ZEROPAGE as _, &mut z) } < 0);
        });
        let crate_wp = per_call(|| uffd.remove_write_protection(p, PAGE, true).expect("wp"));
        let raw_wp = per_call(|| {
            let mut w = WriteProtect {
                range: range(),
                mode: 0,
            };
            // SAFETY: the kernel's layout of struct uffdio_writeprotect.
            assert_eq!(
                unsafe { libc::ioctl(fd, UFFDIO_WRITEPROTECT as _, &mut w) },
                0
            );
        });
        println!(
            "round {round}: zero page (EEXIST) crate {crate_zero:.0} ns, raw {raw_zero:.0} ns; \
             un-protect crate {crate_wp:.0} ns, raw {raw_wp:.0} ns"
        );
    }
}

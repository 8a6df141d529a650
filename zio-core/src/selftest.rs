//! userfaultfd's round trip, tested once before the engine first starts:
//! a descriptor that is handed out but whose faults never arrive (a
//! sandbox, an emulator) is found in bounded time, before a program's
//! first touch of an elided copy would wait for good.

use crate::ranges::PAGE;
use crate::uffd::{self, Uffd};

/// Checks that a fault in memory registered with `u` reaches `u` and is
/// answered there: a helper thread reads a registered page while this
/// thread waits up to `timeout_ms` for the fault, maps a zero page, and
/// waits as long again for the helper to see it. A kernel, sandbox or
/// emulator that hands out a descriptor but never delivers its faults
/// fails here, in bounded time, instead of hanging the program at its
/// first elided copy. `Err` names the step that failed.
pub fn round_trip(u: &Uffd, timeout_ms: i32) -> Result<(), &'static str> {
    let page = crate::heap::map(PAGE) as usize;
    if page == 0 {
        return Err("mmap");
    }
    let r = round_trip_on(u, page, timeout_ms);
    // SAFETY: the page is ours and nothing reads it any more (the helper
    // finished, or was woken by the unregistration and finished).
    unsafe { libc::munmap(page as *mut libc::c_void, PAGE) };
    r
}

fn round_trip_on(u: &Uffd, page: usize, timeout_ms: i32) -> Result<(), &'static str> {
    u.register(page, PAGE).map_err(|_| "UFFDIO_REGISTER")?;
    let mask = crate::signals::block_all();
    let helper = std::thread::Builder::new()
        .name("zio-selftest".into())
        .stack_size(64 << 10)
        .spawn(move || {
            crate::thread::mark_zio_thread();
            // SAFETY: the page is mapped until this thread is joined.
            unsafe { core::ptr::read_volatile(page as *const u8) }
        });
    crate::signals::restore_mask(&mask);
    let Ok(helper) = helper else {
        let _ = u.unregister(page, PAGE);
        return Err("thread");
    };
    let answered = answer_one_fault(u, page, timeout_ms);
    // The woken helper finishes at once: yield to it first, then wait in
    // milliseconds.
    let (mut yields, mut waited) = (0, 0);
    while answered.is_ok() && !helper.is_finished() && waited < timeout_ms {
        if yields < 1000 {
            yields += 1;
            // SAFETY: sched_yield has no preconditions.
            unsafe { libc::sched_yield() };
        } else {
            crate::runtime::sleep_ms(1);
            waited += 1;
        }
    }
    let seen = helper.is_finished();
    // Unregistering wakes the helper if it still waits, so it can be joined.
    let _ = u.unregister(page, PAGE);
    let _ = helper.join();
    answered.and(if seen { Ok(()) } else { Err("wake") })
}

/// Waits for the helper's fault on `page` and maps a zero page there.
fn answer_one_fault(u: &Uffd, page: usize, timeout_ms: i32) -> Result<(), &'static str> {
    let m = match uffd::wait_msg(u.fd, timeout_ms) {
        Ok(Some(m)) => m,
        Ok(None) => return Err("fault delivery"),
        Err(_) => return Err("read"),
    };
    if m.event != uffd::EVENT_PAGEFAULT || (m.address as usize & !(PAGE - 1)) != page {
        return Err("fault message");
    }
    u.zeropage(page, PAGE).map_err(|_| "UFFDIO_ZEROPAGE")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::uffd::{feature, open};

    #[test]
    fn round_trip_as_root_is_answered() {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            return;
        }
        let u = open(feature::PAGEFAULT_FLAG_WP).unwrap();
        assert_eq!(round_trip(&u, 1000), Ok(()));
    }
}

//! zio's own threads: the fault handler (one read of the
//! userfaultfd per fault, resolved under the engine's lock) and the
//! periodic collector.

use core::sync::atomic::Ordering;

use super::clock::ticks;
use super::{counters_of, free_all, plain_access, publish, ENGINE, HANDLER_FD};
use crate::log::Level;
use crate::{config, statfile, thread, uffd, zio_log};

/// The fault handler: one read per fault, resolved under the lock.
/// A fault in the pages the lock's holder is reading
/// ([`super::plain_access`]) is served without it, also while the handler
/// waits for the lock: faults read meanwhile are kept for after.
pub(super) fn handler_loop() {
    thread::mark_zio_thread();
    let fd = HANDLER_FD.load(Ordering::Relaxed);
    let mut kept: Vec<uffd::Msg> = Vec::new();
    loop {
        let m = match uffd::read_msg(fd) {
            Ok(m) => m,
            Err(e) => {
                zio_log!(
                    Level::Error,
                    "reading userfaultfd failed: {}; handler stops",
                    uffd::errno_name(e)
                );
                return;
            }
        };
        if m.event != uffd::EVENT_PAGEFAULT || plain_access::serve(fd, &m) {
            continue;
        }
        let t0 = ticks();
        let mut g = ENGINE.lock_polling(|| {
            while let Ok(Some(m)) = uffd::try_read_msg(fd) {
                if m.event == uffd::EVENT_PAGEFAULT && !plain_access::serve(fd, &m) {
                    kept.push(m);
                }
            }
        });
        if let Some(e) = g.as_mut() {
            for m in core::iter::once(m).chain(kept.drain(..)) {
                if m.flags & uffd::PAGEFAULT_FLAG_WP != 0 {
                    // Busy: the writer stays blocked until the pin is dropped.
                    let _ = e.on_wp_fault(m.address as usize);
                } else {
                    e.on_missing_fault(m.address as usize);
                }
            }
            publish(e);
            e.mem.time.background_call(t0);
        }
        kept.clear();
    }
}

/// Periodic collection, plus freeing what the quarantine released; and,
/// with a counters file, the engine's counters copied into it every
/// [`statfile::PUBLISH_MS`] (between collections if they are rarer).
pub(super) fn collector_loop() {
    thread::mark_zio_thread();
    let period = config::get(config::Opt::GcMs);
    let step = if statfile::published() {
        period.min(statfile::PUBLISH_MS)
    } else {
        period
    };
    let mut waited = 0;
    loop {
        crate::runtime::sleep_ms(step);
        waited += step;
        let collect = waited >= period;
        if collect {
            waited = 0;
        }
        let to_free = {
            let t0 = ticks();
            let mut g = ENGINE.lock();
            let Some(e) = g.as_mut() else { continue };
            if collect {
                e.collect();
                publish(e);
            }
            if statfile::published() {
                statfile::publish_engine(&counters_of(e));
            }
            e.mem.time.background_call(t0);
            e.take_to_free()
        };
        free_all(&to_free);
    }
}

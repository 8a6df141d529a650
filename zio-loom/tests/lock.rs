//! loom checks of zio-core's futex lock (`zio-core/src/lock.rs`): every
//! interleaving of contending threads (plain and polling) keeps them
//! apart (loom's cells check each access against the lock's acquire and
//! release), none
//! sleeps forever (a lost wake-up leaves the model deadlocked, which loom
//! reports), and a fork child's reset frees a lock its holder left held.

use loom::cell::UnsafeCell;
use loom::sync::Arc;
use loom::thread;
#[path = "../../zio-core/src/lock.rs"]
mod lock;
use lock::Lock;

fn add_one(l: &Lock<UnsafeCell<u32>>) {
    let g = l.lock();
    // SAFETY: the guard gives this thread the cell alone; loom checks it.
    g.with_mut(|p| unsafe { *p += 1 });
}

fn value(l: &Lock<UnsafeCell<u32>>) -> u32 {
    let g = l.lock();
    // SAFETY: as in `add_one`.
    g.with(|p| unsafe { *p })
}

#[test]
fn contending_threads_take_turns_and_all_finish() {
    let mut b = loom::model::Builder::new();
    b.preemption_bound = Some(3);
    b.check(|| {
        let l = Arc::new(Lock::new(UnsafeCell::new(0u32)));
        let hs: Vec<_> = (0..2)
            .map(|_| {
                let l = l.clone();
                thread::spawn(move || add_one(&l))
            })
            .collect();
        add_one(&l);
        for h in hs {
            h.join().unwrap();
        }
        assert_eq!(value(&l), 3);
    });
}

/// The fault handler's way in: a waiter that polls between its sleeps
/// takes turns with plain lockers, and none sleeps forever.
#[test]
fn a_polling_waiter_takes_turns_with_lockers() {
    let mut b = loom::model::Builder::new();
    b.preemption_bound = Some(3);
    b.check(|| {
        let l = Arc::new(Lock::new(UnsafeCell::new(0u32)));
        let l2 = l.clone();
        let h = thread::spawn(move || {
            let g = l2.lock_polling(|| {});
            // SAFETY: as in `add_one`.
            g.with_mut(|p| unsafe { *p += 1 });
        });
        add_one(&l);
        add_one(&l);
        h.join().unwrap();
        assert_eq!(value(&l), 3);
    });
}

#[test]
fn try_lock_never_enters_a_held_lock() {
    loom::model(|| {
        let l = Arc::new(Lock::new(UnsafeCell::new(0u32)));
        let l2 = l.clone();
        let h = thread::spawn(move || {
            if let Some(g) = l2.try_lock() {
                // SAFETY: as in `add_one`.
                g.with_mut(|p| unsafe { *p += 1 });
            }
        });
        add_one(&l);
        h.join().unwrap();
        let v = value(&l);
        assert!(v == 1 || v == 2, "{v}");
    });
}

#[test]
fn a_fork_child_resets_a_lock_its_holder_left_held() {
    loom::model(|| {
        let l = Lock::new(UnsafeCell::new(0u32));
        // The holder is a thread the child of `fork` does not have.
        core::mem::forget(l.lock());
        assert!(l.try_lock().is_none());
        // SAFETY: one thread, and the forgotten guard is never used.
        unsafe { l.reset() };
        add_one(&l);
        assert_eq!(value(&l), 1);
        assert!(l.try_lock().is_some());
    });
}

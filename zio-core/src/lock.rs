//! A small futex mutex that can be reset in a child after `fork`.
//!
//! `std::sync::Mutex` cannot be forced open, and a child of `fork` inherits
//! the lock in whatever state another thread left it. This one is three
//! states in one word (0 free, 1 held, 2 held with waiters), as in Ulrich
//! Drepper's "Futexes Are Tricky", and allocates nothing.
//!
//! The `zio-loom` crate compiles this same file with `cfg(zio_loom)`:
//! loom's atomics, and a futex modelled with loom's condition variable
//! (a wake that could be lost shows there as a deadlock).

use core::cell::UnsafeCell;
use core::ops::{Deref, DerefMut};
use core::sync::atomic::Ordering;

#[cfg(not(zio_loom))]
use core::sync::atomic::AtomicU32;
#[cfg(zio_loom)]
use loom::sync::atomic::AtomicU32;

/// Tries to take a contended lock this many times before sleeping (once
/// under loom: every extra try multiplies the interleavings it explores).
const SPINS: u32 = if cfg!(zio_loom) { 1 } else { 100 };

/// Longest sleep of [`Lock::lock_polling`] between two polls, in
/// nanoseconds.
#[cfg(not(zio_loom))]
pub const POLL_NS: i64 = 200_000;

/// A mutex around `T`.
pub struct Lock<T> {
    state: AtomicU32,
    #[cfg(zio_loom)]
    futex: loom_futex::Futex,
    value: UnsafeCell<T>,
}

// SAFETY: access to `value` is serialized by `state`, like std's Mutex.
unsafe impl<T: Send> Sync for Lock<T> {}
// SAFETY: as above.
unsafe impl<T: Send> Send for Lock<T> {}

/// Holding the lock; released on drop.
pub struct Guard<'a, T> {
    lock: &'a Lock<T>,
}

/// FUTEX_WAIT or FUTEX_WAKE on `word`; a wait gives up after `timeout_ns`
/// if one is given.
#[cfg(not(zio_loom))]
fn futex(word: &AtomicU32, op: i32, val: u32, timeout_ns: Option<i64>) {
    let t = timeout_ns.map(|ns| libc::timespec {
        tv_sec: 0,
        tv_nsec: ns as libc::c_long,
    });
    let tp = t
        .as_ref()
        .map_or(core::ptr::null(), |t| t as *const libc::timespec);
    // SAFETY: FUTEX_WAIT/WAKE on a valid, aligned u32 that outlives the
    // call, with a relative timeout (or none) that lives across it.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            op | libc::FUTEX_PRIVATE_FLAG,
            val,
            tp,
        );
    }
}

#[cfg(zio_loom)]
mod loom_futex {
    use super::AtomicU32;
    use core::sync::atomic::Ordering;
    use loom::sync::{Condvar, Mutex};

    /// The kernel's futex queue of one word: a wait sleeps only if the
    /// word still holds the value, checked under the queue's lock, which
    /// a wake takes too.
    pub(super) struct Futex {
        queue: Mutex<()>,
        woken: Condvar,
    }

    impl Futex {
        pub(super) fn new() -> Futex {
            Futex {
                queue: Mutex::new(()),
                woken: Condvar::new(),
            }
        }

        pub(super) fn wait(&self, word: &AtomicU32, val: u32) {
            let q = self.queue.lock().unwrap();
            if word.load(Ordering::Relaxed) == val {
                drop(self.woken.wait(q).unwrap());
            }
        }

        pub(super) fn wake(&self) {
            let _q = self.queue.lock().unwrap();
            self.woken.notify_one();
        }
    }
}

impl<T> Lock<T> {
    /// A free lock around `value`.
    #[cfg(not(zio_loom))]
    pub const fn new(value: T) -> Lock<T> {
        Lock {
            state: AtomicU32::new(0),
            value: UnsafeCell::new(value),
        }
    }

    /// A free lock around `value` (loom's atomics are not `const`).
    #[cfg(zio_loom)]
    pub fn new(value: T) -> Lock<T> {
        Lock {
            state: AtomicU32::new(0),
            futex: loom_futex::Futex::new(),
            value: UnsafeCell::new(value),
        }
    }

    /// Sleeps while the lock is held with waiters: until woken, or for at
    /// most `POLL_NS` if `brief` (under loom, until woken: loom has no
    /// clock).
    fn sleep(&self, brief: bool) {
        #[cfg(not(zio_loom))]
        futex(&self.state, libc::FUTEX_WAIT, 2, brief.then_some(POLL_NS));
        #[cfg(zio_loom)]
        {
            let _ = brief;
            self.futex.wait(&self.state, 2);
        }
    }

    fn wake_one(&self) {
        #[cfg(not(zio_loom))]
        futex(&self.state, libc::FUTEX_WAKE, 1, None);
        #[cfg(zio_loom)]
        self.futex.wake();
    }

    /// Waits for and takes the lock.
    #[inline]
    pub fn lock(&self) -> Guard<'_, T> {
        self.acquire(|| {}, false)
    }

    /// As [`Lock::lock`], calling `poll` before every sleep and sleeping at
    /// most `POLL_NS` at a time: for a waiter that must keep serving
    /// something the holder may be waiting for (the fault handler).
    pub fn lock_polling(&self, poll: impl FnMut()) -> Guard<'_, T> {
        self.acquire(poll, true)
    }

    #[inline(always)]
    fn acquire(&self, mut poll: impl FnMut(), brief: bool) -> Guard<'_, T> {
        if self
            .state
            .compare_exchange(0, 1, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            let mut spins = 0;
            loop {
                if spins < SPINS {
                    spins += 1;
                    core::hint::spin_loop();
                    if self
                        .state
                        .compare_exchange(0, 1, Ordering::Acquire, Ordering::Relaxed)
                        .is_ok()
                    {
                        break;
                    }
                    continue;
                }
                poll();
                if self.state.swap(2, Ordering::Acquire) == 0 {
                    break;
                }
                self.sleep(brief);
            }
        }
        Guard { lock: self }
    }

    /// Takes the lock if it is free.
    pub fn try_lock(&self) -> Option<Guard<'_, T>> {
        self.state
            .compare_exchange(0, 1, Ordering::Acquire, Ordering::Relaxed)
            .ok()
            .map(|_| Guard { lock: self })
    }

    /// In a child after `fork`, where the holder (if any) no longer exists.
    ///
    /// # Safety
    /// Only one thread may exist (true in a fork child before it starts
    /// any), and no guard of this lock may be used afterwards.
    pub unsafe fn reset(&self) {
        // Written only if held: in a fork child a write is a page copy.
        if self.state.load(Ordering::Relaxed) != 0 {
            self.state.store(0, Ordering::Relaxed);
        }
    }
}

impl<T> Drop for Guard<'_, T> {
    fn drop(&mut self) {
        if self.lock.state.swap(0, Ordering::Release) == 2 {
            self.lock.wake_one();
        }
    }
}

impl<T> Deref for Guard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the guard proves exclusive access.
        unsafe { &*self.lock.value.get() }
    }
}

impl<T> DerefMut for Guard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: the guard proves exclusive access.
        unsafe { &mut *self.lock.value.get() }
    }
}

#[cfg(all(test, not(zio_loom)))]
mod tests {
    use super::*;

    #[test]
    fn excludes_across_threads() {
        static L: Lock<u64> = Lock::new(0);
        let hs: Vec<_> = (0..4)
            .map(|_| {
                std::thread::spawn(|| {
                    for _ in 0..20000 {
                        let mut g = L.lock();
                        let v = *g;
                        core::hint::black_box(());
                        *g = v + 1;
                    }
                })
            })
            .collect();
        for h in hs {
            h.join().unwrap();
        }
        assert_eq!(*L.lock(), 80000);
        let g = L.lock();
        assert!(L.try_lock().is_none());
        drop(g);
        assert!(L.try_lock().is_some());
    }
}

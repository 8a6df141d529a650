//! A pass-through `memcpy` hook written with redhook, counting calls and
//! bytes per thread as zio's hook does, so that `bench-hook` (with
//! `ZIO_LIB` pointing here) times the same work through redhook's macro.

use std::cell::Cell;

use libc::{c_void, size_t};

thread_local! {
    static CALLS: Cell<u64> = const { Cell::new(0) };
    static BYTES: Cell<u64> = const { Cell::new(0) };
}

redhook::hook! {
    unsafe fn memcpy(dst: *mut c_void, src: *const c_void, n: size_t) -> *mut c_void => counted_memcpy {
        CALLS.with(|c| c.set(c.get() + 1));
        BYTES.with(|b| b.set(b.get() + n as u64));
        redhook::real!(memcpy)(dst, src, n)
    }
}

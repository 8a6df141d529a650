//! The IO-stack bridge contract's exported functions, as `include/zio.h`
//! declares them: `zio_contract_version`, `zio_register`, `zio_release`,
//! `zio_resolve`, `zio_resolve_end`. Not hooks (they wrap nothing in libc):
//! not counted, not in `hooked-symbols.txt`.

use core::ffi::{c_int, c_uint, c_void};

use zio_core::elide::bridge;
use zio_core::tracker::OrigId;

/// `ZIO_CONTRACT_VERSION`: major × 100 + minor.
pub const CONTRACT_VERSION: c_uint = 100;

/// `ZIO_RESOLVE_PINS`.
const RESOLVE_PINS: usize = 8;

/// `struct zio_seg`: one run of bytes to read.
#[repr(C)]
pub struct ZioSeg {
    /// First byte.
    pub base: *const c_void,
    /// Bytes.
    pub len: usize,
}

/// `struct zio_resolution`: the pins a resolution holds until
/// `zio_resolve_end`, and the bytes it resolved to originals.
#[repr(C)]
pub struct ZioResolution {
    /// Pins held.
    pub npins: u32,
    /// The originals pinned.
    pub pins: [u32; RESOLVE_PINS],
    /// Bytes the segments take from originals.
    pub resolved: usize,
}

/// Exported `zio_contract_version`.
#[no_mangle]
pub extern "C" fn zio_contract_version() -> c_uint {
    CONTRACT_VERSION
}

/// Exported `zio_register`: lends `[addr, addr+len)` (see `zio.h`).
#[no_mangle]
pub extern "C" fn zio_register(addr: *const c_void, len: usize) -> c_int {
    c_int::from(bridge::lend(addr as usize, len))
}

/// Exported `zio_release`: `ZIO_RELEASED` (0) or `ZIO_HOLD` (1).
#[no_mangle]
pub extern "C" fn zio_release(addr: *const c_void, len: usize, wait_ns: u64) -> c_int {
    if bridge::release(addr as usize, len, wait_ns) {
        0
    } else {
        1
    }
}

/// Exported `zio_resolve` (see `zio.h`).
///
/// # Safety
/// `segs` points to `max` writable `struct zio_seg`, `res` to a writable
/// `struct zio_resolution` (or either is null, and the call answers 0).
#[no_mangle]
pub unsafe extern "C" fn zio_resolve(
    buf: *const c_void,
    len: usize,
    segs: *mut ZioSeg,
    max: usize,
    res: *mut ZioResolution,
) -> usize {
    if len == 0 || max == 0 || segs.is_null() || res.is_null() {
        return 0;
    }
    // SAFETY: the caller's contract: `res` is writable.
    let res = unsafe { &mut *res };
    res.npins = 0;
    res.resolved = 0;
    // SAFETY: the caller's contract: `max` writable entries at `segs`.
    let out = unsafe { core::slice::from_raw_parts_mut(segs, max) };
    let Some(g) = bridge::resolve(buf as usize, len) else {
        out[0] = ZioSeg { base: buf, len };
        return 1;
    };
    if g.iov.len() > max || g.pins.len() > RESOLVE_PINS {
        // Not said in what the caller gave: the buffer itself is right.
        bridge::resolve_done(&g.pins, 0);
        out[0] = ZioSeg { base: buf, len };
        return 1;
    }
    for (o, &(a, n)) in out.iter_mut().zip(&g.iov) {
        *o = ZioSeg {
            base: a as *const c_void,
            len: n,
        };
    }
    for (p, &id) in res.pins.iter_mut().zip(&g.pins) {
        *p = id;
    }
    res.npins = g.pins.len() as u32;
    res.resolved = g.substituted;
    g.iov.len()
}

/// Exported `zio_resolve_end`: unpins what `zio_resolve` pinned in `res`.
///
/// # Safety
/// `res` is null or points to a writable `struct zio_resolution` (one
/// `zio_resolve` did not fill, or already ended, unpins nothing).
#[no_mangle]
pub unsafe extern "C" fn zio_resolve_end(res: *mut ZioResolution) {
    if res.is_null() {
        return;
    }
    // SAFETY: the caller's contract.
    let res = unsafe { &mut *res };
    let n = (res.npins as usize).min(RESOLVE_PINS);
    if n > 0 {
        let pins: [OrigId; RESOLVE_PINS] = res.pins;
        bridge::resolve_done(&pins[..n], res.resolved);
    }
    res.npins = 0;
    res.resolved = 0;
}

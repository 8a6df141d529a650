//! Criterion benches of zio's hot paths live in `benches/`; this is what
//! they share: loading libzio.so the way `LD_PRELOAD` would run it, looking
//! up C symbols, and the buffers and files they work on.

#![deny(missing_docs)]

use std::ffi::{c_int, c_void, CString};
use std::path::Path;

/// `pread(2)`.
pub type Pread = unsafe extern "C" fn(c_int, *mut c_void, usize, i64) -> isize;
/// `pwrite(2)`.
pub type Pwrite = unsafe extern "C" fn(c_int, *const c_void, usize, i64) -> isize;
/// `memcpy(3)`.
pub type Memcpy = unsafe extern "C" fn(*mut c_void, *const c_void, usize) -> *mut c_void;
/// `free(3)`.
pub type Free = unsafe extern "C" fn(*mut c_void);

/// The functions a bench's message goes through: libc's
/// (`fns(libc::RTLD_DEFAULT)`) or libzio's hooks (`fns(load_zio())`).
#[derive(Clone, Copy)]
pub struct Fns {
    /// `pread(2)`.
    pub pread: Pread,
    /// `pwrite(2)`.
    pub pwrite: Pwrite,
    /// `memcpy(3)`.
    pub memcpy: Memcpy,
    /// `free(3)`.
    pub free: Free,
}

/// [`Fns`] looked up in `h`.
///
/// # Safety
/// `h` is a live `dlopen` handle or `RTLD_DEFAULT`.
pub unsafe fn fns(h: *mut c_void) -> Fns {
    // SAFETY: `h` is valid (the caller's contract) and each type is its
    // symbol's C prototype.
    unsafe {
        Fns {
            pread: sym(h, "pread"),
            pwrite: sym(h, "pwrite"),
            memcpy: sym(h, "memcpy"),
            free: sym(h, "free"),
        }
    }
}

/// Page size the benches align their buffers to.
pub const PAGE: usize = 4096;

/// The libzio.so under test: `ZIO_LIB`, or the workspace's release build.
pub fn lib_path() -> String {
    std::env::var("ZIO_LIB").unwrap_or_else(|_| {
        concat!(env!("CARGO_MANIFEST_DIR"), "/../target/release/libzio.so").to_string()
    })
}

/// Loads libzio.so with `dlopen`: its constructor, engine and fault handler
/// run exactly as under `LD_PRELOAD` (it reads the `ZIO_*` environment
/// now). Panics, naming the path, if it cannot.
pub fn load_zio() -> *mut c_void {
    let path = lib_path();
    let c = CString::new(path.clone()).unwrap();
    // SAFETY: loading a shared library by path.
    let h = unsafe { libc::dlopen(c.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL) };
    assert!(
        !h.is_null(),
        "cannot load {path} (run `cargo build --release` first)"
    );
    h
}

/// The symbol `name` in `h` (or `RTLD_DEFAULT`) as the function pointer
/// type `T`. Panics if it is missing.
///
/// # Safety
/// `T` must be a function pointer type with the symbol's C prototype.
pub unsafe fn sym<T>(h: *mut c_void, name: &str) -> T {
    let c = CString::new(name).unwrap();
    // SAFETY: dlsym with a valid handle and name.
    let p = unsafe { libc::dlsym(h, c.as_ptr()) };
    assert!(!p.is_null(), "{name} not found");
    // SAFETY: the caller's contract: T is this symbol's pointer type.
    unsafe { std::mem::transmute_copy(&p) }
}

/// A page-aligned allocation of `n` bytes (never freed: benches keep it).
pub fn page_aligned(n: usize) -> *mut u8 {
    let mut p: *mut c_void = std::ptr::null_mut();
    // SAFETY: valid out-pointer, power-of-two alignment.
    assert_eq!(unsafe { libc::posix_memalign(&mut p, PAGE, n) }, 0);
    p as *mut u8
}

/// `open(2)` of `p`; panics if it fails.
pub fn open(p: &Path, flags: c_int) -> c_int {
    let c = CString::new(p.to_str().unwrap()).unwrap();
    // SAFETY: valid path.
    let fd = unsafe { libc::open(c.as_ptr(), flags, 0o644) };
    assert!(fd >= 0, "cannot open {}", p.display());
    fd
}

/// Live records in the record-index benches: the size at which the zIO
/// paper measured its prototype's skiplist.
pub const RECORDS: usize = 640;

/// The record index of the tracker benches: 64 originals of 64 KiB, each
/// with 10 dependents of 16 KiB spread over the address space, `RECORDS`
/// pieces in all. `each` sees every piece as it goes in (another index can
/// hold the same ones); returns the tracker and the pieces' keys.
pub fn tracker_640(
    mut each: impl FnMut(usize, &zio_core::tracker::Piece),
) -> (zio_core::tracker::Tracker, Vec<usize>) {
    use zio_core::tracker::{Piece, Slots, Tracker};
    let mut t = Tracker::new();
    let mut keys = Vec::new();
    for o in 0..RECORDS / 10 {
        let start = 0x1000_0000 + o * (64 << 10);
        let id = t.add_original(start, 64 << 10, 0);
        for d in 0..10 {
            let dst = 0x4000_0000 + (o * 10 + d) * (64 << 10);
            let piece = Piece {
                len: 16 << 10,
                src: start + d * PAGE,
                orig: id,
                stamp: 0,
                slots: Slots::default(),
                trips: 0,
            };
            each(dst, &piece);
            t.insert_piece(dst, piece);
            keys.push(dst);
        }
    }
    assert_eq!(t.piece_count(), RECORDS);
    (t, keys)
}

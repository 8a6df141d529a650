//! Added cost of the pass-through hook per call.
//!
//! Loads libzio.so with `dlopen` (its constructor runs as under
//! `LD_PRELOAD`), takes its exported `memcpy` and libc's, and times both on
//! the same buffers, side by side in one run. Both are called through a
//! function pointer, as a program calls either through its PLT, so the
//! difference is what the hook adds: its counting and its own call to libc.

use std::ffi::c_void;
use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};

type Memcpy = unsafe extern "C" fn(*mut c_void, *const c_void, usize) -> *mut c_void;

fn lib_path() -> String {
    std::env::var("ZIO_LIB").unwrap_or_else(|_| {
        concat!(env!("CARGO_MANIFEST_DIR"), "/../target/release/libzio.so").to_string()
    })
}

fn symbols() -> (Memcpy, Memcpy) {
    let path = std::ffi::CString::new(lib_path()).unwrap();
    // SAFETY: dlopen/dlsym with NUL-terminated names; the symbols have the C
    // memcpy prototype.
    unsafe {
        let h = libc::dlopen(path.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL);
        assert!(
            !h.is_null(),
            "cannot load {} (run `cargo build --release` first)",
            lib_path()
        );
        let hook = libc::dlsym(h, c"memcpy".as_ptr());
        let libc_fn = libc::dlsym(libc::RTLD_DEFAULT, c"memcpy".as_ptr());
        assert!(!hook.is_null() && !libc_fn.is_null() && hook != libc_fn);
        (
            std::mem::transmute::<*mut c_void, Memcpy>(hook),
            std::mem::transmute::<*mut c_void, Memcpy>(libc_fn),
        )
    }
}

fn bench(c: &mut Criterion) {
    let (hook, libc_memcpy) = symbols();
    let src = vec![7u8; 4096];
    let mut dst = vec![0u8; 4096];
    for size in [64usize, 4096] {
        let mut g = c.benchmark_group(format!("memcpy_{size}B"));
        for (name, f) in [("libc", libc_memcpy), ("zio_hook", hook)] {
            g.bench_function(name, |b| {
                b.iter(|| {
                    // SAFETY: both buffers hold 4096 bytes >= size.
                    unsafe {
                        black_box(f)(
                            black_box(dst.as_mut_ptr().cast()),
                            black_box(src.as_ptr().cast()),
                            black_box(size),
                        )
                    }
                })
            });
        }
        g.finish();
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(std::time::Duration::from_millis(500))
        .measurement_time(std::time::Duration::from_secs(2));
    targets = bench
}
criterion_main!(benches);

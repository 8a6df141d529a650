//! Added cost of the pass-through hook per call.
//!
//! Loads libzio.so with `dlopen` (its constructor runs as under
//! `LD_PRELOAD`), takes its exported `memcpy` and libc's, and times both on
//! the same buffers, side by side in one run. Both are called through a
//! function pointer, as a program calls either through its PLT, so the
//! difference is what the hook adds: its counting and its own call to libc.

use std::hint::black_box;
use zio_benches::{load_zio, sym, Memcpy};

use criterion::{criterion_group, criterion_main, Criterion};

fn symbols() -> (Memcpy, Memcpy) {
    let zio = load_zio();
    // SAFETY: both are the C memcpy.
    let (hook, libc_fn): (Memcpy, Memcpy) =
        unsafe { (sym(zio, "memcpy"), sym(libc::RTLD_DEFAULT, "memcpy")) };
    assert!(
        hook as usize != libc_fn as usize,
        "libzio's memcpy is libc's"
    );
    (hook, libc_fn)
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

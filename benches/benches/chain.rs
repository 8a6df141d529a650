//! One 512 KiB message through a chain of copies, with and without zio,
//! side by side in one run.
//!
//! Each iteration is what a server does with a message: `pread` it into an
//! input buffer, copy it through `k` freshly allocated buffers, `pwrite` the
//! last copy to a file in /dev/shm, and free the copies. The "libc" variant
//! calls libc's functions; the "zio" variant calls libzio.so's exported
//! hooks (loaded with `dlopen`, so its constructor, engine and fault handler
//! run exactly as under `LD_PRELOAD`). Nothing touches the copies, which is
//! the case zio is built for.
//!
//! `chain_64KiB_static` is echo-bench's static-buffer server at the size
//! where zio's own cost per message matters most: the same input and copy
//! buffers for every message, 0, 1, 5 or 12 copies. There the 0-copy
//! `libc` run is the physical limit the copies are measured against. The
//! group checks with zio's `elided_copies` counter that every copy of every
//! `zio` message was elided.

use std::cell::Cell;
use std::ffi::{c_char, c_int};
use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use zio_benches::{fns, load_zio, open, page_aligned, sym, Fns};

const MSG: usize = 512 << 10;

type Counter = unsafe extern "C" fn(*const c_char) -> i64;

/// libc's functions, libzio's hooks, and libzio's `zio_counter`.
fn load() -> (Fns, Fns, Counter) {
    let zio = load_zio();
    // SAFETY: RTLD_DEFAULT and a live dlopen handle; zio_counter's
    // prototype is `Counter`.
    unsafe { (fns(libc::RTLD_DEFAULT), fns(zio), sym(zio, "zio_counter")) }
}

/// zio's `elided_copies` counter (0 before the engine starts).
fn elided(counter: Counter) -> u64 {
    // SAFETY: a NUL-terminated name.
    unsafe { counter(c"elided_copies".as_ptr()) }.max(0) as u64
}

/// One message through `k` copies.
fn message(f: Fns, input: *mut u8, fd_in: c_int, fd_out: c_int, k: usize) {
    // SAFETY: `input` holds MSG bytes; each copy buffer is a fresh MSG-byte
    // allocation, freed with the same family's free.
    unsafe {
        let got = (f.pread)(fd_in, input.cast(), MSG, 0);
        assert_eq!(got, MSG as isize);
        let mut src = input;
        let mut bufs = Vec::with_capacity(k);
        for _ in 0..k {
            let dst = libc::malloc(MSG) as *mut u8;
            (f.memcpy)(dst.cast(), src.cast(), MSG);
            bufs.push(dst);
            src = dst;
        }
        let put = (f.pwrite)(fd_out, src.cast(), MSG, 0);
        assert_eq!(put, MSG as isize);
        for b in bufs {
            (f.free)(b.cast());
        }
    }
}

const SMALL_MSG: usize = 64 << 10;

/// One 64 KiB message through `bufs` (input first) reused for every
/// message: what echo-bench's static-buffer server does.
fn static_message(f: Fns, bufs: &[*mut u8], fd_in: c_int, fd_out: c_int) {
    // SAFETY: every buffer holds SMALL_MSG bytes and they do not overlap.
    unsafe {
        let got = (f.pread)(fd_in, bufs[0].cast(), SMALL_MSG, 0);
        assert_eq!(got, SMALL_MSG as isize);
        for w in bufs.windows(2) {
            (f.memcpy)(w[1].cast(), w[0].cast(), SMALL_MSG);
        }
        let last = bufs[bufs.len() - 1];
        let put = (f.pwrite)(fd_out, last.cast(), SMALL_MSG, 0);
        assert_eq!(put, SMALL_MSG as isize);
    }
}

/// The file behind `fd_out` starts with `want`: what a group wrote last.
fn check_output(fd_out: c_int, want: &[u8], what: &str) {
    let mut back = vec![0u8; want.len()];
    // SAFETY: reading back `want.len()` bytes into `back`.
    let got = unsafe { libc::pread(fd_out, back.as_mut_ptr().cast(), back.len(), 0) };
    assert_eq!(got, want.len() as isize);
    assert!(back == want, "{what} output differs from its input");
}

fn bench(c: &mut Criterion) {
    let (libc_fns, zio_fns, counter) = load();
    let dir = std::env::temp_dir().join(format!("zio-chain-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let data: Vec<u8> = (0..MSG).map(|i| (i * 131 + i / 4096) as u8).collect();
    std::fs::write(dir.join("in"), &data).unwrap();
    let fd_in = open(&dir.join("in"), libc::O_RDONLY);
    let out = std::path::Path::new("/dev/shm").join(format!("zio-chain-{}", std::process::id()));
    let fd_out = open(&out, libc::O_RDWR | libc::O_CREAT | libc::O_TRUNC);
    // Page-aligned input buffers, one per variant.
    let (in_libc, in_zio) = (page_aligned(MSG), page_aligned(MSG));

    // Messages each group ran (a filtered run may skip a group, whose
    // output is then not there to check).
    let ran = Cell::new(0u64);
    let mut g = c.benchmark_group("chain_512KiB");
    g.throughput(criterion::Throughput::Bytes(MSG as u64));
    for k in [1usize, 5, 12] {
        g.bench_with_input(BenchmarkId::new("libc", k), &k, |b, &k| {
            b.iter(|| {
                ran.set(ran.get() + 1);
                message(libc_fns, in_libc, fd_in, fd_out, black_box(k))
            })
        });
        g.bench_with_input(BenchmarkId::new("zio", k), &k, |b, &k| {
            b.iter(|| {
                ran.set(ran.get() + 1);
                message(zio_fns, in_zio, fd_in, fd_out, black_box(k))
            })
        });
    }
    g.finish();

    // The output really is the message, both ways.
    if ran.get() > 0 {
        check_output(fd_out, &data, "the chain's");
    }

    // Emptied, so that the check below sees what the static chain wrote.
    // SAFETY: an open file descriptor.
    assert_eq!(unsafe { libc::ftruncate(fd_out, 0) }, 0);
    ran.set(0);
    let mut g = c.benchmark_group("chain_64KiB_static");
    g.throughput(criterion::Throughput::Bytes(SMALL_MSG as u64));
    for k in [0usize, 1, 5, 12] {
        let libc_bufs: Vec<*mut u8> = (0..=k).map(|_| page_aligned(SMALL_MSG)).collect();
        let zio_bufs: Vec<*mut u8> = (0..=k).map(|_| page_aligned(SMALL_MSG)).collect();
        g.bench_with_input(BenchmarkId::new("libc", k), &k, |b, _| {
            b.iter(|| {
                ran.set(ran.get() + 1);
                static_message(libc_fns, &libc_bufs, fd_in, fd_out)
            })
        });
        let (iters, before) = (Cell::new(0u64), elided(counter));
        g.bench_with_input(BenchmarkId::new("zio", k), &k, |b, _| {
            b.iter(|| {
                iters.set(iters.get() + 1);
                ran.set(ran.get() + 1);
                static_message(zio_fns, &zio_bufs, fd_in, fd_out)
            })
        });
        // Every copy of every message was elided: the zio figures are
        // elision's, not a fallback's.
        assert_eq!(elided(counter) - before, iters.get() * k as u64);
    }
    g.finish();
    if ran.get() > 0 {
        check_output(fd_out, &data[..SMALL_MSG], "the static chain's");
    }
    let _ = std::fs::remove_file(&out);
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(30)
        .warm_up_time(std::time::Duration::from_millis(500))
        .measurement_time(std::time::Duration::from_secs(3));
    targets = bench
}
criterion_main!(benches);

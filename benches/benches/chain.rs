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

use std::ffi::{c_int, c_void, CString};
use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};

type Pread = unsafe extern "C" fn(c_int, *mut c_void, usize, i64) -> isize;
type Pwrite = unsafe extern "C" fn(c_int, *const c_void, usize, i64) -> isize;
type Memcpy = unsafe extern "C" fn(*mut c_void, *const c_void, usize) -> *mut c_void;
type Free = unsafe extern "C" fn(*mut c_void);

const MSG: usize = 512 << 10;

#[derive(Clone, Copy)]
struct Fns {
    pread: Pread,
    pwrite: Pwrite,
    memcpy: Memcpy,
    free: Free,
}

fn sym<T>(h: *mut c_void, name: &str) -> T {
    let c = CString::new(name).unwrap();
    // SAFETY: dlsym with a valid handle and name.
    let p = unsafe { libc::dlsym(h, c.as_ptr()) };
    assert!(!p.is_null(), "{name} not found");
    // SAFETY: T is the function pointer type of this C prototype.
    unsafe { std::mem::transmute_copy(&p) }
}

fn load() -> (Fns, Fns) {
    let path = std::env::var("ZIO_LIB").unwrap_or_else(|_| {
        concat!(env!("CARGO_MANIFEST_DIR"), "/../target/release/libzio.so").to_string()
    });
    let c = CString::new(path.clone()).unwrap();
    // SAFETY: loading a shared library by path.
    let zio = unsafe { libc::dlopen(c.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL) };
    assert!(
        !zio.is_null(),
        "cannot load {path} (run `cargo build --release` first)"
    );
    let fns = |h| Fns {
        pread: sym(h, "pread"),
        pwrite: sym(h, "pwrite"),
        memcpy: sym(h, "memcpy"),
        free: sym(h, "free"),
    };
    (fns(libc::RTLD_DEFAULT), fns(zio))
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

fn bench(c: &mut Criterion) {
    let (libc_fns, zio_fns) = load();
    let dir = std::env::temp_dir().join(format!("zio-chain-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let data: Vec<u8> = (0..MSG).map(|i| (i * 131 + i / 4096) as u8).collect();
    std::fs::write(dir.join("in"), &data).unwrap();
    let open = |p: &std::path::Path, flags| {
        let c = CString::new(p.to_str().unwrap()).unwrap();
        // SAFETY: valid path.
        unsafe { libc::open(c.as_ptr(), flags, 0o644) }
    };
    let fd_in = open(&dir.join("in"), libc::O_RDONLY);
    let out = std::path::Path::new("/dev/shm").join(format!("zio-chain-{}", std::process::id()));
    let fd_out = open(&out, libc::O_RDWR | libc::O_CREAT | libc::O_TRUNC);
    assert!(fd_in >= 0 && fd_out >= 0);
    // Page-aligned input buffers, one per variant.
    let alloc = || {
        let mut p: *mut c_void = std::ptr::null_mut();
        // SAFETY: valid out-pointer, power-of-two alignment.
        assert_eq!(unsafe { libc::posix_memalign(&mut p, 4096, MSG) }, 0);
        p as *mut u8
    };
    let (in_libc, in_zio) = (alloc(), alloc());

    let mut g = c.benchmark_group("chain_512KiB");
    g.throughput(criterion::Throughput::Bytes(MSG as u64));
    for k in [1usize, 5, 12] {
        g.bench_with_input(BenchmarkId::new("libc", k), &k, |b, &k| {
            b.iter(|| message(libc_fns, in_libc, fd_in, fd_out, black_box(k)))
        });
        g.bench_with_input(BenchmarkId::new("zio", k), &k, |b, &k| {
            b.iter(|| message(zio_fns, in_zio, fd_in, fd_out, black_box(k)))
        });
    }
    g.finish();

    // The output really is the message, both ways.
    let mut back = vec![0u8; MSG];
    // SAFETY: reading back MSG bytes into `back`.
    assert_eq!(
        unsafe { libc::pread(fd_out, back.as_mut_ptr().cast(), MSG, 0) },
        MSG as isize
    );
    assert!(back == data, "the chain's output differs from its input");
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

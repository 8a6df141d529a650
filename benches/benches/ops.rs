//! zio's three operations one at a time, each next to what libc does
//! instead, side by side in one run:
//!
//! * `elided_copy/16KiB` and `elided_copy/512KiB`: one `memcpy` of IO data.
//!   An original is made once by a `pread` of N bytes (through zio's hook)
//!   into a page-aligned input buffer; each iteration copies it (through the
//!   hook) into the same page-aligned destination: the steady state of a
//!   reused buffer. The destination's previous piece is dropped and the copy
//!   elided again; its pages are still unmapped from the previous
//!   iteration, so nothing needs `MADV_DONTNEED`. Two zio variants:
//!   - `zio`: the destination is the original's only dependent. Dropping
//!     its piece would leave the original without dependents and
//!     unprotected, and the new copy would protect it again; instead
//!     `Engine::copy` repoints the piece in place (`Engine::repoint` in
//!     zio-core/src/engine/copy.rs), so the copy makes no system call.
//!   - `zio_held`: another elided copy of the same original stays alive,
//!     so the original stays write-protected whatever the engine does: what
//!     is left is the lock and the engine's bookkeeping.
//!
//!   `libc`: libc's `memcpy` between the same kind of buffers.
//! * `fault/one_page`: one fault resolution. `zio`: each iteration elides a
//!   512 KiB copy into the reused destination (of a held original, as in
//!   `zio_held` above), then reads one byte of one of its pages: a
//!   userfaultfd missing fault, which zio's handler thread resolves by
//!   building the page from the original (alone: a fault that does not
//!   continue the previous one's run gets no fault-around) and
//!   `UFFDIO_COPY`ing it in. `zio_copy_only` is the same elided
//!   copy without the read, so **`zio` minus `zio_copy_only` is the cost of
//!   the fault**: the trap, waking the handler thread, rebuilding and
//!   installing the pages, and, in the next iteration's copy, the two system
//!   calls (a `UFFDIO_WRITEPROTECT` that proves the range is registered, and
//!   `MADV_DONTNEED`) that unmap the pages the fault brought in; without a
//!   touch there is nothing to unmap. `libc`: `memcpy` plus the same read.
//! * `fault/every_page`: the same copy, then one byte read from each of its
//!   128 pages in order: fault-around at work. Each fault that continues
//!   the previous one's run rebuilds four times more pages (1, 4, 16, 64,
//!   then the last 43): 5 faults per copy, which the bench checks.
//! * `output/512KiB`: output substitution. `zio`: a `pwrite` (through the
//!   hook) of a 512 KiB elided copy (made once before the loop; nothing
//!   touches it, so it stays unmapped) to a file in /dev/shm: zio hands the
//!   kernel the original's bytes instead. `libc`: libc's `pwrite` of an
//!   ordinary buffer holding the same bytes.
//!
//! libzio.so is loaded with `dlopen` (its constructor, engine and fault
//! handler run exactly as under `LD_PRELOAD`) with `ZIO_THRESHOLD=16K`, so
//! the 16 KiB copy is elided (the default threshold is 64K), and
//! `ZIO_FAULT_RATIO=1`, so the policy never stops eliding at the fault
//! bench's call site. Both functions are called through pointers.
//!
//! Every zio variant proves that zio did what it is timed for: the bench
//! counts its iterations and checks the engine's counters (read with libzio's
//! exported `zio_counter`) before and after: one elided copy of N bytes per
//! copy, one missing fault per touch, 512 KiB substituted per output. The
//! data is checked too: every byte the fault bench reads, the files the
//! output bench wrote, and the elided destinations at the end.

use std::cell::Cell;
use std::ffi::{c_char, c_int, CStr};
use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkGroup, Criterion, Throughput};
use zio_benches::{fns, load_zio, open, page_aligned, sym, Fns, PAGE};

type Counter = unsafe extern "C" fn(*const c_char) -> i64;

const SMALL: usize = 16 << 10;
const BIG: usize = 512 << 10;
/// The byte the fault bench reads: in page 64 of the 128.
const TOUCH: usize = 64 * PAGE + 7;

/// libc's functions, libzio's hooks, and libzio's `zio_counter`.
fn load() -> (Fns, Fns, Counter) {
    // Read by libzio's constructor, at dlopen.
    std::env::set_var("ZIO_THRESHOLD", "16K");
    std::env::set_var("ZIO_FAULT_RATIO", "1");
    let zio = load_zio();
    // SAFETY: RTLD_DEFAULT and a live dlopen handle; zio_counter's
    // prototype is `Counter`.
    unsafe { (fns(libc::RTLD_DEFAULT), fns(zio), sym(zio, "zio_counter")) }
}

/// The engine counters the benches check.
#[derive(Clone, Copy, Debug)]
struct Counts {
    elided_copies: u64,
    elided_bytes: u64,
    faults_missing: u64,
    pages_by_fault: u64,
    outputs_substituted: u64,
    bytes_substituted: u64,
}

impl Counts {
    fn read(f: Counter) -> Counts {
        let get = |name: &CStr| {
            // SAFETY: a NUL-terminated name.
            let v = unsafe { f(name.as_ptr()) };
            assert!(
                v >= 0,
                "zio_counter({name:?}) = {v}: the engine is not running"
            );
            v as u64
        };
        Counts {
            elided_copies: get(c"elided_copies"),
            elided_bytes: get(c"elided_bytes"),
            faults_missing: get(c"faults_missing"),
            pages_by_fault: get(c"pages_by_fault"),
            outputs_substituted: get(c"outputs_substituted"),
            bytes_substituted: get(c"bytes_substituted"),
        }
    }

    /// What grew since `before`.
    fn since(self, before: Counts) -> Counts {
        Counts {
            elided_copies: self.elided_copies - before.elided_copies,
            elided_bytes: self.elided_bytes - before.elided_bytes,
            faults_missing: self.faults_missing - before.faults_missing,
            pages_by_fault: self.pages_by_fault - before.pages_by_fault,
            outputs_substituted: self.outputs_substituted - before.outputs_substituted,
            bytes_substituted: self.bytes_substituted - before.bytes_substituted,
        }
    }
}

/// Runs one zio variant, counting its iterations, and returns the count with
/// what the engine's counters did meanwhile.
fn zio_bench(
    g: &mut BenchmarkGroup<'_, criterion::measurement::WallTime>,
    name: &str,
    counter: Counter,
    mut op: impl FnMut(),
) -> (u64, Counts) {
    let iters = Cell::new(0u64);
    let before = Counts::read(counter);
    g.bench_function(name, |b| {
        b.iter(|| {
            iters.set(iters.get() + 1);
            op()
        })
    });
    let d = Counts::read(counter).since(before);
    println!("    zio counters over {} iterations: {d:?}", iters.get());
    (iters.get(), d)
}

/// A page-aligned buffer filled by `f.pread` with the first `n` bytes of `fd`.
fn read_input(f: Fns, fd: c_int, n: usize) -> *mut u8 {
    let p = page_aligned(n);
    // SAFETY: `p` holds `n` bytes.
    assert_eq!(unsafe { (f.pread)(fd, p.cast(), n, 0) }, n as isize);
    p
}

/// # Safety
/// `d` and `s` hold `n` bytes each.
unsafe fn copy(f: Fns, d: *mut u8, s: *const u8, n: usize) {
    // SAFETY: the caller's contract.
    unsafe { black_box(f.memcpy)(black_box(d.cast()), black_box(s.cast()), n) };
}

/// Reads one byte the way the program would (a load the compiler keeps).
///
/// # Safety
/// `p` is readable.
unsafe fn touch(p: *const u8) -> u8 {
    // SAFETY: the caller's contract.
    unsafe { std::ptr::read_volatile(p) }
}

/// One byte of each page of the BIG bytes at `p`, in order, summed.
///
/// # Safety
/// `p` holds BIG readable bytes.
unsafe fn every_page(p: *const u8) -> u64 {
    (0..BIG / PAGE)
        // SAFETY: inside the caller's BIG bytes.
        .map(|i| u64::from(unsafe { touch(p.add(i * PAGE + 7)) }))
        .sum()
}

/// # Safety
/// `p` holds `n` readable bytes.
unsafe fn bytes<'a>(p: *const u8, n: usize) -> &'a [u8] {
    // SAFETY: the caller's contract.
    unsafe { std::slice::from_raw_parts(p, n) }
}

fn bench(c: &mut Criterion) {
    let (lf, zf, counter) = load();
    let pid = std::process::id();
    let dir = std::env::temp_dir().join(format!("zio-ops-{pid}"));
    std::fs::create_dir_all(&dir).unwrap();
    let data: Vec<u8> = (0..BIG).map(|i| (i * 131 + i / 4096) as u8).collect();
    std::fs::write(dir.join("in"), &data).unwrap();
    let fd_in = open(&dir.join("in"), libc::O_RDONLY);
    let shm = |v: &str| std::path::Path::new("/dev/shm").join(format!("zio-ops-{pid}-{v}"));
    let (out_libc, out_zio) = (shm("libc"), shm("zio"));
    let rw = libc::O_RDWR | libc::O_CREAT | libc::O_TRUNC;
    let (fd_out_libc, fd_out_zio) = (open(&out_libc, rw), open(&out_zio, rw));

    // Originals, made by zio's pread (the first one starts the engine). In
    // `zin` the benched destination is the original's only dependent; each
    // of `zheld` also has a kept elided copy, which holds it write-protected.
    let zin = [read_input(zf, fd_in, SMALL), read_input(zf, fd_in, BIG)];
    let zheld = [read_input(zf, fd_in, SMALL), read_input(zf, fd_in, BIG)];
    let lin = [read_input(lf, fd_in, SMALL), read_input(lf, fd_in, BIG)];
    let start = Counts::read(counter);
    assert_eq!(start.elided_copies, 0, "nothing elided yet");
    // Destinations zio elided into, with their sizes and how often (a
    // filtered run may skip some), checked at the end.
    let mut elided: Vec<(*mut u8, usize, u64)> = Vec::new();
    for (i, n) in [SMALL, BIG].into_iter().enumerate() {
        let kept = page_aligned(n);
        // SAFETY: both buffers hold n bytes.
        unsafe { copy(zf, kept, zheld[i], n) };
        elided.push((kept, n, 1));
    }
    let d = Counts::read(counter).since(start);
    assert!(
        d.elided_copies == 2 && d.elided_bytes == (SMALL + BIG) as u64,
        "the kept copies: {d:?}"
    );

    // ----- elided_copy ------------------------------------------------------
    let mut g = c.benchmark_group("elided_copy");
    for (i, (n, label)) in [(SMALL, "16KiB"), (BIG, "512KiB")].into_iter().enumerate() {
        g.throughput(Throughput::Bytes(n as u64));
        let ldst = page_aligned(n);
        g.bench_function(format!("{label}/libc"), |b| {
            // SAFETY: both buffers hold n bytes.
            b.iter(|| unsafe { copy(lf, ldst, lin[i], n) })
        });
        for (variant, orig) in [("zio", zin[i]), ("zio_held", zheld[i])] {
            let dst = page_aligned(n);
            let (iters, d) = zio_bench(&mut g, &format!("{label}/{variant}"), counter, || {
                // SAFETY: both buffers hold n bytes.
                unsafe { copy(zf, dst, orig, n) }
            });
            let what = format!("{label}/{variant}: {d:?} over {iters} iterations");
            assert!(d.elided_copies >= iters, "{what}");
            assert!(d.elided_bytes >= iters * n as u64, "{what}");
            assert_eq!(d.faults_missing, 0, "{what}: nothing touched the copy");
            elided.push((dst, n, iters));
        }
    }
    g.finish();

    // ----- fault ------------------------------------------------------------
    let mut g = c.benchmark_group("fault");
    let want = data[TOUCH];
    let bad = Cell::new(0u64);
    let ldst = page_aligned(BIG);
    g.bench_function("one_page/libc", |b| {
        b.iter(|| {
            // SAFETY: both buffers hold BIG bytes; TOUCH < BIG.
            let v = unsafe {
                copy(lf, ldst, lin[1], BIG);
                touch(ldst.add(TOUCH))
            };
            bad.set(bad.get() + u64::from(v != want));
        })
    });
    let zdst_fault = page_aligned(BIG);
    let (iters, d) = zio_bench(&mut g, "one_page/zio", counter, || {
        // SAFETY: both buffers hold BIG bytes; TOUCH < BIG.
        let v = unsafe {
            copy(zf, zdst_fault, zheld[1], BIG);
            touch(zdst_fault.add(TOUCH))
        };
        bad.set(bad.get() + u64::from(v != want));
    });
    assert!(d.elided_copies >= iters, "fault: {d:?} over {iters}");
    assert!(d.elided_bytes >= iters * BIG as u64, "fault: {d:?}");
    assert!(d.faults_missing >= iters, "fault: {d:?} over {iters}");
    assert!(d.pages_by_fault >= iters, "fault: {d:?} over {iters}");
    elided.push((zdst_fault, BIG, iters));
    let (iters, d) = zio_bench(&mut g, "one_page/zio_copy_only", counter, || {
        // SAFETY: both buffers hold BIG bytes.
        unsafe { copy(zf, zdst_fault, zheld[1], BIG) }
    });
    assert!(d.elided_copies >= iters, "copy only: {d:?} over {iters}");
    assert!(d.elided_bytes >= iters * BIG as u64, "copy only: {d:?}");
    assert_eq!(d.faults_missing, 0, "copy only: nothing touched the copy");
    elided.push((zdst_fault, BIG, iters));
    // SAFETY: the libc input buffer holds BIG bytes.
    let want_all = unsafe { every_page(lin[1]) };
    g.bench_function("every_page/libc", |b| {
        b.iter(|| {
            // SAFETY: both buffers hold BIG bytes.
            let v = unsafe {
                copy(lf, ldst, lin[1], BIG);
                every_page(ldst)
            };
            bad.set(bad.get() + u64::from(v != want_all));
        })
    });
    let (iters, d) = zio_bench(&mut g, "every_page/zio", counter, || {
        // SAFETY: both buffers hold BIG bytes.
        let v = unsafe {
            copy(zf, zdst_fault, zheld[1], BIG);
            every_page(zdst_fault)
        };
        bad.set(bad.get() + u64::from(v != want_all));
    });
    assert!(d.elided_copies >= iters, "every page: {d:?} over {iters}");
    assert_eq!(
        d.pages_by_fault,
        iters * (BIG / PAGE) as u64,
        "every page: {d:?}"
    );
    assert!(
        d.faults_missing <= iters * 5,
        "every page: fault-around did not grow: {d:?} over {iters}"
    );
    elided.push((zdst_fault, BIG, iters));
    g.finish();
    assert_eq!(
        bad.get(),
        0,
        "a byte read from a copy differs from its source"
    );

    // ----- output -----------------------------------------------------------
    let mut g = c.benchmark_group("output");
    g.throughput(Throughput::Bytes(BIG as u64));
    let lbuf = page_aligned(BIG);
    let libc_iters = Cell::new(0u64);
    // SAFETY: lbuf holds BIG bytes.
    unsafe { lbuf.copy_from_nonoverlapping(data.as_ptr(), BIG) };
    g.bench_function("512KiB/libc", |b| {
        b.iter(|| {
            libc_iters.set(libc_iters.get() + 1);
            // SAFETY: lbuf holds BIG bytes.
            let put = unsafe { (lf.pwrite)(fd_out_libc, black_box(lbuf.cast()), BIG, 0) };
            assert_eq!(put, BIG as isize);
        })
    });
    let zbuf = page_aligned(BIG);
    let before = Counts::read(counter);
    // SAFETY: both buffers hold BIG bytes.
    unsafe { copy(zf, zbuf, zheld[1], BIG) };
    let d = Counts::read(counter).since(before);
    assert!(
        d.elided_copies == 1 && d.elided_bytes == BIG as u64,
        "{d:?}"
    );
    elided.push((zbuf, BIG, 1));
    let (iters, d) = zio_bench(&mut g, "512KiB/zio", counter, || {
        // SAFETY: zbuf holds BIG bytes (unmapped: zio substitutes them).
        let put = unsafe { (zf.pwrite)(fd_out_zio, black_box(zbuf.cast()), BIG, 0) };
        assert_eq!(put, BIG as isize);
    });
    assert!(d.outputs_substituted >= iters, "output: {d:?} over {iters}");
    assert!(d.bytes_substituted >= iters * BIG as u64, "output: {d:?}");
    assert_eq!(d.faults_missing, 0, "output: the kernel touched the copy");
    g.finish();

    // ----- the data ---------------------------------------------------------
    for (p, what, ran) in [
        (&out_libc, "libc", libc_iters.get()),
        (&out_zio, "zio", iters),
    ] {
        if ran > 0 {
            assert!(
                std::fs::read(p).unwrap() == data,
                "the {what} output bench wrote other bytes than its input"
            );
        }
    }
    for (p, n, ran) in elided {
        if ran > 0 {
            // SAFETY: `p` holds `n` bytes, copied from the input; reading
            // the elided ones faults them in from their original.
            let got = unsafe { bytes(p, n) };
            assert!(got == &data[..n], "an elided {n}-byte copy differs");
        }
    }
    let end = Counts::read(counter).since(start);
    println!("zio counters over the whole run: {end:?}");
    let _ = std::fs::remove_file(&out_libc);
    let _ = std::fs::remove_file(&out_zio);
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(30)
        .warm_up_time(std::time::Duration::from_millis(500))
        .measurement_time(std::time::Duration::from_secs(2));
    targets = bench
}
criterion_main!(benches);

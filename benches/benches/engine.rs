//! The engine's own bookkeeping per echo message, without system calls.
//!
//! The engine runs over a memory backend that does nothing (every unmap and
//! protection succeeds at once, backups get a fresh fake address), so what is
//! timed is exactly the decision work zio adds per message on top of its
//! system calls: recording the input, deciding each copy, building the
//! output's gather list. The message is the echo-bench static-buffer case:
//! one input buffer read in 64 KiB chunks, `k` chained copies into reused
//! buffers, the last copy written out.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use zio_core::engine::{Cfg, Engine, Mem};

/// A backend with no memory: the engine's decisions only.
struct NullMem {
    next_backup: usize,
}

impl Mem for NullMem {
    fn read(&self, _addr: usize, out: &mut [u8]) {
        out.fill(0);
    }
    fn make_missing(&mut self, _a: usize, _len: usize) -> bool {
        true
    }
    fn still_missing(&mut self, _a: usize, _len: usize) -> bool {
        true
    }
    fn private_writable(&mut self, _a: usize, _len: usize) -> bool {
        true
    }
    fn fill(&mut self, _page: usize, _data: &[u8]) -> bool {
        true
    }
    fn zero_run(&mut self, _a: usize, _len: usize) {}
    fn release(&mut self, _page: usize, _a: usize, _b: usize) -> bool {
        true
    }
    fn zero_range(&mut self, _a: usize, _len: usize) {}
    fn zero_if_missing(&mut self, _a: usize, _len: usize) {}
    fn protect(&mut self, _a: usize, _len: usize, _on: bool) -> bool {
        true
    }
    fn read_plain(&mut self, _addr: usize, out: &mut [u8]) {
        out.fill(0);
    }
    fn write_plain(&mut self, _addr: usize, _data: &[u8]) {}
    fn backup(&mut self, _src: usize, len: usize) -> Option<usize> {
        let a = self.next_backup;
        self.next_backup += (len + 4095) & !4095;
        Some(a)
    }
    fn own(&mut self, len: usize) -> Option<usize> {
        let a = self.next_backup;
        self.next_backup += (len + 4095) & !4095;
        Some(a)
    }
    fn write(&mut self, _addr: usize, _data: &[u8]) {}
    fn backup_release(&mut self, _addr: usize, _len: usize) {}
}

const INPUT: usize = 0x1000_0000;
const COPIES: usize = 0x2000_0000;
const CHUNK: usize = 64 << 10;

/// One echo message of `size` bytes through `k` copies.
fn message(e: &mut Engine<NullMem>, size: usize, k: usize) {
    let mut off = 0;
    while off < size {
        let n = CHUNK.min(size - off);
        match e.input_target(INPUT + off, size - off) {
            Some(r) => e.input_redirected(INPUT + off, r, n as isize).unwrap(),
            None => {
                e.input_prepare(INPUT + off, size - off).unwrap();
                e.input_done(INPUT + off, n);
            }
        }
        off += n;
    }
    let mut src = INPUT;
    for i in 0..k {
        let dst = COPIES + i * 0x20_0000;
        let plan = e.copy(dst, src, size, 0x4242).unwrap().unwrap();
        black_box(&plan);
        src = dst;
    }
    let g = e.output(src, size);
    e.output_done(&g, size);
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("engine_echo_static");
    for (size, k) in [
        (64 << 10, 0),
        (64 << 10, 1),
        (64 << 10, 5),
        (64 << 10, 12),
        (512 << 10, 1),
        (512 << 10, 5),
        (512 << 10, 12),
    ] {
        let cfg = Cfg {
            threshold: 16 << 10,
            ..Cfg::default()
        };
        let mut e = Engine::new(
            NullMem {
                next_backup: 0x7000_0000_0000,
            },
            cfg,
        );
        for _ in 0..4 {
            message(&mut e, size, k);
        }
        let before = e.counters.elided_copies;
        let mut iters = 0u64;
        let id = BenchmarkId::new(format!("{}KiB", size >> 10), format!("{k}copies"));
        g.bench_function(id, |b| {
            b.iter(|| {
                message(&mut e, size, k);
                iters += 1;
            })
        });
        // Every copy of every message was elided: the work timed is the
        // elision path, not a fallback.
        assert_eq!(e.counters.elided_copies - before, iters * k as u64);
        e.check();
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(30)
        .warm_up_time(std::time::Duration::from_millis(300))
        .measurement_time(std::time::Duration::from_secs(2));
    targets = bench
}
criterion_main!(benches);

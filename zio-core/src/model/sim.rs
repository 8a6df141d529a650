//! The simulated address space: pages with userfaultfd semantics
//! (missing, registered, write-protected), and zio's own memory beyond
//! the program's, counting the calls that are system calls for real.

use crate::engine::Mem;
use crate::ranges::PAGE;

/// Pages of the simulated address space.
pub(super) const PAGES: usize = 96;
pub(super) const BASE: usize = 0x10_0000;
/// Pages [SHARED_FROM, PAGES) behave like shared memory: elision refused.
pub(super) const SHARED_FROM: usize = 88;
/// Pages after the program's, where zio's backups live (out of the
/// program's reach: never touched, checked or freed by it).
pub(super) const BACKUP_PAGES: usize = 64;

#[derive(Clone)]
pub(super) struct SimPage {
    pub(super) data: Vec<u8>,
    pub(super) present: bool,
    pub(super) wp: bool,
}

/// The simulated memory with userfaultfd semantics.
pub(super) struct Sim {
    pub(super) pages: Vec<SimPage>,
    pub(super) registered: Vec<bool>,
    /// Backup pages in use.
    pub(super) backup_used: Vec<bool>,
    /// Protection changes asked for (each is an ioctl in the real backend).
    pub(super) protect_calls: u64,
    /// Unmap and zero-page calls (a system call each in the real backend).
    pub(super) unmap_calls: u64,
    pub(super) zero_calls: u64,
    /// Present pages [`Mem::zero_range`] was asked to fill: it is for
    /// pages zio knows to be missing, and the real backend allocates and
    /// copies a page for each before it finds the page there.
    pub(super) fresh_on_present: u64,
    /// Questions whether pages a free left missing are still registered
    /// (an ioctl each in the real backend).
    pub(super) check_calls: u64,
    /// Fills of missing pages with bytes (`UFFDIO_COPY` calls).
    pub(super) fill_calls: u64,
    /// Every fill fails, as `UFFDIO_COPY` does when the kernel is out of
    /// memory.
    pub(super) refuse_fills: bool,
    /// Reads of plain memory under the lock ([`Mem::read_plain`]).
    pub(super) plain_reads: u64,
    /// Writes of plain memory under the lock ([`Mem::write_plain`]).
    pub(super) plain_writes: u64,
}

impl Sim {
    pub(super) fn new() -> Sim {
        Sim {
            pages: vec![
                SimPage {
                    data: vec![0; PAGE],
                    present: true,
                    wp: false
                };
                PAGES + BACKUP_PAGES
            ],
            registered: vec![false; PAGES],
            backup_used: vec![false; BACKUP_PAGES],
            protect_calls: 0,
            unmap_calls: 0,
            zero_calls: 0,
            fresh_on_present: 0,
            check_calls: 0,
            fill_calls: 0,
            refuse_fills: false,
            plain_reads: 0,
            plain_writes: 0,
        }
    }
    pub(super) fn idx(addr: usize) -> usize {
        (addr - BASE) / PAGE
    }
    /// What a plain access meets at a missing page: zeros, from the
    /// handler where it is registered (discarded behind zio's back), from
    /// the kernel where it is not (memory the allocator mapped anew).
    fn zero_discarded(&mut self, addr: usize, len: usize) {
        for i in Self::idx(addr)..Self::idx(addr + len - 1) + 1 {
            let p = &mut self.pages[i];
            if !p.present {
                p.data.iter_mut().for_each(|b| *b = 0);
                p.present = true;
            }
        }
    }
}

impl Mem for Sim {
    fn read(&self, addr: usize, out: &mut [u8]) {
        for (i, b) in out.iter_mut().enumerate() {
            let a = addr + i;
            let p = &self.pages[Self::idx(a)];
            assert!(
                p.present,
                "engine read a missing page at {a:#x} under the lock"
            );
            *b = p.data[a % PAGE];
        }
    }
    fn make_missing(&mut self, a: usize, len: usize) -> bool {
        if Self::idx(a + len - 1) >= SHARED_FROM {
            return false;
        }
        self.unmap_calls += 1;
        for i in Self::idx(a)..Self::idx(a + len - 1) + 1 {
            self.registered[i] = true;
            let p = &mut self.pages[i];
            p.present = false;
            p.data.iter_mut().for_each(|b| *b = 0xEE); // garbage: must never be seen
        }
        true
    }
    fn release(&mut self, page: usize, a: usize, b: usize) -> bool {
        assert!(a <= page && page < b);
        // The program's pages are its one mapping.
        let (a, b) = (a.max(BASE), b.min(BASE + PAGES * PAGE));
        for i in Self::idx(a)..Self::idx(b) {
            assert!(!self.pages[i].wp, "released a protected page");
            self.registered[i] = false;
        }
        true
    }
    fn private_writable(&mut self, a: usize, len: usize) -> bool {
        // The shared pages stand for memory other than private anonymous.
        Self::idx(a + len - 1) < SHARED_FROM
    }
    fn still_missing(&mut self, a: usize, len: usize) -> bool {
        self.check_calls += 1;
        (Self::idx(a)..Self::idx(a + len - 1) + 1)
            .all(|i| self.registered[i] && !self.pages[i].present)
    }
    fn fill(&mut self, page: usize, data: &[u8]) -> bool {
        self.fill_calls += 1;
        if self.refuse_fills {
            return false;
        }
        for (i, chunk) in data.chunks(PAGE).enumerate() {
            let a = page + i * PAGE;
            let p = &mut self.pages[Self::idx(a)];
            assert!(!p.present, "fill of a present page {a:#x}");
            p.data.copy_from_slice(chunk);
            p.present = true;
        }
        true
    }
    fn zero_run(&mut self, a: usize, len: usize) {
        self.zero_calls += 1;
        assert!(!self.pages[Self::idx(a)].present);
        for i in Self::idx(a)..(Self::idx(a + len - 1) + 1).min(PAGES) {
            let p = &mut self.pages[i];
            if p.present {
                break;
            }
            p.data.iter_mut().for_each(|b| *b = 0);
            p.present = true;
        }
    }
    fn zero_range(&mut self, a: usize, len: usize) {
        let present = (Self::idx(a)..Self::idx(a + len - 1) + 1)
            .filter(|&i| self.pages[i].present)
            .count();
        self.fresh_on_present += present as u64;
        self.zero_if_missing(a, len);
    }
    fn zero_if_missing(&mut self, a: usize, len: usize) {
        self.zero_calls += 1;
        for i in Self::idx(a)..Self::idx(a + len - 1) + 1 {
            let p = &mut self.pages[i];
            if !p.present {
                p.data.iter_mut().for_each(|b| *b = 0);
                p.present = true;
            }
        }
    }
    fn backup(&mut self, src: usize, len: usize) -> Option<usize> {
        let addr = self.own(len)?;
        let mut bytes = vec![0; len];
        self.read(src, &mut bytes);
        for (i, b) in bytes.into_iter().enumerate() {
            let a = addr + i;
            self.pages[Self::idx(a)].data[a % PAGE] = b;
        }
        Some(addr)
    }
    fn backup_release(&mut self, addr: usize, len: usize) {
        let first = Self::idx(addr) - PAGES;
        let n = len.div_ceil(PAGE);
        assert!(
            self.backup_used[first..first + n].iter().all(|&u| u),
            "release of a free backup"
        );
        self.backup_used[first..first + n]
            .iter_mut()
            .for_each(|u| *u = false);
        for i in first..first + n {
            // Poison: a piece still pointing here would show up as wrong bytes.
            self.pages[PAGES + i]
                .data
                .iter_mut()
                .for_each(|b| *b = 0xBB);
        }
    }
    fn own(&mut self, len: usize) -> Option<usize> {
        let n = len.div_ceil(PAGE);
        let first = (0..=BACKUP_PAGES.checked_sub(n)?)
            .find(|&i| self.backup_used[i..i + n].iter().all(|u| !u))?;
        self.backup_used[first..first + n]
            .iter_mut()
            .for_each(|u| *u = true);
        Some(BASE + (PAGES + first) * PAGE)
    }
    fn write(&mut self, addr: usize, data: &[u8]) {
        for (i, &b) in data.iter().enumerate() {
            let p = &mut self.pages[Self::idx(addr + i)];
            assert!(
                p.present && !p.wp,
                "engine wrote an unavailable page at {:#x}",
                addr + i
            );
            p.data[(addr + i) % PAGE] = b;
        }
    }
    fn read_plain(&mut self, addr: usize, out: &mut [u8]) {
        self.plain_reads += 1;
        self.zero_discarded(addr, out.len());
        self.read(addr, out);
    }
    fn write_plain(&mut self, addr: usize, data: &[u8]) {
        self.plain_writes += 1;
        self.zero_discarded(addr, data.len());
        self.write(addr, data);
    }
    fn protect(&mut self, a: usize, len: usize, on: bool) -> bool {
        self.protect_calls += 1;
        for i in Self::idx(a)..Self::idx(a + len - 1) + 1 {
            self.registered[i] = true;
            self.pages[i].wp = on;
        }
        true
    }
}

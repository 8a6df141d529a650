//! Which memory may be elided into: private anonymous mappings only.
//!
//! `MADV_DONTNEED` on shared or file-backed memory does not discard its
//! data, so no missing fault would ever come and the program would read
//! stale bytes. The `PROCMAP_QUERY` ioctl on an open `/proc/self/maps`
//! (Linux 6.11+) answers "which mapping holds this address and what is it"
//! in well under a microsecond, without parsing text. Without it, zio elides
//! nothing (and says so once).

use core::ffi::c_int;
use core::sync::atomic::{AtomicI32, AtomicU64, Ordering};

/// `_IOWR('f', 17, struct procmap_query)` (104 bytes).
const PROCMAP_QUERY: libc::c_ulong = 0xc068_6611;
const VMA_SHARED: u64 = 0x08;
const VMA_WRITABLE: u64 = 0x02;

#[repr(C)]
#[derive(Default)]
struct ProcmapQuery {
    size: u64,
    query_flags: u64,
    query_addr: u64,
    vma_start: u64,
    vma_end: u64,
    vma_flags: u64,
    vma_page_size: u64,
    vma_offset: u64,
    inode: u64,
    dev_major: u32,
    dev_minor: u32,
    vma_name_size: u32,
    build_id_size: u32,
    vma_name_addr: u64,
    build_id_addr: u64,
}

/// `/proc/self/maps`, opened at first use (-1: not yet, -2: unusable).
static MAPS_FD: AtomicI32 = AtomicI32::new(-1);

/// `PROCMAP_QUERY` ioctls made (the engine's system calls include them).
static QUERIES: AtomicU64 = AtomicU64::new(0);

/// `PROCMAP_QUERY` ioctls made so far, by every thread.
pub fn queries() -> u64 {
    QUERIES.load(Ordering::Relaxed)
}

fn maps_fd() -> c_int {
    let fd = MAPS_FD.load(Ordering::Relaxed);
    if fd != -1 {
        return fd;
    }
    // SAFETY: NUL-terminated literal path.
    let fd = unsafe {
        libc::open(
            c"/proc/self/maps".as_ptr(),
            libc::O_RDONLY | libc::O_CLOEXEC,
        )
    };
    let fd = if fd < 0 { -2 } else { fd };
    MAPS_FD.store(fd, Ordering::Relaxed);
    fd
}

/// In a child after `fork`: `/proc/self` was resolved to the parent when the
/// file was opened, so open it again.
pub fn reset_after_fork() {
    let fd = MAPS_FD.load(Ordering::Relaxed);
    if fd >= 0 {
        MAPS_FD.store(-1, Ordering::Relaxed);
        // SAFETY: closing our own descriptor.
        unsafe { libc::close(fd) };
    }
}

/// The answer for `[a, b)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Private anonymous, writable, 4 KiB pages, all of it.
    PrivateAnon,
    /// Something else (shared, file-backed, huge pages, unmapped, or the
    /// range spans kinds).
    Other,
    /// The kernel cannot answer (no `PROCMAP_QUERY`).
    Unknown,
}

/// The mapping that holds `addr`, or the `errno` of the query (`ENOENT`:
/// nothing mapped there; `ENOTTY`/`EINVAL`: no `PROCMAP_QUERY`).
fn query(addr: usize) -> Result<ProcmapQuery, i32> {
    let fd = maps_fd();
    if fd < 0 {
        return Err(libc::ENOTTY);
    }
    let mut q = ProcmapQuery {
        size: core::mem::size_of::<ProcmapQuery>() as u64,
        query_addr: addr as u64,
        ..ProcmapQuery::default()
    };
    QUERIES.fetch_add(1, Ordering::Relaxed);
    // SAFETY: `q` is a valid procmap_query with no name or build-id buffers
    // requested.
    if unsafe { libc::ioctl(fd, PROCMAP_QUERY, &mut q) } < 0 {
        return Err(crate::log::errno());
    }
    Ok(q)
}

/// The end of the mapping (VMA) that holds `addr`, if the kernel can say.
/// Adjacent mappings of the same kind need not be one VMA (the kernel merges
/// them only when flags, userfaultfd context and anon_vma all agree), and
/// userfaultfd's fill calls refuse a range that spans two.
pub fn mapping_end(addr: usize) -> Option<usize> {
    mapping(addr).map(|m| m.1)
}

/// The start and end of the mapping that holds `addr`, if the kernel can
/// say.
pub fn mapping(addr: usize) -> Option<(usize, usize)> {
    query(addr)
        .ok()
        .map(|q| (q.vma_start as usize, q.vma_end as usize))
}

/// Classifies `[a, b)`, walking the mappings it spans.
pub fn classify(a: usize, b: usize) -> Kind {
    classify_span(a, b).0
}

/// As [`classify`], with the mapping (start, end) that made the answer
/// `Other` when one mapping is not private anonymous memory (a shared or
/// file-backed one, stays so until it is unmapped); `None` for the other
/// answers and for a hole.
pub fn classify_span(a: usize, b: usize) -> (Kind, Option<(usize, usize)>) {
    let mut pos = a;
    while pos < b {
        let q = match query(pos) {
            Ok(q) => q,
            Err(libc::ENOTTY | libc::EINVAL) => return (Kind::Unknown, None),
            Err(_) => return (Kind::Other, None), // ENOENT: not mapped
        };
        if q.vma_start as usize > pos {
            return (Kind::Other, None); // a hole before the next mapping
        }
        let anon = q.inode == 0 && q.dev_major == 0 && q.dev_minor == 0;
        if q.vma_flags & VMA_SHARED != 0
            || q.vma_flags & VMA_WRITABLE == 0
            || !anon
            || q.vma_page_size != 4096
        {
            return (
                Kind::Other,
                Some((q.vma_start as usize, q.vma_end as usize)),
            );
        }
        pos = q.vma_end as usize;
    }
    (Kind::PrivateAnon, None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heap_is_private_anon_and_shared_is_not() {
        let v = vec![0u8; 1 << 20];
        let a = v.as_ptr() as usize;
        assert_eq!(classify(a, a + v.len()), Kind::PrivateAnon);
        // SAFETY: plain anonymous shared mapping, unmapped below.
        let p = unsafe {
            libc::mmap(
                core::ptr::null_mut(),
                1 << 16,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        } as usize;
        assert_eq!(classify(p, p + (1 << 16)), Kind::Other);
        // The shared mapping is named, whole, as the one refusing.
        assert_eq!(
            classify_span(p + 4096, p + 8192),
            (Kind::Other, Some((p, p + (1 << 16))))
        );
        assert_eq!(classify_span(a, a + v.len()), (Kind::PrivateAnon, None));
        // SAFETY: unmapping what was mapped above.
        unsafe { libc::munmap(p as *mut libc::c_void, 1 << 16) };
        assert_eq!(classify(p, p + 4096), Kind::Other, "unmapped");
        assert_eq!(
            classify_span(p, p + 4096).1,
            None,
            "a hole names no mapping"
        );
    }
}

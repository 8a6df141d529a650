//! Tests of the userfaultfd wrapper against the real kernel (`uffd.rs`).

use super::*;

/// A fresh private anonymous mapping of `len` bytes (the test unmaps it).
fn anon(len: usize) -> usize {
    let a = crate::heap::map(len);
    assert!(!a.is_null(), "mmap of {len} bytes refused");
    a as usize
}

#[test]
fn probe_as_root_sees_features() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        // The unprivileged path is tested under LD_PRELOAD with setpriv.
        return;
    }
    let f = probe().expect("root may always open a userfaultfd");
    assert!(f & feature::PAGEFAULT_FLAG_WP != 0, "features {f:#x}");
    let u = open(feature::PAGEFAULT_FLAG_WP | feature::EVENT_FORK).unwrap();
    assert_eq!(
        u.features & feature::PAGEFAULT_FLAG_WP,
        feature::PAGEFAULT_FLAG_WP
    );
}

/// The kernel's answer to a fill that reaches a present page after
/// filling some is `EAGAIN`, with the bytes it did (`EEXIST` only when
/// the first page is present); `Uffd::copy` goes on past it.
#[test]
fn raw_fill_stops_at_a_present_page() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return;
    }
    let a = anon(4 * PAGE);
    let u = open(feature::PAGEFAULT_FLAG_WP).unwrap();
    u.register(a, 4 * PAGE).unwrap();
    let mut z = Zeropage {
        range: Range {
            start: (a + 2 * PAGE) as u64,
            len: PAGE as u64,
        },
        mode: 0,
        zeropage: 0,
    };
    assert_eq!(u.ioctl(UFFDIO_ZEROPAGE, &mut z), Ok(()));
    let data = vec![7u8; 4 * PAGE];
    let mut c = Copy {
        dst: a as u64,
        src: data.as_ptr() as u64,
        len: 4 * PAGE as u64,
        mode: 0,
        copy: 0,
    };
    assert_eq!(u.ioctl(UFFDIO_COPY, &mut c), Err(libc::EAGAIN));
    assert_eq!(c.copy, 2 * PAGE as i64);
    let mut c = Copy {
        dst: (a + 2 * PAGE) as u64,
        src: data.as_ptr() as u64,
        len: 2 * PAGE as u64,
        mode: 0,
        copy: 0,
    };
    assert_eq!(u.ioctl(UFFDIO_COPY, &mut c), Err(libc::EEXIST));
    // Uffd::copy goes on past the present page: page 3 gets its data.
    // SAFETY: discarding pages 0-1 of our own registered mapping.
    unsafe { libc::madvise(a as *mut _, 2 * PAGE, libc::MADV_DONTNEED) };
    assert_eq!(u.copy(a, data.as_ptr(), 4 * PAGE), Ok(()));
    let mut present = [0u8; 4];
    // SAFETY: `present` holds one byte per page of the range.
    unsafe { libc::mincore(a as *mut _, 4 * PAGE, present.as_mut_ptr()) };
    assert_eq!(present, [1; 4]);
    // SAFETY: all four pages are present (checked just above).
    let bytes = unsafe { [0, 1, 2, 3].map(|p| *((a + p * PAGE) as *const u8)) };
    assert_eq!(bytes, [7, 7, 0, 7], "page 2 kept its zeros");
    // zeropage_run stops at the first present page.
    // SAFETY: as above.
    unsafe { libc::madvise(a as *mut _, 4 * PAGE, libc::MADV_DONTNEED) };
    u.zeropage(a + PAGE, PAGE).unwrap();
    assert_eq!(u.zeropage_run(a + 2 * PAGE, 2 * PAGE), Ok(()));
    // SAFETY: as above.
    unsafe { libc::mincore(a as *mut _, 4 * PAGE, present.as_mut_ptr()) };
    assert_eq!(present, [0, 1, 1, 1]);
    assert_eq!(
        u.zeropage_run(a + 3 * PAGE, PAGE),
        Ok(()),
        "present: woken only"
    );
    // SAFETY: unmapping what was mapped above.
    unsafe { libc::munmap(a as *mut _, 4 * PAGE) };
}

/// Copies and zero pages over a range that spans two registered
/// mappings fill every page (one call over both is refused by the
/// kernel with ENOENT and fills nothing), and skip a part that is not
/// registered.
#[test]
fn fills_span_mappings() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return;
    }
    const N: usize = 8;
    let a = anon(N * PAGE);
    // Different flags on the upper half: two mappings for good.
    // SAFETY: advice on our own mapping.
    let r = unsafe {
        libc::madvise(
            (a + N / 2 * PAGE) as *mut _,
            N / 2 * PAGE,
            libc::MADV_NOHUGEPAGE,
        )
    };
    assert_eq!(r, 0);
    let u = open(feature::PAGEFAULT_FLAG_WP).unwrap();
    // The first page is left unregistered.
    u.register(a + PAGE, (N - 1) * PAGE).unwrap();
    let data: Vec<u8> = (0..N * PAGE).map(|i| (i / PAGE) as u8 + 1).collect();
    // Pages 1..N: both mappings in one call.
    assert_eq!(
        u.copy(a + PAGE, data[PAGE..].as_ptr(), (N - 1) * PAGE),
        Ok(())
    );
    for p in 1..N {
        // SAFETY: inside the mapping, filled just above.
        let b = unsafe { *((a + p * PAGE + 7) as *const u8) };
        assert_eq!(b, p as u8 + 1, "page {p}");
    }
    // Drop them again; zero pages over all N (page 0 not registered).
    // SAFETY: discarding our own registered pages.
    unsafe { libc::madvise(a as *mut _, N * PAGE, libc::MADV_DONTNEED) };
    assert_eq!(u.zeropage(a, N * PAGE), Err(libc::ENOENT));
    // Present before they are read: a missing page would wait for a
    // handler this test does not have.
    let mut present = [0u8; N];
    // SAFETY: `present` holds one byte per page of the range.
    let r = unsafe { libc::mincore(a as *mut _, N * PAGE, present.as_mut_ptr()) };
    assert_eq!(r, 0);
    assert_eq!(present[1..], [1; N - 1]);
    for p in 0..N {
        // SAFETY: inside the mapping: page 0 is an ordinary anonymous
        // page, the others were just given zero pages.
        let b = unsafe { *((a + p * PAGE + 7) as *const u8) };
        assert_eq!(b, 0, "page {p}");
    }
    // SAFETY: unmapping what was mapped above.
    unsafe { libc::munmap(a as *mut _, N * PAGE) };
}

fn minor_faults() -> i64 {
    // SAFETY: getrusage fills the struct it is given.
    unsafe {
        let mut r: libc::rusage = core::mem::zeroed();
        libc::getrusage(libc::RUSAGE_THREAD, &mut r);
        r.ru_minflt
    }
}

/// `zero_writable` maps zeroed pages that take writes without a fault
/// (zero pages take a copy-on-write fault each), over more than one chunk
/// of the zero region, and leaves a present page as it was.
#[test]
fn zero_writable_pages_take_writes_without_faults() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return;
    }
    let n = ZEROS / PAGE + 3;
    let a = anon(n * PAGE);
    let u = open(feature::PAGEFAULT_FLAG_WP).unwrap();
    u.register(a, n * PAGE).unwrap();
    let kept = a + 5 * PAGE;
    u.copy(kept, [7u8; PAGE].as_ptr(), PAGE).unwrap();
    assert_eq!(u.zero_writable(a, n * PAGE), Ok(()));
    let before = minor_faults();
    for p in 0..n {
        let at = (a + p * PAGE + 9) as *mut u8;
        // SAFETY: inside the registered mapping, every page now present.
        unsafe {
            assert_eq!(*at, if p == 5 { 7 } else { 0 }, "page {p}");
            *at = 1;
        }
    }
    assert_eq!(minor_faults() - before, 0, "writes faulted");
    // Zero pages, by contrast, fault at the first write of each.
    // SAFETY: discarding our own registered pages.
    unsafe { libc::madvise(a as *mut _, 4 * PAGE, libc::MADV_DONTNEED) };
    u.zeropage(a, 4 * PAGE).unwrap();
    let before = minor_faults();
    for p in 0..4 {
        // SAFETY: inside the mapping, given zero pages just above.
        unsafe { *((a + p * PAGE) as *mut u8) = 1 };
    }
    assert_eq!(minor_faults() - before, 4);
    // SAFETY: unmapping what was mapped above.
    unsafe { libc::munmap(a as *mut _, n * PAGE) };
}

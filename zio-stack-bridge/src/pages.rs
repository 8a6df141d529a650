//! Page-aligned buffers: the memory a stack hands zio, whose whole pages
//! copies can be elided into and out of.

use std::alloc::{alloc_zeroed, dealloc, Layout};

/// The page size zio works in.
pub const PAGE: usize = 4096;

/// A zeroed, page-aligned buffer of whole pages.
pub struct PageBuf {
    ptr: *mut u8,
    len: usize,
}

// SAFETY: it owns its memory, as a Box<[u8]> would.
unsafe impl Send for PageBuf {}

impl PageBuf {
    /// `len` bytes (rounded up to whole pages, at least one).
    pub fn new(len: usize) -> PageBuf {
        let len = len.max(1).div_ceil(PAGE) * PAGE;
        let layout = Layout::from_size_align(len, PAGE).expect("page buffer size");
        // SAFETY: a non-zero size.
        let ptr = unsafe { alloc_zeroed(layout) };
        if ptr.is_null() {
            std::alloc::handle_alloc_error(layout);
        }
        PageBuf { ptr, len }
    }

    /// Its length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Never true: a buffer has a page at least.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Its first byte.
    pub fn as_ptr(&self) -> *const u8 {
        self.ptr
    }

    /// Its bytes.
    pub fn as_slice(&self) -> &[u8] {
        // SAFETY: `len` initialized (zeroed) bytes owned by `self`.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }

    /// Its bytes, to write.
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: as in `as_slice`, borrowed mutably.
        unsafe { std::slice::from_raw_parts_mut(self.ptr, self.len) }
    }
}

impl std::ops::Deref for PageBuf {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.as_slice()
    }
}

impl std::ops::DerefMut for PageBuf {
    fn deref_mut(&mut self) -> &mut [u8] {
        self.as_mut_slice()
    }
}

impl Drop for PageBuf {
    fn drop(&mut self) {
        let layout = Layout::from_size_align(self.len, PAGE).expect("page buffer size");
        // SAFETY: allocated in `new` with this layout.
        unsafe { dealloc(self.ptr, layout) };
    }
}

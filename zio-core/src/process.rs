//! How a new process relates to this one's memory: which `clone` flags and
//! which raw `syscall`s make a copy of the address space (that a child
//! made so needs everything elided materialized first), and which share
//! it. The hooks that act on it are libzio's `process.rs`.

use core::ffi::c_long;

use crate::usermem;

/// What a `clone` or `clone3` with these flags and this child stack
/// does to zio's memory.
#[derive(Debug, PartialEq, Eq)]
pub enum Copy {
    /// The child shares the address space: nothing to do.
    Shared,
    /// A copy whose child returns here, on a copy of this stack.
    Fork,
    /// A copy whose child starts on a stack of its own, in code zio never
    /// sees: everything is materialized first, and the child inherits no
    /// held lock.
    Detached,
}

/// The kind of copy a clone with `flags` and child `stack` makes.
pub fn copy_kind(flags: u64, stack: u64) -> Copy {
    if flags & libc::CLONE_VM as u64 != 0 {
        Copy::Shared
    } else if stack == 0 {
        Copy::Fork
    } else {
        Copy::Detached
    }
}

/// The `clone` or `clone3` behind a `syscall(n, a, b, ...)`, if it is one.
pub fn raw_clone(n: c_long, a: c_long, b: c_long) -> Option<Copy> {
    match n {
        libc::SYS_fork => Some(Copy::Fork),
        libc::SYS_clone => Some(copy_kind(a as u64, b as u64)),
        libc::SYS_clone3 => {
            // `struct clone_args`: flags first, the stack the sixth u64.
            let args = a as *const u64;
            if (b as usize) < 48 || !usermem::readable(args as usize, 48) {
                return None; // the kernel refuses it
            }
            // SAFETY: 48 readable bytes at `args` (perhaps misaligned).
            let (flags, stack) = unsafe {
                (
                    core::ptr::read_unaligned(args),
                    core::ptr::read_unaligned(args.add(5)),
                )
            };
            Some(copy_kind(flags, stack))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn which_clones_copy_memory() {
        let vm = libc::CLONE_VM as u64;
        assert_eq!(
            copy_kind(vm | libc::CLONE_VFORK as u64, 0x1000),
            Copy::Shared
        );
        assert_eq!(copy_kind(libc::SIGCHLD as u64, 0), Copy::Fork);
        assert_eq!(copy_kind(libc::SIGCHLD as u64, 0x7000_0000), Copy::Detached);
        assert_eq!(raw_clone(libc::SYS_fork, 0, 0), Some(Copy::Fork));
        assert_eq!(raw_clone(libc::SYS_getpid, 0, 0), None);
        let args = [vm, 0, 0, 0, 17, 0, 0, 0];
        assert_eq!(
            raw_clone(libc::SYS_clone3, args.as_ptr() as c_long, 64),
            Some(Copy::Shared)
        );
        assert_eq!(raw_clone(libc::SYS_clone3, 8, 64), None, "unreadable args");
        assert_eq!(
            raw_clone(libc::SYS_clone3, args.as_ptr() as c_long, 8),
            None,
            "too short"
        );
    }
}

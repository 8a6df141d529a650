//! loom checks of the engine's one-time starts (`zio-core/src/once.rs`,
//! its self-test and arming): among racing callers exactly one makes the
//! start, nobody waits for it, and whoever sees it passed sees everything
//! the starter wrote before finishing it; a fork child makes again a start
//! its parent's thread left under way.

use loom::cell::UnsafeCell;
use loom::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use loom::sync::Arc;
use loom::thread;
#[path = "../../zio-core/src/once.rs"]
mod once;
use once::{begin, finish, passed, reset_after_fork, Turn, IDLE};

struct Start {
    state: AtomicU8,
    /// What the starter sets up (the engine's descriptor, its threads).
    made: UnsafeCell<u32>,
    runs: AtomicUsize,
}

/// What `armed()` does: the fast load, else a turn; the caller that runs
/// writes `made` first. Returns whether the start is usable by this caller,
/// and checks that a usable start shows what its starter wrote.
fn use_start(s: &Start, ok: bool) -> bool {
    let usable = passed(&s.state)
        || match begin(&s.state) {
            Turn::Run => {
                s.runs.fetch_add(1, Ordering::Relaxed);
                // SAFETY: only the caller holding Turn::Run writes, before
                // finish; loom checks it against every reader.
                s.made.with_mut(|p| unsafe { *p = 42 });
                finish(&s.state, ok);
                ok
            }
            Turn::Running => false,
            Turn::Done(passed) => passed,
        };
    if usable {
        // SAFETY: read after seeing the start passed (an acquire of the
        // starter's release); loom reports a race otherwise.
        let v = s.made.with(|p| unsafe { *p });
        assert_eq!(v, 42, "a passed start shows what its starter made");
    }
    usable
}

fn start() -> Arc<Start> {
    Arc::new(Start {
        state: AtomicU8::new(IDLE),
        made: UnsafeCell::new(0),
        runs: AtomicUsize::new(0),
    })
}

#[test]
fn racing_callers_start_once_and_see_what_it_made() {
    for ok in [true, false] {
        loom::model(move || {
            let s = start();
            let hs: Vec<_> = (0..2)
                .map(|_| {
                    let s = s.clone();
                    thread::spawn(move || use_start(&s, ok))
                })
                .collect();
            let seen: Vec<bool> = hs.into_iter().map(|h| h.join().unwrap()).collect();
            assert_eq!(s.runs.load(Ordering::Relaxed), 1, "exactly one start");
            assert!(
                seen.iter().all(|&u| !u || ok),
                "a failed start is never usable"
            );
            assert_eq!(use_start(&s, ok), ok, "after both, the outcome");
        });
    }
}

#[test]
fn a_fork_child_starts_again_what_its_parent_left_under_way() {
    loom::model(|| {
        let s = start();
        // A thread of the parent claims the start and is still making it
        // when another thread forks: the child has only the forking thread.
        assert_eq!(begin(&s.state), Turn::Run);
        let child = {
            let s = s.clone();
            thread::spawn(move || {
                reset_after_fork(&s.state, true);
                use_start(&s, true)
            })
        };
        assert!(child.join().unwrap(), "the child made its own start");
        assert_eq!(s.runs.load(Ordering::Relaxed), 1);
    });
}

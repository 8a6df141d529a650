//! loom checks of counter-slot claiming (`zio-core/src/claim.rs`): two
//! threads never own one slot at once, a slot given back is claimed with
//! everything its last owner wrote visible, and a claim fails only when
//! every slot is owned.

use loom::cell::UnsafeCell;
use loom::sync::atomic::AtomicBool;
use loom::sync::Arc;
use loom::thread;
#[path = "../../zio-core/src/claim.rs"]
mod claim;
use claim::{first_free, give_back};

struct Slots {
    owned: [AtomicBool; 2],
    counts: [UnsafeCell<u32>; 2],
}

/// Claims a slot, counts in it as its owner does, zeroes it as `retire`
/// does, gives it back. Returns whether a slot was free.
fn use_a_slot(s: &Slots) -> bool {
    let Some(i) = first_free(&s.owned) else {
        return false;
    };
    // SAFETY: slot `i` is this thread's until it is given back; loom
    // checks every access against the claim's acquire and the give-back's
    // release.
    s.counts[i].with_mut(|p| unsafe {
        assert_eq!(*p, 0, "the last owner's zeroing is visible");
        *p += 1;
        *p = 0;
    });
    give_back(&s.owned[i]);
    true
}

#[test]
fn threads_own_slots_alone_and_see_them_zeroed() {
    loom::model(|| {
        let s = Arc::new(Slots {
            owned: [AtomicBool::new(false), AtomicBool::new(false)],
            counts: [UnsafeCell::new(0), UnsafeCell::new(0)],
        });
        let hs: Vec<_> = (0..2)
            .map(|_| {
                let s = s.clone();
                thread::spawn(move || {
                    assert!(use_a_slot(&s), "two slots for two threads");
                    use_a_slot(&s);
                })
            })
            .collect();
        for h in hs {
            h.join().unwrap();
        }
    });
}

#[test]
fn a_claim_fails_only_when_every_slot_is_owned() {
    loom::model(|| {
        let s = Arc::new(Slots {
            owned: [AtomicBool::new(true), AtomicBool::new(false)],
            counts: [UnsafeCell::new(0), UnsafeCell::new(0)],
        });
        let s2 = s.clone();
        let h = thread::spawn(move || first_free(&s2.owned));
        let mine = first_free(&s.owned);
        let theirs = h.join().unwrap();
        // One free slot: exactly one of the two claims gets it.
        assert_eq!(
            [mine, theirs].iter().filter(|c| **c == Some(1)).count(),
            1,
            "{mine:?} {theirs:?}"
        );
        assert!(mine.is_none() || theirs.is_none());
    });
}

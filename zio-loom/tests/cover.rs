//! loom checks of the engine's cover (`zio-core/src/cover.rs`), the
//! seqlock hooks read without the engine's lock: a reader racing a
//! publish answers from one shape or the other, never from a mix of the
//! two, and a reader that saw a publish finish sees that shape.

use loom::sync::atomic::{AtomicBool, Ordering};
use loom::sync::Arc;
use loom::thread;
// Readers here use only the seqlock; the rest of the module is the
// engine's.
#[allow(dead_code)]
#[path = "../../zio-core/src/cover.rs"]
mod cover;
use cover::{Cover, Shape};

fn shape(bytes: &[(usize, usize)], pages: &[(usize, usize)]) -> Shape {
    Shape::of(bytes, pages)
}

#[test]
fn a_racing_reader_never_mixes_two_shapes() {
    loom::model(|| {
        // Each shape covers one of the two ranges the reader asks about:
        // a reader mixing the bytes of one with the pages of the other
        // would find both clear.
        let c = Arc::new(Cover::new());
        c.publish(&shape(&[(0, 10)], &[]));
        let r = {
            let c = c.clone();
            thread::spawn(move || c.clear((0, 10), (0, 10)))
        };
        c.publish(&shape(&[(40, 50)], &[(0, 10)]));
        assert!(!r.join().unwrap());
        assert!(c.clear((0, 10), (20, 30)));
    });
}

#[test]
fn a_shape_published_before_a_handoff_is_seen_after_it() {
    loom::model(|| {
        let c = Arc::new(Cover::new());
        let handed = Arc::new(AtomicBool::new(false));
        let r = {
            let (c, handed) = (c.clone(), handed.clone());
            thread::spawn(move || {
                // The engine's lock hands the cover on this way.
                let seen = handed.load(Ordering::Acquire);
                (seen, c.clear((10, 20), (0, 1)), c.clear((5, 6), (0, 1)))
            })
        };
        c.publish(&shape(&[(0, 10)], &[]));
        handed.store(true, Ordering::Release);
        let (seen, beside, inside) = r.join().unwrap();
        assert!(!inside, "a covered range read clear");
        // Before the publish nothing is clear; after it, what it left
        // clear is, unless another publish is under way (none here).
        assert!(!seen || beside, "the published shape was not seen");
    });
}

//! Model-grid level buffers kept per thread for the lat-lon slab producers.
//!
//! A lat-lon level of a vector pair passes through four model-grid levels (the two
//! components as read, then at cell centres) before it is regridded; allocating and
//! zeroing them afresh for every level of every granule was 1% of a velocity lat-lon
//! granule's CPU (`perf`), for values that are all overwritten before they are read.

use std::cell::RefCell;

use crate::buffers::{Kept, Scratch};

thread_local! {
    static KEPT_BUFFERS: RefCell<Vec<Vec<f32>>> = const { RefCell::new(Vec::new()) };
}

/// Values of the longest buffer kept (16 MiB): every level up to LLC540. Finer grids'
/// levels (60 MB at LLC1080) are freed when dropped, as before, so a rank does not hold
/// them between granules.
const KEPT_MAX_LEN: usize = 4 << 20;

/// Per thread: the four buffers of a vector pair's level and a spare.
static LEVELS: Kept = Kept::new(&KEPT_BUFFERS, 5, KEPT_MAX_LEN);

/// A buffer of `len` values whose contents are unspecified: its user writes every
/// value before reading any. It goes back to this thread's kept buffers when dropped.
pub(crate) fn overwritten(len: usize) -> Scratch {
    LEVELS.scratch(len)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_buffer_has_the_asked_length_and_is_reused_on_its_thread() {
        let mut a = overwritten(8);
        assert_eq!(a.len(), 8);
        a.fill(3.0);
        let at = a.as_ptr();
        drop(a);
        // Shorter: the same allocation, cut to length.
        let b = overwritten(5);
        assert_eq!((b.len(), b.as_ptr()), (5, at));
        drop(b);
        // Longer: grown, the new values zero.
        let c = overwritten(12);
        assert_eq!(c.len(), 12);
        assert_eq!(&c[8..], &[0.0; 4]);
        // Two at once are two buffers.
        let d = overwritten(4);
        assert_ne!(c.as_ptr(), d.as_ptr());
        drop((c, d));
        assert_eq!(LEVELS.count(), 2);
        // One over the kept size is freed, not kept (it took a kept one and grew it).
        drop(overwritten(KEPT_MAX_LEN + 1));
        assert_eq!(LEVELS.count(), 1);
    }
}

//! Level-sized scratch buffers kept per thread for the slab producers.
//!
//! A lat-lon level of a vector pair passes through four model-grid levels (the two
//! components as read, then at cell centres) before it is regridded; allocating and
//! zeroing them afresh for every level of every granule was 1% of a velocity lat-lon
//! granule's CPU (`perf`), for values that are all overwritten before they are read.
//! A [`Scratch`] is taken from this thread's kept buffers and goes back when dropped;
//! taking and giving back (rather than borrowing a thread-local) stays correct when
//! rayon runs another producer on this thread while one waits in a parallel loop.

use std::cell::RefCell;
use std::ops::{Deref, DerefMut};

/// Buffers kept per thread: the four of a vector pair's level and a spare.
const KEPT: usize = 5;

/// Values of the longest buffer kept (16 MiB): every level up to LLC540. Finer grids'
/// levels (60 MB at LLC1080) are freed when dropped, as before, so a rank does not hold
/// them between granules.
const KEPT_MAX_LEN: usize = 4 << 20;

thread_local! {
    static KEPT_BUFFERS: RefCell<Vec<Vec<f32>>> = const { RefCell::new(Vec::new()) };
}

/// A buffer of `len` values whose contents are unspecified (left from an earlier use
/// on this thread, or zero): its user writes every value before reading any.
pub(crate) struct Scratch(Vec<f32>);

/// A scratch buffer of `len` values (see [`Scratch`]).
pub(crate) fn overwritten(len: usize) -> Scratch {
    let kept = KEPT_BUFFERS.with(|b| b.borrow_mut().pop());
    let mut buf = kept.unwrap_or_default();
    if buf.len() >= len {
        buf.truncate(len);
    } else {
        buf.resize(len, 0.0);
    }
    Scratch(buf)
}

impl Deref for Scratch {
    type Target = [f32];

    fn deref(&self) -> &[f32] {
        &self.0
    }
}

impl DerefMut for Scratch {
    fn deref_mut(&mut self) -> &mut [f32] {
        &mut self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let buf = std::mem::take(&mut self.0);
        if buf.capacity() > KEPT_MAX_LEN {
            return;
        }
        // A thread ending drops its kept buffers; giving back then is a no-op.
        let _ = KEPT_BUFFERS.try_with(|b| {
            let mut b = b.borrow_mut();
            if b.len() < KEPT {
                b.push(buf);
            }
        });
    }
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
        assert_eq!(kept(), 2);
        // One over the kept size is freed, not kept (it took a kept one and grew it).
        drop(overwritten(KEPT_MAX_LEN + 1));
        assert_eq!(kept(), 1);
    }

    fn kept() -> usize {
        KEPT_BUFFERS.with(|b| b.borrow().len())
    }
}

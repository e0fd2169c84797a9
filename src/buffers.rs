//! Level-sized `f32` buffers kept per thread for reuse.
//!
//! Every level of every granule passes through buffers of the same few sizes (a
//! model-grid level as read, a unit of the writer); allocating them afresh per level
//! cost page faults and a memset each, measurable beside the deflate. A [`Kept`] is one
//! such set of buffers per thread: [`Kept::take`] pops one, [`Kept::give_back`] (or
//! dropping a [`Scratch`]) returns it. Taking and giving back, rather than borrowing a
//! thread-local for the duration, stays correct when rayon runs other work on the same
//! thread while one piece waits in a parallel loop.

use std::cell::RefCell;
use std::ops::{Deref, DerefMut};
use std::thread::LocalKey;

/// One thread-local list of buffers, with how many a thread keeps and the longest kept.
pub struct Kept {
    buffers: &'static LocalKey<RefCell<Vec<Vec<f32>>>>,
    most: usize,
    max_len: usize,
}

impl Kept {
    /// Buffers kept in `buffers`: at most `most` a thread, none longer than `max_len`
    /// values (longer ones are freed when given back).
    pub const fn new(
        buffers: &'static LocalKey<RefCell<Vec<Vec<f32>>>>,
        most: usize,
        max_len: usize,
    ) -> Kept {
        Kept {
            buffers,
            most,
            max_len,
        }
    }

    /// A buffer of `len` values whose contents are unspecified (left from an earlier
    /// use on this thread, or zero): its user writes every value before reading any.
    pub fn take(&self, len: usize) -> Vec<f32> {
        let kept = self.buffers.with(|b| b.borrow_mut().pop());
        let mut buf = kept.unwrap_or_default();
        if buf.len() >= len {
            buf.truncate(len);
        } else {
            buf.resize(len, 0.0);
        }
        buf
    }

    /// Gives `buf` back for this thread's next [`Kept::take`].
    pub fn give_back(&self, buf: Vec<f32>) {
        if buf.capacity() > self.max_len {
            return;
        }
        // A thread ending drops its kept buffers; giving back then is a no-op.
        let _ = self.buffers.try_with(|b| {
            let mut b = b.borrow_mut();
            if b.len() < self.most {
                b.push(buf);
            }
        });
    }

    /// [`Kept::take`] as a buffer that gives itself back when dropped.
    pub fn scratch(&'static self, len: usize) -> Scratch {
        Scratch {
            buf: self.take(len),
            kept: self,
        }
    }

    /// Buffers this thread keeps now.
    #[cfg(test)]
    pub fn count(&self) -> usize {
        self.buffers.with(|b| b.borrow().len())
    }
}

/// A buffer of [`Kept::scratch`]: contents unspecified until written, given back when
/// dropped.
pub struct Scratch {
    buf: Vec<f32>,
    kept: &'static Kept,
}

impl Deref for Scratch {
    type Target = [f32];

    fn deref(&self) -> &[f32] {
        &self.buf
    }
}

impl DerefMut for Scratch {
    fn deref_mut(&mut self) -> &mut [f32] {
        &mut self.buf
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        self.kept.give_back(std::mem::take(&mut self.buf));
    }
}

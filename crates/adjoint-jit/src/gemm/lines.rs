//! [`Lines`]: a growable buffer of floats that starts on a cache line, for packed panels.
//!
//! A `Vec<f32>` is only as aligned as the allocator makes it (16 bytes from glibc), so a
//! 64-byte vector load from a panel in one would straddle two cache lines every time, taking
//! two of the load ports' slots, and the packing's stores would split the same way.

use std::ops::{Deref, DerefMut};

/// Sixteen floats on one cache line.
#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct Line([f32; 16]);

/// Floats whose first one starts a cache line; every later line of 16 floats is one cache
/// line too.
pub(super) struct Lines(Vec<Line>);

impl Lines {
    /// An empty buffer (allocates nothing).
    pub const fn new() -> Lines {
        Lines(Vec::new())
    }

    /// Grows the buffer to at least `len` floats, new ones zero; never shrinks it and never
    /// clears it (packing writes every float it later reads).
    pub fn grow(&mut self, len: usize) {
        let lines = len.div_ceil(16);
        if self.0.len() < lines {
            self.0.resize(lines, Line([0.0; 16]));
        }
    }
}

impl Deref for Lines {
    type Target = [f32];

    fn deref(&self) -> &[f32] {
        // SAFETY: a `Line` is sixteen `f32` and nothing else (`repr(C)`, size 64, no
        // padding), so the lines are `16·len` initialized floats, aligned for `f32`.
        unsafe { std::slice::from_raw_parts(self.0.as_ptr().cast::<f32>(), self.0.len() * 16) }
    }
}

impl DerefMut for Lines {
    fn deref_mut(&mut self) -> &mut [f32] {
        // SAFETY: as in `deref`; the borrow of `self` is exclusive.
        unsafe {
            std::slice::from_raw_parts_mut(self.0.as_mut_ptr().cast::<f32>(), self.0.len() * 16)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Lines;

    #[test]
    fn starts_on_a_cache_line_and_keeps_what_it_holds() {
        let mut b = Lines::new();
        assert!(b.is_empty());
        b.grow(5);
        assert_eq!(b.len(), 16);
        assert_eq!(b.as_ptr() as usize % 64, 0);
        b[3] = 7.0;
        b.grow(1000);
        assert_eq!(b.len(), 1008);
        assert_eq!(b.as_ptr() as usize % 64, 0);
        assert_eq!(b[3], 7.0);
        assert!(b[16..].iter().all(|&x| x == 0.0));
        b.grow(10);
        assert_eq!(b.len(), 1008);
    }
}

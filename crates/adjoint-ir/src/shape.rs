//! Static tensor shapes and NumPy broadcasting.

use smallvec::SmallVec;
use std::fmt;

/// The largest rank a tensor may have.
pub const MAX_RANK: usize = 6;

/// Inline storage for dimensions or axes (no heap allocation up to [`MAX_RANK`]).
pub type Dims = SmallVec<[usize; MAX_RANK]>;

/// A static, row-major tensor shape of rank 0 (scalar) to [`MAX_RANK`].
#[derive(Clone, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
pub struct Shape(Dims);

impl Shape {
    /// A shape from its dimensions.
    pub fn new(dims: &[usize]) -> Shape {
        Shape(Dims::from_slice(dims))
    }

    /// The rank-0 shape of a scalar.
    pub fn scalar() -> Shape {
        Shape(Dims::new())
    }

    /// The dimensions, outermost first.
    pub fn dims(&self) -> &[usize] {
        &self.0
    }

    /// Number of axes.
    pub fn rank(&self) -> usize {
        self.0.len()
    }

    /// Number of elements (1 for a scalar).
    pub fn numel(&self) -> usize {
        self.0.iter().product()
    }

    /// Row-major (C order) strides in elements.
    pub fn strides(&self) -> Dims {
        let mut strides: Dims = smallvec::smallvec![0; self.rank()];
        let mut acc = 1;
        for (s, d) in strides.iter_mut().zip(self.0.iter()).rev() {
            *s = acc;
            acc *= d;
        }
        strides
    }

    /// Size of axis `axis`.
    pub fn dim(&self, axis: usize) -> usize {
        self.0[axis]
    }

    /// Resolves a possibly negative axis (`-1` is the last) against this rank.
    pub fn axis(&self, axis: isize) -> Option<usize> {
        normalize_axis(axis, self.rank())
    }
}

/// Resolves a possibly negative axis (`-1` is the last) against a rank.
pub fn normalize_axis(axis: isize, rank: usize) -> Option<usize> {
    let a = if axis < 0 { axis + rank as isize } else { axis };
    (0..rank as isize).contains(&a).then_some(a as usize)
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[")?;
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{d}")?;
        }
        f.write_str("]")
    }
}

impl fmt::Debug for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl From<&[usize]> for Shape {
    fn from(dims: &[usize]) -> Shape {
        Shape::new(dims)
    }
}

impl<const N: usize> From<[usize; N]> for Shape {
    fn from(dims: [usize; N]) -> Shape {
        Shape::new(&dims)
    }
}

impl<const N: usize> From<&[usize; N]> for Shape {
    fn from(dims: &[usize; N]) -> Shape {
        Shape::new(dims)
    }
}

impl From<Vec<usize>> for Shape {
    fn from(dims: Vec<usize>) -> Shape {
        Shape(Dims::from_vec(dims))
    }
}

impl From<Dims> for Shape {
    fn from(dims: Dims) -> Shape {
        Shape(dims)
    }
}

/// The shape two operands broadcast to under NumPy's rules: shapes are aligned on their last
/// axis; each pair of dimensions must be equal or one of them 1; missing leading axes count as 1.
/// Returns `None` when the shapes are incompatible.
pub fn broadcast_shapes(a: &Shape, b: &Shape) -> Option<Shape> {
    let rank = a.rank().max(b.rank());
    let mut out: Dims = smallvec::smallvec![0; rank];
    for i in 0..rank {
        let da = dim_from_end(a, rank - 1 - i);
        let db = dim_from_end(b, rank - 1 - i);
        out[i] = match (da, db) {
            (x, y) if x == y => x,
            (1, y) => y,
            (x, 1) => x,
            _ => return None,
        };
    }
    Some(Shape(out))
}

/// Whether `from` can be broadcast to `to` (NumPy `broadcast_to` rules).
pub fn can_broadcast_to(from: &Shape, to: &Shape) -> bool {
    from.rank() <= to.rank()
        && (0..from.rank()).all(|k| {
            let d = dim_from_end(from, k);
            d == 1 || d == dim_from_end(to, k)
        })
}

/// Dimension `k` counted from the last axis (0 = last), or 1 beyond the rank.
fn dim_from_end(s: &Shape, k: usize) -> usize {
    if k < s.rank() {
        s.dims()[s.rank() - 1 - k]
    } else {
        1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strides_are_row_major() {
        assert_eq!(Shape::new(&[2, 3, 4]).strides().as_slice(), &[12, 4, 1]);
        assert_eq!(Shape::scalar().strides().len(), 0);
    }

    #[test]
    fn negative_axes_resolve() {
        assert_eq!(normalize_axis(-1, 3), Some(2));
        assert_eq!(normalize_axis(3, 3), None);
        assert_eq!(normalize_axis(-4, 3), None);
    }
}

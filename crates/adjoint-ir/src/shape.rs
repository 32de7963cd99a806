//! Static tensor shapes and NumPy broadcasting.

use smallvec::SmallVec;
use std::fmt;

/// The largest rank a tensor may have.
pub const MAX_RANK: usize = 6;

/// The most bytes one tensor of a graph may span: `isize::MAX`, the most that a Rust allocation
/// or a pointer offset can address. The verifier, the builder and the parser reject any type
/// whose size (see [`Shape::span`]) exceeds it, so element counts, strides and byte sizes of a
/// verified graph never overflow.
pub const MAX_TENSOR_BYTES: usize = isize::MAX as usize;

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
    ///
    /// Panics if the count overflows `usize`; a shape in a verified graph never does (use
    /// [`Shape::try_numel`] for shapes read from outside).
    pub fn numel(&self) -> usize {
        self.try_numel()
            .unwrap_or_else(|| panic!("shape {self} has more elements than a usize can count"))
    }

    /// Number of elements, or `None` if the count overflows `usize`.
    pub fn try_numel(&self) -> Option<usize> {
        self.0.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d))
    }

    /// The product of the dimensions with zero dimensions counted as 1: the largest row-major
    /// stride times the outermost dimension, so every stride and every element count of the
    /// shape fits when this does. `None` on overflow.
    pub fn span(&self) -> Option<usize> {
        self.0
            .iter()
            .try_fold(1usize, |acc, &d| acc.checked_mul(d.max(1)))
    }

    /// Row-major (C order) strides in elements.
    ///
    /// Panics if a stride overflows `usize`; in a verified graph none does.
    pub fn strides(&self) -> Dims {
        let mut strides: Dims = smallvec::smallvec![0; self.rank()];
        let mut acc: usize = 1;
        for (k, (s, d)) in strides.iter_mut().zip(self.0.iter()).enumerate().rev() {
            *s = acc;
            if k > 0 {
                acc = acc
                    .checked_mul(*d)
                    .unwrap_or_else(|| panic!("the strides of shape {self} overflow usize"));
            }
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
    fn element_counts_are_checked() {
        let huge = Shape::new(&[1 << 32, 1 << 32]);
        assert_eq!(huge.try_numel(), None);
        assert_eq!(huge.span(), None);
        assert_eq!(Shape::new(&[(1 << 63) + 1, 2]).try_numel(), None);
        let empty = Shape::new(&[0, 1 << 40, 1 << 40]);
        assert_eq!(empty.try_numel(), Some(0));
        assert_eq!(empty.span(), None);
        assert_eq!(Shape::new(&[3, 0, 5]).span(), Some(15));
        assert_eq!(Shape::scalar().try_numel(), Some(1));
    }

    #[test]
    #[should_panic(expected = "more elements than a usize can count")]
    fn numel_panics_rather_than_wrapping() {
        Shape::new(&[1 << 32, 1 << 32]).numel();
    }

    #[test]
    fn negative_axes_resolve() {
        assert_eq!(normalize_axis(-1, 3), Some(2));
        assert_eq!(normalize_axis(3, 3), None);
        assert_eq!(normalize_axis(-4, 3), None);
    }
}

//! Index expressions: integer functions of loop variables that address tensor elements.
//!
//! An [`Ix`] is kept in a normal form, `Σ coeff·atom + constant`, where an atom is a loop
//! variable or a non-linear piece (a floor division, a remainder, a clamp, or an index read
//! from data). Movement ops compose into index expressions instead of copies: a permute
//! reorders the per-axis indices, a broadcast sets an index to 0, a slice scales and offsets
//! it, a reshape linearizes and splits again with division and remainder — which
//! [`Ix::div`] and [`Ix::rem`] simplify away whenever the variables' ranges allow it, so a
//! reshape of a contiguous view stays affine.

use super::{ExprId, VarId};
use std::fmt;

/// A non-linear or leaf part of an index expression.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Atom {
    /// A loop variable.
    Var(VarId),
    /// `floor(e / d)` of a non-negative `e`, `d > 1`.
    Div(Box<Ix>, i64),
    /// `e mod d` of a non-negative `e`, `d > 1`.
    Rem(Box<Ix>, i64),
    /// `e` clamped to `lo..=hi` (used to keep guarded reads in bounds).
    Clamp(Box<Ix>, i64, i64),
    /// The value of an `i32` expression (a gather or scatter index).
    Value(ExprId),
}

/// An index expression `Σ coeff·atom + constant` (terms sorted, no zero coefficients).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ix {
    /// The terms `(atom, coefficient)`.
    pub terms: Vec<(Atom, i64)>,
    /// The constant part.
    pub constant: i64,
}

impl Ix {
    /// The constant `c`.
    pub fn constant(c: i64) -> Ix {
        Ix {
            terms: Vec::new(),
            constant: c,
        }
    }

    /// The loop variable `v`.
    pub fn var(v: VarId) -> Ix {
        Ix::atom(Atom::Var(v))
    }

    /// One atom with coefficient 1.
    pub fn atom(a: Atom) -> Ix {
        Ix {
            terms: vec![(a, 1)],
            constant: 0,
        }
    }

    /// `self + other`.
    pub fn add(&self, other: &Ix) -> Ix {
        let mut terms = self.terms.clone();
        for (a, c) in &other.terms {
            match terms.iter_mut().find(|(b, _)| b == a) {
                Some(t) => t.1 += c,
                None => terms.push((a.clone(), *c)),
            }
        }
        terms.retain(|t| t.1 != 0);
        terms.sort();
        let sum = Ix {
            terms,
            constant: self.constant + other.constant,
        };
        sum.recombine()
    }

    /// Rewrites `c·d·(e/d) + c·(e%d)` as `c·e` (a reshape split and linearized again).
    fn recombine(self) -> Ix {
        for (i, (a, cq)) in self.terms.iter().enumerate() {
            let Atom::Div(e, d) = a else { continue };
            let rem = Atom::Rem(e.clone(), *d);
            let Some(j) = self.terms.iter().position(|(b, _)| *b == rem) else {
                continue;
            };
            let cr = self.terms[j].1;
            if *cq != cr * d {
                continue;
            }
            let e = (**e).clone();
            let mut rest = self.clone();
            let (hi, lo) = (i.max(j), i.min(j));
            rest.terms.remove(hi);
            rest.terms.remove(lo);
            return rest.add(&e.scale(cr));
        }
        self
    }

    /// `self + c`.
    pub fn offset(&self, c: i64) -> Ix {
        let mut r = self.clone();
        r.constant += c;
        r
    }

    /// `self * k`.
    pub fn scale(&self, k: i64) -> Ix {
        if k == 0 {
            return Ix::constant(0);
        }
        Ix {
            terms: self.terms.iter().map(|(a, c)| (a.clone(), c * k)).collect(),
            constant: self.constant * k,
        }
    }

    /// The constant value, if the expression has no terms.
    pub fn as_constant(&self) -> Option<i64> {
        self.terms.is_empty().then_some(self.constant)
    }

    /// The inclusive range of values the expression can take, given each loop variable's
    /// extent; `None` when it depends on data.
    pub fn range(&self, extents: &[usize]) -> Option<(i64, i64)> {
        let (mut lo, mut hi) = (self.constant, self.constant);
        for (a, c) in &self.terms {
            let (alo, ahi) = a.range(extents)?;
            if *c >= 0 {
                lo += c * alo;
                hi += c * ahi;
            } else {
                lo += c * ahi;
                hi += c * alo;
            }
        }
        Some((lo, hi))
    }

    /// `floor(self / d)` for a non-negative `self`, simplified when the range allows.
    pub fn div(&self, d: i64, extents: &[usize]) -> Ix {
        if d == 1 {
            return self.clone();
        }
        let (quot, rest) = self.split(d);
        match rest.range(extents) {
            Some((lo, hi)) if lo >= 0 && hi < d => quot,
            Some((lo, _)) if lo >= 0 => match rest.factor(d, extents) {
                Some((f, big, _)) => quot.add(&big.div(d / f, extents)),
                None => quot.add(&Ix::atom(Atom::Div(Box::new(rest), d))),
            },
            _ => Ix::atom(Atom::Div(Box::new(self.clone()), d)),
        }
    }

    /// Writes a non-negative `self` as `f·big + small` with `1 < f < d`, `f` dividing `d`,
    /// `big` non-negative and `0 <= small < f`: then `self / d = big / (d/f)` and
    /// `self % d = f·(big % (d/f)) + small` (a reshape that merges an outer axis with part
    /// of an inner one).
    fn factor(&self, d: i64, extents: &[usize]) -> Option<(i64, Ix, Ix)> {
        let mut order: Vec<usize> = (0..self.terms.len()).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(self.terms[i].1.abs()));
        let mut f = d;
        for n in 1..order.len() {
            f = gcd(f, self.terms[order[n - 1]].1);
            if f <= 1 {
                return None;
            }
            let mut big = Ix::constant(0);
            let mut small = Ix::constant(self.constant);
            for (k, &i) in order.iter().enumerate() {
                let (a, c) = &self.terms[i];
                if k < n {
                    big.terms.push((a.clone(), c / f));
                } else {
                    small.terms.push((a.clone(), *c));
                }
            }
            big.terms.sort();
            small.terms.sort();
            let (blo, _) = big.range(extents)?;
            let (slo, shi) = small.range(extents)?;
            if blo >= 0 && slo >= 0 && shi < f {
                return Some((f, big, small));
            }
        }
        None
    }

    /// `self mod d` for a non-negative `self`, simplified when the range allows.
    pub fn rem(&self, d: i64, extents: &[usize]) -> Ix {
        if d == 1 {
            return Ix::constant(0);
        }
        let (_, rest) = self.split(d);
        match rest.range(extents) {
            Some((lo, hi)) if lo >= 0 && hi < d => rest,
            _ => match self.range(extents) {
                Some((lo, hi)) if lo >= 0 && hi < d => self.clone(),
                _ => match rest.range(extents) {
                    Some((lo, _)) if lo >= 0 => match rest.factor(d, extents) {
                        Some((f, big, small)) => big.rem(d / f, extents).scale(f).add(&small),
                        None => Ix::atom(Atom::Rem(Box::new(rest), d)),
                    },
                    _ => Ix::atom(Atom::Rem(Box::new(self.clone()), d)),
                },
            },
        }
    }

    /// `self` clamped to `lo..=hi`, or `self` when its range is already inside.
    pub fn clamp_to(&self, lo: i64, hi: i64, extents: &[usize]) -> Ix {
        match self.range(extents) {
            Some((a, b)) if a >= lo && b <= hi => self.clone(),
            _ => Ix::atom(Atom::Clamp(Box::new(self.clone()), lo, hi)),
        }
    }

    /// Splits into `(q, r)` with `self = d·q + r`, where `q` gathers the terms whose
    /// coefficients `d` divides and the constant's quotient.
    fn split(&self, d: i64) -> (Ix, Ix) {
        let mut q = Ix::constant(self.constant.div_euclid(d));
        let mut r = Ix::constant(self.constant.rem_euclid(d));
        for (a, c) in &self.terms {
            if c % d == 0 {
                q.terms.push((a.clone(), c / d));
            } else {
                r.terms.push((a.clone(), *c));
            }
        }
        (q, r)
    }

    /// The coefficient of `v` if the expression is `coeff·v + (terms free of v)`; `None` when
    /// `v` occurs inside a non-linear atom.
    pub fn stride_of(&self, v: VarId, uses_var: &dyn Fn(ExprId, VarId) -> bool) -> Option<i64> {
        let mut stride = 0;
        for (a, c) in &self.terms {
            match a {
                Atom::Var(w) if *w == v => stride += c,
                Atom::Var(_) => {}
                other => {
                    if other.uses_var(v, uses_var) {
                        return None;
                    }
                }
            }
        }
        Some(stride)
    }

    /// True if `v` occurs anywhere in the expression.
    pub fn uses_var(&self, v: VarId, uses_var: &dyn Fn(ExprId, VarId) -> bool) -> bool {
        self.terms.iter().any(|(a, _)| a.uses_var(v, uses_var))
    }

    /// The same index with every data expression `x` it reads replaced by `f(x)`.
    pub fn map_values(&self, f: &mut dyn FnMut(ExprId) -> ExprId) -> Ix {
        let mut reads_data = false;
        self.visit(&mut |_, e| reads_data |= e.is_some());
        if !reads_data {
            return self.clone();
        }
        let mut out = Ix::constant(self.constant);
        for (a, c) in &self.terms {
            let a = match a {
                Atom::Var(v) => Atom::Var(*v),
                Atom::Div(e, d) => Atom::Div(Box::new(e.map_values(f)), *d),
                Atom::Rem(e, d) => Atom::Rem(Box::new(e.map_values(f)), *d),
                Atom::Clamp(e, lo, hi) => Atom::Clamp(Box::new(e.map_values(f)), *lo, *hi),
                Atom::Value(x) => Atom::Value(f(*x)),
            };
            out = out.add(&Ix::atom(a).scale(*c));
        }
        out
    }

    /// `self` with loop variable `v` replaced by `with`, simplified again under `extents`
    /// (which give the extents of `with`'s variables). Data values are kept as they are.
    pub fn substitute(&self, v: VarId, with: &Ix, extents: &[usize]) -> Ix {
        let mut out = Ix::constant(self.constant);
        for (a, c) in &self.terms {
            let term = match a {
                Atom::Var(w) if *w == v => with.clone(),
                Atom::Var(_) | Atom::Value(_) => Ix::atom(a.clone()),
                Atom::Div(e, d) => e.substitute(v, with, extents).div(*d, extents),
                Atom::Rem(e, d) => e.substitute(v, with, extents).rem(*d, extents),
                Atom::Clamp(e, lo, hi) => {
                    e.substitute(v, with, extents).clamp_to(*lo, *hi, extents)
                }
            };
            out = out.add(&term.scale(*c));
        }
        out
    }

    /// Calls `f` on every atom of the index, and on those inside divisions, remainders and
    /// clamps (outer atoms first).
    pub fn visit_atoms(&self, f: &mut dyn FnMut(&Atom)) {
        for (a, _) in &self.terms {
            f(a);
            if let Atom::Div(e, _) | Atom::Rem(e, _) | Atom::Clamp(e, _, _) = a {
                e.visit_atoms(f);
            }
        }
    }

    /// Calls `f` on every loop variable and every data expression the index reads.
    pub fn visit(&self, f: &mut dyn FnMut(Option<VarId>, Option<ExprId>)) {
        for (a, _) in &self.terms {
            a.visit(f);
        }
    }
}

fn gcd(a: i64, b: i64) -> i64 {
    let (mut a, mut b) = (a.abs(), b.abs());
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

impl Atom {
    fn range(&self, extents: &[usize]) -> Option<(i64, i64)> {
        match self {
            Atom::Var(v) => Some((0, extents[v.0 as usize] as i64 - 1)),
            Atom::Div(e, d) => {
                let (lo, hi) = e.range(extents)?;
                Some((lo.div_euclid(*d), hi.div_euclid(*d)))
            }
            Atom::Rem(_, d) => Some((0, d - 1)),
            Atom::Clamp(_, lo, hi) => Some((*lo, *hi)),
            Atom::Value(_) => None,
        }
    }

    fn uses_var(&self, v: VarId, uses_var: &dyn Fn(ExprId, VarId) -> bool) -> bool {
        match self {
            Atom::Var(w) => *w == v,
            Atom::Div(e, _) | Atom::Rem(e, _) | Atom::Clamp(e, _, _) => e.uses_var(v, uses_var),
            Atom::Value(x) => uses_var(*x, v),
        }
    }

    fn visit(&self, f: &mut dyn FnMut(Option<VarId>, Option<ExprId>)) {
        match self {
            Atom::Var(v) => f(Some(*v), None),
            Atom::Div(e, _) | Atom::Rem(e, _) | Atom::Clamp(e, _, _) => e.visit(f),
            Atom::Value(x) => f(None, Some(*x)),
        }
    }
}

impl fmt::Display for Atom {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Atom::Var(v) => write!(f, "{v}"),
            Atom::Div(e, d) => write!(f, "({e})/{d}"),
            Atom::Rem(e, d) => write!(f, "({e})%{d}"),
            Atom::Clamp(e, lo, hi) => write!(f, "clamp({e}, {lo}, {hi})"),
            Atom::Value(x) => write!(f, "{x}"),
        }
    }
}

impl fmt::Display for Ix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for (a, c) in &self.terms {
            let sep = if first { "" } else { " + " };
            match c {
                1 => write!(f, "{sep}{a}")?,
                c => write!(f, "{sep}{c}*{a}")?,
            }
            first = false;
        }
        if first {
            write!(f, "{}", self.constant)
        } else if self.constant != 0 {
            write!(f, " + {}", self.constant)
        } else {
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reshape_of_contiguous_dims_stays_affine() {
        // [2,3] viewed as [6] and back: i*3 + j split by 3 gives i and j again.
        let ext = [2, 3];
        let (i, j) = (Ix::var(VarId(0)), Ix::var(VarId(1)));
        let lin = i.scale(3).add(&j);
        assert_eq!(lin.div(3, &ext), i);
        assert_eq!(lin.rem(3, &ext), j);
    }

    #[test]
    fn non_aligned_split_keeps_division() {
        let ext = [6];
        let v = Ix::var(VarId(0));
        let q = v.div(4, &ext);
        assert!(matches!(q.terms[0].0, Atom::Div(_, 4)));
        assert_eq!(q.range(&ext), Some((0, 1)));
    }

    #[test]
    fn merged_axes_split_on_the_outer_variable_only() {
        // [512,128] as [8,64,4,32]: (128*i + k)/8192 = i/64 when k < 128.
        let ext = [512, 128];
        let (i, k) = (Ix::var(VarId(0)), Ix::var(VarId(1)));
        let lin = i.scale(128).add(&k);
        assert_eq!(lin.div(8192, &ext), i.div(64, &ext));
        // (128*i + k) % 8192 = 128*(i % 64) + k.
        assert_eq!(lin.rem(8192, &ext), i.rem(64, &ext).scale(128).add(&k));
        // And split then linearized again, it is affine.
        let back = lin.div(8192, &ext).scale(8192).add(&lin.rem(8192, &ext));
        assert_eq!(back, lin);
        // Terms that d divides leave the division: (128*i + k) % 32 = k % 32.
        assert_eq!(lin.rem(32, &ext), k.rem(32, &ext));
        assert_eq!(lin.div(32, &ext), i.scale(4).add(&k.div(32, &ext)));
    }

    #[test]
    fn clamp_vanishes_inside_range() {
        let ext = [5];
        let v = Ix::var(VarId(0));
        assert_eq!(v.clamp_to(0, 4, &ext), v);
        assert_ne!(v.offset(-1).clamp_to(0, 4, &ext), v.offset(-1));
    }
}

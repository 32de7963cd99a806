//! Property tests: movement and reduction rules pass the gradient check on random shapes,
//! slice ranges and permutations.

mod common;

use adjoint_ir::{DType, SliceRange};
use common::{check, weighted_sum};
use proptest::prelude::*;

/// A shape of rank 1 to 3 with dimensions 1 to 5.
fn shape() -> impl Strategy<Value = Vec<usize>> {
    prop::collection::vec(1usize..=5, 1..=3)
}

/// A shape with one valid, non-empty slice range per axis.
fn shape_and_ranges() -> impl Strategy<Value = (Vec<usize>, Vec<SliceRange>)> {
    shape().prop_flat_map(|dims| {
        let ranges: Vec<_> = dims
            .iter()
            .map(|&d| {
                (0..d, 1usize..=3).prop_flat_map(move |(start, step)| {
                    (start + 1..=d).prop_map(move |stop| SliceRange { start, stop, step })
                })
            })
            .collect();
        (Just(dims), ranges)
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn slices((dims, ranges) in shape_and_ranges(), seed in 0u64..1000) {
        check(&format!("slice {dims:?} {ranges:?}"), seed, |b| {
            let x = b.parameter("x", DType::F64, dims.as_slice());
            (weighted_sum(x.slice_ranges(&ranges).exp()), vec![x])
        });
    }

    #[test]
    fn permutes_and_reductions(
        dims in shape(),
        perm_seed in any::<u64>(),
        axis_mask in 1u8..8,
        seed in 0u64..1000,
    ) {
        let rank = dims.len();
        let mut perm: Vec<usize> = (0..rank).collect();
        adjoint_ir::Rng::new(perm_seed).shuffle(&mut perm);
        let axes: Vec<isize> = (0..rank)
            .filter(|a| axis_mask & (1 << a) != 0)
            .map(|a| a as isize)
            .collect();
        check(&format!("permute {dims:?} {perm:?} reduce {axes:?}"), seed, |b| {
            let x = b.parameter("x", DType::F64, dims.as_slice());
            let p = x.permute(&perm);
            let y = if axes.is_empty() {
                p.sin()
            } else {
                p.max_keepdims(&axes) + p.sum_keepdims(&axes).tanh()
            };
            (weighted_sum(y), vec![x])
        });
    }

    #[test]
    fn pads_and_broadcasts(
        dims in shape(),
        pads in prop::collection::vec((0usize..3, 0usize..3), 3),
        lead in 1usize..3,
        seed in 0u64..1000,
    ) {
        let rank = dims.len();
        let low: Vec<usize> = pads[..rank].iter().map(|p| p.0).collect();
        let high: Vec<usize> = pads[..rank].iter().map(|p| p.1).collect();
        // Broadcast the padded tensor with `lead` new axes, stretching its size-1 axes to 2.
        let padded: Vec<usize> = (0..rank).map(|i| low[i] + dims[i] + high[i]).collect();
        let mut to = vec![2; lead];
        to.extend(padded.iter().map(|&d| if d == 1 { 2 } else { d }));
        check(&format!("pad {dims:?} {low:?} {high:?} -> {to:?}"), seed, |b| {
            let x = b.parameter("x", DType::F64, dims.as_slice());
            (weighted_sum(x.pad(&low, &high).broadcast_to(to.as_slice())), vec![x])
        });
    }
}

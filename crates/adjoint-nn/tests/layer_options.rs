//! PyTorch layer options: BatchNorm without affine parameters, LayerNorm over the last k axes
//! and Embedding's `padding_idx`, against host computations, with finite-difference gradients.

use adjoint_autodiff::check_grads;
use adjoint_ir::{Builder, DType, Feeds, HostTensor, NodeId, Rng};
use adjoint_nn::layers::{BatchNorm, Embedding, LayerNorm};
use adjoint_nn::Params;

/// Seeded normal values of `shape`.
fn normal(shape: &[usize], seed: u64) -> Vec<f64> {
    let mut rng = Rng::new(seed);
    (0..shape.iter().product::<usize>())
        .map(|_| rng.normal())
        .collect()
}

#[test]
fn batch_norm_without_affine_declares_no_parameters_and_only_normalizes() {
    let b = Builder::new("bn");
    let mut params = Params::new(&b, 0).with_dtype(DType::F64);
    let x = b.parameter("x", DType::F64, [4, 2]);
    let bn = BatchNorm::with_affine(&mut params, "bn", 2, false);
    assert!(params.trainable().is_empty());
    let y = bn.forward_train(x);
    b.output("y", y);
    let loss = (y * y * y).sum_all();
    let (loss, xid) = (loss.id(), x.id());
    let mut feeds = params.into_initial_values();
    let xs = normal(&[4, 2], 3);
    feeds.insert(
        "x".into(),
        HostTensor::from_f64([4, 2], xs.clone()).unwrap(),
    );
    let g = b.finish();
    assert_eq!(g.updates().len(), 2);
    let out = adjoint_interp::run(&g, &feeds).unwrap();
    let y = out.output("y").unwrap().to_f64_vec();
    for c in 0..2 {
        let col: Vec<f64> = (0..4).map(|r| xs[r * 2 + c]).collect();
        let mean = col.iter().sum::<f64>() / 4.0;
        let var = col.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / 4.0;
        for r in 0..4 {
            let want = (col[r] - mean) / (var + 1e-5).sqrt();
            assert!((y[r * 2 + c] - want).abs() < 1e-12);
        }
    }
    let report = check_grads(&g, loss, &[xid], &feeds, 1e-6).unwrap();
    assert!(report.passed(), "{report}");
}

#[test]
fn layer_norm_over_the_last_two_axes() {
    let b = Builder::new("ln");
    let mut params = Params::new(&b, 0).with_dtype(DType::F64);
    let x = b.parameter("x", DType::F64, [2, 3, 4]);
    let ln = LayerNorm::over(&mut params, "ln", &[3, 4], 1e-5);
    assert_eq!(ln.gamma.shape().dims(), &[3, 4]);
    let y = ln.forward(x);
    b.output("y", y);
    let loss = (y * y * y).sum_all();
    let mut feeds = params.into_initial_values();
    let xs = normal(&[2, 3, 4], 4);
    feeds.insert(
        "x".into(),
        HostTensor::from_f64([2, 3, 4], xs.clone()).unwrap(),
    );
    let (gamma, beta) = (normal(&[3, 4], 5), normal(&[3, 4], 6));
    feeds.insert(
        "ln.gamma".into(),
        HostTensor::from_f64([3, 4], gamma.clone()).unwrap(),
    );
    feeds.insert(
        "ln.beta".into(),
        HostTensor::from_f64([3, 4], beta.clone()).unwrap(),
    );
    let wrt: Vec<NodeId> = vec![x.id(), ln.gamma.id(), ln.beta.id()];
    let loss = loss.id();
    let g = b.finish();
    let y = adjoint_interp::run(&g, &feeds)
        .unwrap()
        .output("y")
        .unwrap()
        .to_f64_vec();
    for n in 0..2 {
        let block = &xs[n * 12..(n + 1) * 12];
        let mean = block.iter().sum::<f64>() / 12.0;
        let var = block.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / 12.0;
        for i in 0..12 {
            let want = (block[i] - mean) / (var + 1e-5).sqrt() * gamma[i] + beta[i];
            assert!((y[n * 12 + i] - want).abs() < 1e-12);
        }
    }
    let report = check_grads(&g, loss, &wrt, &feeds, 1e-6).unwrap();
    assert!(report.passed(), "{report}");
}

#[test]
fn embedding_padding_idx_looks_up_zeros_and_gets_no_gradient() {
    let b = Builder::new("emb");
    let mut params = Params::new(&b, 0).with_dtype(DType::F64);
    let emb = Embedding::new(&mut params, "tok", 5, 3);
    let emb = emb.with_padding_idx(&mut params, 0);
    let init = params.initial_values()["tok.weight"].to_f64_vec();
    assert_eq!(&init[..3], &[0.0; 3]);
    assert!(init[3..].iter().all(|&v| v != 0.0));
    let ids = b.constant(DType::I32, [2, 3], &[0.0, 2.0, 0.0, 4.0, 2.0, 1.0]);
    let y = emb.forward(ids);
    b.output("y", y);
    let loss = (y * y).sum_all();
    let (loss, w) = (loss.id(), emb.weight.id());
    let mut feeds: Feeds = params.into_initial_values();
    // Even with a non-zero padding row the output and its gradient are zero.
    let mut table = init.clone();
    table[..3].copy_from_slice(&[1.0, 2.0, 3.0]);
    feeds.insert(
        "tok.weight".into(),
        HostTensor::from_f64([5, 3], table.clone()).unwrap(),
    );
    let grads = adjoint_autodiff::grad(b.finish(), loss, &[w]).unwrap();
    let out = adjoint_interp::run(&grads.graph, &feeds).unwrap();
    let y = out.output("y").unwrap().to_f64_vec();
    let want: Vec<f64> = [0usize, 2, 0, 4, 2, 1]
        .iter()
        .flat_map(|&id| {
            if id == 0 {
                vec![0.0; 3]
            } else {
                table[id * 3..id * 3 + 3].to_vec()
            }
        })
        .collect();
    assert_eq!(y, want);
    let dw = out.output("tok.weight.grad").unwrap().to_f64_vec();
    assert_eq!(&dw[..3], &[0.0; 3]);
    // Row 2 is looked up twice: 2·2·w each time.
    for j in 0..3 {
        assert!((dw[6 + j] - 4.0 * table[6 + j]).abs() < 1e-12);
    }
}

#[test]
fn embedding_ids_are_checked_at_the_data_boundary() {
    let b = Builder::new("emb");
    let mut params = Params::new(&b, 0);
    let emb = Embedding::new(&mut params, "tok", 5, 3);
    let ok = HostTensor::from_i32([2, 2], vec![0, 4, 2, 1]).unwrap();
    assert_eq!(emb.check_ids(&ok), Ok(()));
    let bad = HostTensor::from_i32([2, 2], vec![0, 4, 5, 1]).unwrap();
    let e = emb.check_ids(&bad).unwrap_err().to_string();
    assert!(
        e.contains("id 5 at flat position 2") && e.contains("0..5"),
        "{e}"
    );
    let negative = HostTensor::from_i32([1], vec![-1]).unwrap();
    assert!(emb
        .check_ids(&negative)
        .unwrap_err()
        .to_string()
        .contains("id -1"));
    let floats = HostTensor::from_f32([1], vec![0.0]).unwrap();
    assert!(emb
        .check_ids(&floats)
        .unwrap_err()
        .to_string()
        .contains("must be i32"));
}

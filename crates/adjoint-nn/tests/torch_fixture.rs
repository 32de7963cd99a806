//! A PyTorch model end to end: the `state_dict` of a conv + LSTM + attention + linear model
//! saved by PyTorch (`tests/data/torch_model.safetensors`, made by
//! `make_torch_model_fixture.py`) is read with [`weights::read_safetensors`], mapped onto the
//! same model built from Adjoint layers through [`torch_map`], and the model's output on the
//! fixed input PyTorch used (`tests/data/torch_model_io.safetensors`) matches PyTorch's output
//! to 1e-5 in f32, in the interpreter and the JIT.

use adjoint_ir::{Builder, DType, Feeds, Graph};
use adjoint_jit::{compile, Options};
use adjoint_nn::layers::{
    AttentionOptions, CellKind, Conv2d, Conv2dOptions, Linear, MultiHeadAttention, Recurrent,
    RecurrentOptions,
};
use adjoint_nn::{torch_map, weights, Params};
use std::path::PathBuf;

/// PyTorch's output and ours may differ by this much (f32).
const TOLERANCE: f64 = 1e-5;

fn data(file: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(file)
}

/// The model of `make_torch_model_fixture.py` from Adjoint layers, with the map from its
/// PyTorch `state_dict` and the model's own initial values (the shapes to check against).
fn model() -> (Graph, Vec<torch_map::Entry>, Feeds) {
    let (n, h, w) = (2, 6, 8);
    let b = Builder::new("conv_lstm_attention");
    let mut params = Params::new(&b, 0);
    let x = b.input("x", DType::F32, [n, 1, h, w]);
    let conv_options = Conv2dOptions {
        padding: [1, 1],
        ..Conv2dOptions::default()
    };
    let conv = Conv2d::with_options(&mut params, "conv", 1, 4, [3, 3], conv_options);
    let lstm = Recurrent::new(
        &mut params,
        "lstm",
        CellKind::Lstm,
        4 * w,
        8,
        RecurrentOptions::default(),
    );
    let attention_options = AttentionOptions {
        causal: false,
        bias: true,
        ..AttentionOptions::default()
    };
    let attn = MultiHeadAttention::with_options(&mut params, "attn", 8, 2, attention_options);
    let head = Linear::new(&mut params, "head", 8, 3);

    // relu(conv(x)) [N, C, H, W] → [N, H, C·W]: H is time, as in the Python model.
    let features = conv.forward(x).relu();
    let seq = features.permute(&[0, 2, 1, 3]).reshape([n, h, 4 * w]);
    let states = lstm.forward(seq).outputs;
    b.output("y", head.forward(attn.forward(states)));

    let mut map = torch_map::conv2d("conv", "conv", true);
    map.extend(torch_map::recurrent(
        "lstm",
        "lstm",
        CellKind::Lstm,
        1,
        false,
    ));
    map.extend(torch_map::attention("attn", "attn", true));
    map.extend(torch_map::linear("head", "head", true));
    let initial = params.into_initial_values();
    (b.finish(), map, initial)
}

/// The model's parameters from PyTorch's `state_dict`, and the fixed input and PyTorch's
/// output.
fn load() -> (Graph, Feeds, Feeds) {
    let (graph, map, initial) = model();
    let state = weights::read_safetensors(data("torch_model.safetensors")).unwrap();
    let values = torch_map::import(&state, &map, &initial).unwrap();
    assert_eq!(
        values.keys().collect::<Vec<_>>(),
        initial.keys().collect::<Vec<_>>(),
        "the map gives every parameter of the model"
    );
    let io = weights::read_safetensors(data("torch_model_io.safetensors")).unwrap();
    (graph, values, io)
}

fn max_abs_difference(got: &[f64], want: &[f64]) -> f64 {
    assert_eq!(got.len(), want.len());
    got.iter()
        .zip(want)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f64::max)
}

#[test]
fn the_interpreter_reproduces_pytorchs_output() {
    let (graph, mut feeds, io) = load();
    feeds.insert("x".into(), io["x"].clone());
    let out = adjoint_interp::run(&graph, &feeds).unwrap();
    let y = out.output("y").unwrap();
    assert_eq!(y.ty(), io["y"].ty());
    let diff = max_abs_difference(&y.to_f64_vec(), &io["y"].to_f64_vec());
    assert!(diff <= TOLERANCE, "max |adjoint - pytorch| = {diff:e}");
}

#[test]
fn the_jit_reproduces_pytorchs_output() {
    let (graph, params, io) = load();
    for fusion in [false, true] {
        let options = Options {
            fusion,
            cache: false,
            ..Options::default()
        };
        let mut step = compile(&graph, &options).unwrap();
        step.set_params(&params).unwrap();
        let mut inputs = Feeds::new();
        inputs.insert("x".into(), io["x"].clone());
        let out = step.run(&inputs).unwrap();
        let y = out.output("y").unwrap();
        assert_eq!(y.ty(), io["y"].ty());
        let diff = max_abs_difference(&y.to_f64_vec(), &io["y"].to_f64_vec());
        assert!(
            diff <= TOLERANCE,
            "fusion {fusion}: max |adjoint - pytorch| = {diff:e}"
        );
    }
}

#[test]
fn a_model_with_a_wrong_layer_size_is_refused_by_name() {
    let (_, map, _) = model();
    let mut state = weights::read_safetensors(data("torch_model.safetensors")).unwrap();
    // A head for 4 classes instead of 3.
    let head = state["head.weight"].to_f64_vec();
    let wider = [head.as_slice(), &head[..8]].concat();
    state.insert(
        "head.weight".into(),
        adjoint_ir::HostTensor::from_f64_as(DType::F32, vec![4, 8], &wider).unwrap(),
    );
    let (_, _, initial) = model();
    let e = torch_map::import(&state, &map, &initial).unwrap_err();
    assert!(
        matches!(&e, torch_map::ImportError::Type { param, .. } if param == "head.weight"),
        "{e}"
    );
    let e = e.to_string();
    assert!(e.contains("`head.weight`") && e.contains("f32[8,4]"), "{e}");
}

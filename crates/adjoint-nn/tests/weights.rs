//! Plain safetensors interop: a PyTorch-style `state_dict` written by the Python `safetensors`
//! library (`tests/data/state_dict_mlp.safetensors`, made by `make_state_dict_fixture.py`)
//! loads into an Adjoint model and gives the loss Python computed; exported parameters load
//! back.

use adjoint_interp::run;
use adjoint_ir::{Builder, DType, Feeds, Graph, HostTensor};
use adjoint_nn::layers::Linear;
use adjoint_nn::loss::cross_entropy;
use adjoint_nn::weights::{
    export_safetensors, export_safetensors_bytes, import_safetensors, parameter_types,
    read_safetensors, read_safetensors_bytes, WeightMap, WeightsError,
};
use adjoint_nn::Params;
use safetensors::SafeTensors;
use std::path::PathBuf;

/// The loss `make_state_dict_fixture.py` prints: the batch below through the stored weights,
/// in float64 from the values as a float32 model holds them.
const PYTHON_LOSS: f64 = 1.332_303_604_208_645;

fn fixture() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/state_dict_mlp.safetensors")
}

/// `nn.Sequential(Linear(4, 5), ReLU(), Linear(5, 3))` with a mean cross-entropy, as Adjoint
/// layers (`fc1`, `fc2`, weights `[in, out]`).
fn model() -> Graph {
    let b = Builder::new("state_dict_mlp");
    let mut p = Params::new(&b, 0);
    let x = b.input("x", DType::F32, [2, 4]);
    let y = b.input("y", DType::I32, [2]);
    let h = Linear::new(&mut p, "fc1", 4, 5).forward(x).relu();
    let logits = Linear::new(&mut p, "fc2", 5, 3).forward(h);
    b.output("loss", cross_entropy(logits, y, 0.0));
    b.finish()
}

/// PyTorch's names and layout for the model's parameters.
fn torch_map() -> WeightMap {
    WeightMap::new()
        .rename("fc1.weight", "layers.0.weight")
        .rename("fc1.bias", "layers.0.bias")
        .rename("fc2.weight", "layers.2.weight")
        .rename("fc2.bias", "layers.2.bias")
        .transpose("fc1.weight")
        .transpose("fc2.weight")
}

fn batch() -> Feeds {
    let mut feeds = Feeds::new();
    let x = vec![1.0, -2.0, 0.5, 3.0, 0.0, 1.5, -1.0, 2.0];
    feeds.insert("x".into(), HostTensor::from_f32([2, 4], x).unwrap());
    feeds.insert("y".into(), HostTensor::from_i32([2], vec![2, 0]).unwrap());
    feeds
}

#[test]
fn a_python_state_dict_loads_by_name_and_gives_the_expected_loss() {
    let graph = model();
    let expected = parameter_types(&graph);
    // Strict: the buffer `layers.2.num_batches_tracked` (I64) matches no parameter.
    let err = import_safetensors(fixture(), &expected, &torch_map()).unwrap_err();
    assert!(matches!(err, WeightsError::Mismatch { .. }));
    let msg = err.to_string();
    assert!(
        msg.contains("(1 problem)") && msg.contains("unexpected `layers.2.num_batches_tracked`"),
        "{msg}"
    );

    let report = import_safetensors(fixture(), &expected, &torch_map().lenient()).unwrap();
    assert_eq!(report.unexpected, ["layers.2.num_batches_tracked"]);
    assert!(report.missing.is_empty());
    let converted: Vec<(&str, &str)> = report
        .converted
        .iter()
        .map(|(p, d)| (p.as_str(), d.as_str()))
        .collect();
    assert_eq!(
        converted,
        [
            ("fc1.weight", "F16"),
            ("fc1.bias", "BF16"),
            ("fc2.weight", "F64")
        ]
    );
    assert_eq!(
        report.loaded["fc1.bias"].to_f64_vec(),
        [0.5, -0.25, 0.125, 1.0, -0.75]
    );
    assert_eq!(report.loaded["fc2.weight"].shape().dims(), &[5, 3]);

    let mut feeds = batch();
    feeds.extend(report.loaded.clone());
    let loss = run(&graph, &feeds)
        .unwrap()
        .output("loss")
        .unwrap()
        .to_f64_vec()[0];
    assert!(
        (loss - PYTHON_LOSS).abs() < 1e-6,
        "loss {loss}, Python computed {PYTHON_LOSS}"
    );
}

#[test]
fn exported_parameters_are_a_plain_file_that_loads_back() {
    let graph = model();
    let expected = parameter_types(&graph);
    let loaded = import_safetensors(fixture(), &expected, &torch_map().lenient())
        .unwrap()
        .loaded;

    // PyTorch's names and [out, in] layout, no Adjoint metadata.
    let bytes = export_safetensors_bytes(&loaded, &torch_map()).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let mut names: Vec<&str> = st.names();
    names.sort();
    assert_eq!(
        names,
        [
            "layers.0.bias",
            "layers.0.weight",
            "layers.2.bias",
            "layers.2.weight"
        ]
    );
    assert_eq!(st.tensor("layers.0.weight").unwrap().shape(), &[5, 4]);
    let (_, header) = SafeTensors::read_metadata(&bytes).unwrap();
    let metadata = header.metadata().clone().unwrap();
    assert_eq!(metadata.len(), 1);
    assert_eq!(metadata["format"], "pt");

    let path = std::env::temp_dir().join(format!(
        "adjoint-weights-export-{}.safetensors",
        std::process::id()
    ));
    export_safetensors(&path, &loaded, &torch_map()).unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), bytes);
    let again = import_safetensors(&path, &expected, &torch_map()).unwrap();
    assert_eq!(again.loaded, loaded);
    assert!(again.converted.is_empty());
    std::fs::remove_file(&path).unwrap();
}

#[test]
fn a_mis_shaped_tensor_is_refused_even_when_lenient() {
    let graph = model();
    let expected = parameter_types(&graph);
    // Without the transposition PyTorch's [out, in] weights do not fit.
    let map = WeightMap::new()
        .rename("fc1.weight", "layers.0.weight")
        .rename("fc2.weight", "layers.2.weight")
        .lenient();
    let msg = import_safetensors(fixture(), &expected, &map)
        .unwrap_err()
        .to_string();
    assert!(msg.contains("(2 problems)"), "{msg}");
    assert!(
        msg.contains("`fc1.weight` is f32[4,5] but the file's tensor has shape [5,4]"),
        "{msg}"
    );
    assert!(msg.contains("state_dict_mlp.safetensors"), "{msg}");
}

#[test]
fn a_trainer_imports_a_state_dict_and_exports_only_the_model() {
    use adjoint_autodiff::Optimizer;
    use adjoint_nn::schedule::Schedule;
    use adjoint_nn::trainer::{Forward, Pass, Trainer, TrainerOptions};

    fn mlp<'b>(p: &mut Params<'b>, pass: &Pass) -> Forward<'b> {
        let b = p.builder();
        let x = b.input("x", DType::F32, [pass.batch_size, 4]);
        let y = b.input("y", DType::I32, [pass.batch_size]);
        let h = Linear::new(p, "fc1", 4, 5).forward(x).relu();
        let logits = Linear::new(p, "fc2", 5, 3).forward(h);
        Forward {
            loss: cross_entropy(logits, y, 0.0),
            logits: Some(logits),
        }
    }
    let options = TrainerOptions {
        batch_size: 2,
        quiet: true,
        ..TrainerOptions::default()
    };
    let mut trainer = Trainer::new(
        "mlp",
        mlp,
        Optimizer::adam(1e-3),
        Schedule::Constant,
        options,
    )
    .unwrap();
    // A strict import fails and changes nothing.
    let before = trainer.params();
    assert!(trainer.import_safetensors(fixture(), &torch_map()).is_err());
    assert_eq!(trainer.params(), before);

    let report = trainer
        .import_safetensors(fixture(), &torch_map().lenient())
        .unwrap();
    assert_eq!(report.loaded.len(), 4);
    assert_eq!(
        trainer.param("fc1.bias").unwrap().to_f64_vec(),
        [0.5, -0.25, 0.125, 1.0, -0.75]
    );
    // The optimizer's state is not part of the model's parameters.
    assert!(trainer.params().contains_key("fc1.weight.adam_m"));
    let model: Vec<String> = trainer.model_params().keys().cloned().collect();
    assert_eq!(model, ["fc1.bias", "fc1.weight", "fc2.bias", "fc2.weight"]);
}

#[test]
fn a_state_dict_reads_by_its_own_names_keeping_each_kind() {
    let state = read_safetensors(fixture()).unwrap();
    let types: Vec<(&str, String)> = state
        .iter()
        .map(|(n, t)| (n.as_str(), t.ty().to_string()))
        .collect();
    assert_eq!(
        types,
        [
            ("layers.0.bias", "f32[5]".to_string()),
            ("layers.0.weight", "f32[5,4]".to_string()),
            ("layers.2.bias", "f32[3]".to_string()),
            ("layers.2.num_batches_tracked", "i32[1]".to_string()),
            ("layers.2.weight", "f64[3,5]".to_string()),
        ]
    );
    // BF16 0.125 and the I64 buffer 3, exactly.
    assert_eq!(state["layers.0.bias"].to_f64_vec()[2], 0.125);
    assert_eq!(state["layers.2.num_batches_tracked"].to_f64_vec(), [3.0]);

    let big_bytes = (1i64 << 40).to_le_bytes();
    let t =
        safetensors::tensor::TensorView::new(safetensors::Dtype::I64, vec![1], &big_bytes).unwrap();
    let bytes = safetensors::serialize([("step", t)], None).unwrap();
    let e = read_safetensors_bytes(&bytes).unwrap_err().to_string();
    assert!(
        e.contains("`step`") && e.contains("does not fit in i32"),
        "{e}"
    );
    let e = read_safetensors_bytes(b"not safetensors").unwrap_err();
    assert!(matches!(e, WeightsError::Format { .. }), "{e}");
}

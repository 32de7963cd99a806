//! Checkpoints: bit-exact round trips, validation of damaged files, atomic replacement and
//! mismatch reports.

mod common;
use common::TempDir;

use adjoint_ir::{DType, HostData, HostTensor, TensorType};
use adjoint_nn::checkpoint::{
    load_checkpoint, load_checkpoint_matching, save_checkpoint, write_atomically, Checkpoint,
    CheckpointErrorKind, Mismatch, STEP_KEY,
};
use std::io::{self, Write};

/// A checkpoint with all four dtypes and awkward float values.
fn sample(step: u64) -> Checkpoint {
    let nan_payload = f32::from_bits(0x7fc0_1234);
    let neg_nan = f32::from_bits(0xffa0_0001); // negative, signalling-pattern payload
    let nan64 = f64::from_bits(0x7ff8_0000_dead_beef);
    let mut ckpt = Checkpoint::new(step)
        .with_tensor(
            "layer1.w",
            HostTensor::from_f32(
                [2, 3],
                vec![
                    1.5,
                    -0.0,
                    nan_payload,
                    neg_nan,
                    f32::INFINITY,
                    f32::from_bits(1), // smallest subnormal
                ],
            )
            .unwrap(),
        )
        .with_tensor(
            "layer1.b",
            HostTensor::from_f64([3], vec![-0.0, nan64, f64::MIN_POSITIVE]).unwrap(),
        )
        .with_tensor(
            "adam.t",
            HostTensor::from_i32([2], vec![i32::MIN, 7]).unwrap(),
        )
        .with_tensor(
            "act.bf16",
            HostTensor::from_bf16(
                [3],
                [0x7FC1u16, 0x8001, 0x3F80]
                    .map(adjoint_ir::bf16::from_bits)
                    .to_vec(),
            )
            .unwrap(),
        )
        .with_tensor(
            "act.f16",
            HostTensor::from_f16(
                [3],
                [0xFE01u16, 0x0001, 0x7BFF]
                    .map(adjoint_ir::f16::from_bits)
                    .to_vec(),
            )
            .unwrap(),
        )
        .with_tensor(
            "mask",
            HostTensor::from_bool([2, 2], vec![true, false, false, true]).unwrap(),
        )
        .with_tensor("scalar", HostTensor::scalar_f32(step as f32))
        .with_tensor("empty", HostTensor::from_f32([0, 4], vec![]).unwrap());
    ckpt.metadata.insert("model".into(), "mlp 64-32-10".into());
    ckpt.metadata.insert("seed".into(), "42".into());
    ckpt
}

/// The raw bits of every element, so NaN payloads and signed zeros compare exactly.
fn bits(t: &HostTensor) -> Vec<u64> {
    match t.data() {
        HostData::F32(v) => v.iter().map(|x| x.to_bits() as u64).collect(),
        HostData::F64(v) => v.iter().map(|x| x.to_bits()).collect(),
        HostData::I32(v) => v.iter().map(|&x| x as u32 as u64).collect(),
        HostData::Bool(v) => v.iter().map(|&x| x as u64).collect(),
        HostData::Bf16(v) => v.iter().map(|x| x.to_bits() as u64).collect(),
        HostData::F16(v) => v.iter().map(|x| x.to_bits() as u64).collect(),
    }
}

fn assert_bit_identical(a: &Checkpoint, b: &Checkpoint) {
    assert_eq!(a.step, b.step);
    assert_eq!(a.metadata, b.metadata);
    assert_eq!(a.types(), b.types());
    for (name, t) in &a.tensors {
        assert_eq!(bits(t), bits(&b.tensors[name]), "tensor {name}");
    }
}

#[test]
fn round_trip_is_bit_exact() {
    let dir = TempDir::new("roundtrip");
    let path = dir.path("ckpt.safetensors");
    let ckpt = sample(12_345_678_901);
    save_checkpoint(&path, &ckpt).unwrap();
    let loaded = load_checkpoint(&path).unwrap();
    assert_bit_identical(&ckpt, &loaded);
    assert_eq!(loaded.step, 12_345_678_901);
    assert_eq!(loaded.metadata["model"], "mlp 64-32-10");
    let nan = loaded.tensors["layer1.w"].as_f32().unwrap()[2];
    assert_eq!(nan.to_bits(), 0x7fc0_1234);
    assert!(loaded.tensors["layer1.b"].as_f64().unwrap()[0].is_sign_negative());
    assert_eq!(
        loaded
            .types()
            .iter()
            .map(|(_, t)| t.dtype)
            .collect::<Vec<_>>(),
        [
            DType::Bf16,
            DType::F16,
            DType::I32,
            DType::F32,
            DType::F64,
            DType::F32,
            DType::Bool,
            DType::F32
        ]
    );
    // Only the checkpoint is left in the directory: no temporary files.
    assert_eq!(dir.files(), ["ckpt.safetensors"]);
}

#[test]
fn the_file_is_standard_safetensors_with_the_step_in_metadata() {
    let bytes = sample(3).to_bytes().unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    assert_eq!(st.len(), 8);
    assert_eq!(
        st.tensor("act.bf16").unwrap().dtype(),
        safetensors::Dtype::BF16
    );
    assert_eq!(
        st.tensor("act.f16").unwrap().dtype(),
        safetensors::Dtype::F16
    );
    let w = st.tensor("layer1.w").unwrap();
    assert_eq!(w.dtype(), safetensors::Dtype::F32);
    assert_eq!(w.shape(), &[2, 3]);
    assert_eq!(&w.data()[..4], &1.5f32.to_le_bytes());
    let (_, header) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let meta = header.metadata().as_ref().unwrap();
    assert_eq!(meta[STEP_KEY], "3");
    assert_eq!(meta["seed"], "42");
}

#[test]
fn an_empty_checkpoint_round_trips() {
    let ckpt = Checkpoint::new(0);
    let back = Checkpoint::from_bytes(&ckpt.to_bytes().unwrap()).unwrap();
    assert_eq!(back, ckpt);
}

#[test]
fn reserved_names_are_refused_before_anything_is_written() {
    let dir = TempDir::new("reserved");
    let path = dir.path("ckpt.safetensors");
    let mut ckpt = Checkpoint::new(1);
    ckpt.metadata.insert(STEP_KEY.into(), "5".into());
    let err = save_checkpoint(&path, &ckpt).unwrap_err();
    assert!(
        matches!(err.kind(), CheckpointErrorKind::Invalid(_)),
        "{err}"
    );
    assert!(err.to_string().contains("ckpt.safetensors"), "{err}");
    let bad_name = Checkpoint::new(1).with_tensor("__metadata__", HostTensor::scalar_f32(1.0));
    assert!(save_checkpoint(&path, &bad_name).is_err());
    assert!(dir.files().is_empty());
}

#[test]
fn a_missing_file_is_an_io_error_naming_it() {
    let dir = TempDir::new("missing");
    let path = dir.path("nope.safetensors");
    let err = load_checkpoint(&path).unwrap_err();
    match err.kind() {
        CheckpointErrorKind::Io(e) => assert_eq!(e.kind(), io::ErrorKind::NotFound),
        other => panic!("expected an I/O error, got {other:?}"),
    }
    assert!(err.to_string().contains("nope.safetensors"), "{err}");
}

#[test]
fn every_truncation_is_an_error() {
    let dir = TempDir::new("truncated");
    let bytes = sample(9).to_bytes().unwrap();
    let path = dir.path("cut.safetensors");
    for cut in 0..bytes.len() {
        std::fs::write(&path, &bytes[..cut]).unwrap();
        let err = load_checkpoint(&path).unwrap_err();
        assert!(
            matches!(err.kind(), CheckpointErrorKind::Truncated(_)),
            "cut at {cut} of {}: {err}",
            bytes.len()
        );
        assert!(err.to_string().contains("cut.safetensors"), "{err}");
    }
    // Appended garbage is caught as well.
    let mut longer = bytes.clone();
    longer.extend_from_slice(b"xyz");
    assert!(Checkpoint::from_bytes(&longer).is_err());
}

#[test]
fn every_flipped_byte_is_an_error() {
    let bytes = sample(9).to_bytes().unwrap();
    let header_end = 8 + u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    for i in 0..bytes.len() {
        for mask in [0xff, 0x01] {
            let mut damaged = bytes.clone();
            damaged[i] ^= mask;
            match Checkpoint::from_bytes(&damaged) {
                Err(err) => {
                    assert!(
                        matches!(
                            err.kind(),
                            CheckpointErrorKind::Corrupted(_) | CheckpointErrorKind::Truncated(_)
                        ),
                        "byte {i} ^ {mask:#x}: {err}"
                    );
                }
                // Flipping the low bit of a header byte can leave valid JSON with the same
                // meaning only in insignificant whitespace padding; nothing else may load.
                Ok(loaded) => {
                    assert!(
                        i < header_end && bytes[i] == b' ',
                        "byte {i} ^ {mask:#x} ({:?}) loaded",
                        bytes[i] as char
                    );
                    assert_bit_identical(&sample(9), &loaded);
                }
            }
        }
    }
}

#[test]
fn a_shape_that_disagrees_with_the_offsets_is_corruption() {
    let mut bytes = sample(1).to_bytes().unwrap();
    let header_len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header = std::str::from_utf8(&bytes[8..8 + header_len])
        .unwrap()
        .to_string();
    // Change a shape without changing the header's length: the offsets no longer fit.
    let damaged = header.replacen("[2,3]", "[3,3]", 1);
    assert_ne!(damaged, header);
    bytes[8..8 + header_len].copy_from_slice(damaged.as_bytes());
    let err = Checkpoint::from_bytes(&bytes).unwrap_err();
    assert!(
        matches!(err.kind(), CheckpointErrorKind::Corrupted(_)),
        "{err}"
    );
    assert!(err.to_string().contains("invalid shape"), "{err}");
}

#[test]
fn unsupported_dtypes_and_foreign_files_are_explained() {
    // A valid safetensors file from elsewhere: an f16 tensor.
    struct Raw(Vec<u8>, Vec<usize>, safetensors::Dtype);
    impl safetensors::View for Raw {
        fn dtype(&self) -> safetensors::Dtype {
            self.2
        }
        fn shape(&self) -> &[usize] {
            &self.1
        }
        fn data(&self) -> std::borrow::Cow<'_, [u8]> {
            std::borrow::Cow::Borrowed(&self.0)
        }
        fn data_len(&self) -> usize {
            self.0.len()
        }
    }
    let meta = Some(
        [(STEP_KEY.to_string(), "4".to_string())]
            .into_iter()
            .collect(),
    );
    let u16s = safetensors::serialize(
        [("emb", Raw(vec![0; 8], vec![4], safetensors::Dtype::U16))],
        meta,
    )
    .unwrap();
    let err = Checkpoint::from_bytes(&u16s).unwrap_err();
    match err.kind() {
        CheckpointErrorKind::UnsupportedDtype { name, dtype } => {
            assert_eq!((name.as_str(), dtype.as_str()), ("emb", "U16"))
        }
        other => panic!("expected UnsupportedDtype, got {other:?}"),
    }
    assert!(err.to_string().contains("`emb`"), "{err}");

    // A supported file from another tool lacks the checksum (and step): refused, saying so.
    let foreign = safetensors::serialize(
        [(
            "x",
            Raw(
                2.5f32.to_le_bytes().to_vec(),
                vec![1],
                safetensors::Dtype::F32,
            ),
        )],
        None,
    )
    .unwrap();
    let err = Checkpoint::from_bytes(&foreign).unwrap_err();
    assert!(
        matches!(err.kind(), CheckpointErrorKind::Corrupted(_)),
        "{err}"
    );
    assert!(err.to_string().contains("not written by Adjoint"), "{err}");

    // A bool byte other than 0 or 1.
    let meta = Some(
        [(STEP_KEY.to_string(), "4".to_string())]
            .into_iter()
            .collect(),
    );
    let bad_bool = safetensors::serialize(
        [("m", Raw(vec![1, 2], vec![2], safetensors::Dtype::BOOL))],
        meta,
    )
    .unwrap();
    let err = Checkpoint::from_bytes(&bad_bool).unwrap_err();
    assert!(
        matches!(err.kind(), CheckpointErrorKind::Corrupted(_)),
        "{err}"
    );
}

/// A writer that accepts `left` bytes and then fails, like a full disk.
struct FailAfter<'a> {
    inner: &'a mut dyn Write,
    left: usize,
}

impl Write for FailAfter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.left == 0 {
            return Err(io::Error::other(
                "simulated failure midway through the write",
            ));
        }
        let n = buf.len().min(self.left);
        self.left -= n;
        self.inner.write(&buf[..n])
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[test]
fn a_save_that_fails_midway_leaves_the_old_checkpoint_intact() {
    let dir = TempDir::new("atomic");
    let path = dir.path("ckpt.safetensors");
    let old = sample(100);
    save_checkpoint(&path, &old).unwrap();
    let old_bytes = std::fs::read(&path).unwrap();

    let new = sample(200);
    let new_bytes = new.to_bytes().unwrap();
    for fail_at in [0, 1, 8, 100, new_bytes.len() / 2, new_bytes.len() - 1] {
        let result = write_atomically(&path, |w| {
            FailAfter {
                inner: w,
                left: fail_at,
            }
            .write_all(&new_bytes)
        });
        let err = result.unwrap_err();
        assert!(err.to_string().contains("simulated failure"), "{err}");
        // The old checkpoint is untouched and still loads; no temporary file is left behind.
        assert_eq!(
            std::fs::read(&path).unwrap(),
            old_bytes,
            "fail at {fail_at}"
        );
        assert_bit_identical(&old, &load_checkpoint(&path).unwrap());
        assert_eq!(dir.files(), ["ckpt.safetensors"]);
    }

    // The same path with a writer that does not fail replaces it completely.
    write_atomically(&path, |w| w.write_all(&new_bytes)).unwrap();
    assert_bit_identical(&new, &load_checkpoint(&path).unwrap());
    save_checkpoint(&path, &old).unwrap();
    assert_eq!(load_checkpoint(&path).unwrap().step, 100);
    assert_eq!(dir.files(), ["ckpt.safetensors"]);
}

#[test]
fn a_save_into_a_missing_directory_fails_cleanly() {
    let dir = TempDir::new("nodir");
    let path = dir.path("no/such/dir/ckpt.safetensors");
    let err = save_checkpoint(&path, &sample(1)).unwrap_err();
    assert!(matches!(err.kind(), CheckpointErrorKind::Io(_)), "{err}");
    assert!(err.to_string().contains("ckpt.safetensors"), "{err}");
}

#[test]
fn mismatches_name_every_tensor_and_both_types() {
    let ckpt = Checkpoint::new(5)
        .with_tensor("w1", HostTensor::zeros(DType::F32, [64, 32]))
        .with_tensor("b1", HostTensor::zeros(DType::F32, [32]))
        .with_tensor("steps", HostTensor::zeros(DType::I32, []))
        .with_tensor("old.extra", HostTensor::zeros(DType::F32, [3]));
    let f32t = |dims: &[usize]| TensorType::new(DType::F32, dims);
    let expected = vec![
        ("w1".to_string(), f32t(&[32, 64])),
        ("b1".to_string(), f32t(&[32])),
        ("steps".to_string(), TensorType::new(DType::F64, [])),
        ("w2".to_string(), f32t(&[32, 10])),
    ];
    let mismatch = ckpt.check_against(&expected).unwrap_err();
    assert_eq!(
        mismatch.mismatches,
        vec![
            Mismatch::Unexpected {
                name: "old.extra".into(),
                found: f32t(&[3])
            },
            Mismatch::WrongType {
                name: "steps".into(),
                expected: TensorType::new(DType::F64, []),
                found: TensorType::new(DType::I32, []),
            },
            Mismatch::WrongType {
                name: "w1".into(),
                expected: f32t(&[32, 64]),
                found: f32t(&[64, 32]),
            },
            Mismatch::Missing {
                name: "w2".into(),
                expected: f32t(&[32, 10])
            },
        ]
    );
    let msg = mismatch.to_string();
    for piece in [
        "4 differences",
        "unexpected tensor `old.extra` (f32[3])",
        "tensor `w1`: expected f32[32,64], found f32[64,32]",
        "missing tensor `w2` (expected f32[32,10])",
        "`steps`: expected f64[], found i32[]",
    ] {
        assert!(msg.contains(piece), "{msg} lacks {piece}");
    }
    assert!(ckpt.check_against(&ckpt.types()).is_ok());

    let dir = TempDir::new("mismatch");
    let path = dir.path("m.safetensors");
    save_checkpoint(&path, &ckpt).unwrap();
    let err = load_checkpoint_matching(&path, &expected).unwrap_err();
    assert!(matches!(err.kind(), CheckpointErrorKind::Mismatch(_)));
    assert!(err.to_string().contains("m.safetensors") && err.to_string().contains("w2"));
    assert_eq!(
        load_checkpoint_matching(&path, &ckpt.types()).unwrap(),
        ckpt
    );
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]

    /// Several bytes overwritten anywhere: an error (or, in header padding, the same
    /// checkpoint), never a panic.
    #[test]
    fn random_damage_never_panics(edits in proptest::collection::vec((0usize..10_000, 0u8..=255), 1..6)) {
        let original = sample(77);
        let mut bytes = original.to_bytes().unwrap();
        for (pos, value) in edits {
            let i = pos % bytes.len();
            bytes[i] = value;
        }
        if let Ok(loaded) = Checkpoint::from_bytes(&bytes) {
            assert_bit_identical(&original, &loaded);
        }
    }

    /// Arbitrary bytes, including a plausible length prefix: never a panic.
    #[test]
    fn arbitrary_bytes_never_panic(len in 0u64..64, body in proptest::collection::vec(0u8..=255, 0..96)) {
        let mut bytes = len.to_le_bytes().to_vec();
        bytes.extend(body);
        proptest::prop_assert!(Checkpoint::from_bytes(&bytes).is_err());
    }
}

"""Writes state_dict_mlp.safetensors: the fixture of tests/weights.rs.

A PyTorch-style state_dict of nn.Sequential(Linear(4, 5), ReLU(), Linear(5, 3)), written by the
Python `safetensors` library (pip install safetensors numpy), with weights in PyTorch's
[out, in] layout and four dtypes (F16, BF16, F64, F32) plus an I64 buffer Adjoint does not
load. Prints the mean cross-entropy of the batch below, computed in float64 from the values
as stored, which the Rust test expects.

Run from this directory: python make_state_dict_fixture.py
"""

import numpy as np
from safetensors import TensorSpec, serialize_file


def bf16_bits(a):
    """bfloat16 bits of float32 values that bfloat16 holds exactly (the top 16 bits)."""
    bits = np.asarray(a, dtype=np.float32).view(np.uint32)
    assert np.all(bits & 0xFFFF == 0), "not exactly representable in bfloat16"
    return (bits >> 16).astype("<u2")


def spec(dtype, array):
    """The safetensors description of a C-contiguous numpy array (kept alive by the caller)."""
    return TensorSpec(
        dtype=dtype, shape=list(array.shape), data_ptr=array.ctypes.data, data_len=array.nbytes
    )


rng = np.random.default_rng(7)
w0 = rng.normal(0, 0.5, (5, 4)).astype(np.float16)            # layers.0.weight, F16
b0 = np.array([0.5, -0.25, 0.125, 1.0, -0.75], np.float32)   # layers.0.bias, BF16
w2 = rng.normal(0, 0.5, (3, 5)).astype(np.float64)           # layers.2.weight, F64
b2 = rng.normal(0, 0.1, (3,)).astype(np.float32)             # layers.2.bias, F32

arrays = {
    "layers.0.weight": ("float16", w0.astype("<f2")),
    "layers.0.bias": ("bfloat16", bf16_bits(b0)),
    "layers.2.weight": ("float64", w2.astype("<f8")),
    "layers.2.bias": ("float32", b2.astype("<f4")),
    "layers.2.num_batches_tracked": ("int64", np.array(3, "<i8")),
}
arrays = {name: (dtype, np.ascontiguousarray(a)) for name, (dtype, a) in arrays.items()}
tensors = {name: spec(dtype, a) for name, (dtype, a) in arrays.items()}
serialize_file(tensors, "state_dict_mlp.safetensors", metadata={"format": "pt"})

# The loss an Adjoint f32 model must give: the values as a float32 model holds them.
x = np.array([[1.0, -2.0, 0.5, 3.0], [0.0, 1.5, -1.0, 2.0]])
y = np.array([2, 0])
W0, B0 = w0.astype(np.float32).astype(np.float64), b0.astype(np.float64)
W2, B2 = w2.astype(np.float32).astype(np.float64), b2.astype(np.float64)
h = np.maximum(x @ W0.T + B0, 0.0)
z = h @ W2.T + B2
z = z - z.max(axis=1, keepdims=True)
logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
print(f"expected loss {float(-logp[np.arange(2), y].mean())!r}")

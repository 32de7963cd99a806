#!/usr/bin/env python3
"""The W1-W4 benchmark workloads of WORKLOADS.md written in PyTorch and compiled with
`torch.compile` (Inductor), timed like `adjoint bench`.

One training step = forward, loss, gradient of every parameter (`torch.func.grad_and_value`)
and the optimizer update of every parameter, all inside one `torch.compile(fullgraph=True)`
function, so that Inductor compiles forward, backward and update as one graph, as `jax.jit`
does in jax_workloads.py.

    python bench/peers/torch_workloads.py --workload all --threads 1   --steps 50 --warmup 5 --json
    python bench/peers/torch_workloads.py --workload all --threads all --steps 50 --warmup 5 --json

Timing follows crates/adjoint/src/bench.rs: `warmup` untimed steps, then `steps` timed steps;
the median and minimum of the timed steps are reported, and loss_first / loss_last are the
losses of the first and last timed steps. compile_ms is the wall time of the *first* call of the
compiled step (Dynamo tracing, AOTAutograd, Inductor's code generation and C++ compilation, and
one execution). Inductor's on-disk caches are disabled (TORCHINDUCTOR_FORCE_DISABLE_CACHES=1
unless the environment sets it), so every process compiles from scratch.

`--threads 1` pins the process to one CPU (threads created later inherit the mask) and calls
torch.set_num_threads(1); `--threads all` uses every CPU the process may use.
"""

import json
import os
import statistics
import sys
import time

from peer_common import (MLP_SHAPES, W3_SHAPE, W4_SHAPE, Init, check_causal, check_flops,
                         enforce_affinity,
                         mlp_flops, mlp_params, parse_args, pin_threads, readable,
                         selected_workloads, thread_cpu_ticks, threads_cpus_allowed, w3_flops,
                         w3_params, w4_flops, w4_params)

if __name__ == "__main__":
    ARGS = parse_args(__doc__.split("\n\n")[0])
    THREADS = pin_threads(ARGS)
    os.environ.setdefault("TORCHINDUCTOR_FORCE_DISABLE_CACHES", "1")
else:
    ARGS, THREADS = None, None

import numpy as np  # noqa: E402
import torch  # noqa: E402

if THREADS is not None:
    torch.set_num_threads(THREADS)


def tree_map(f, *trees):
    """f over the leaves (tensors) of nested dicts and lists of the same structure."""
    first = trees[0]
    if isinstance(first, dict):
        return {k: tree_map(f, *(t[k] for t in trees)) for k in first}
    if isinstance(first, (list, tuple)):
        return type(first)(tree_map(f, *items) for items in zip(*trees))
    return f(*trees)


def to_torch(tree):
    return tree_map(lambda a: torch.from_numpy(np.ascontiguousarray(a)), tree)


# ---------------------------------------------------------------------------------------------
# Building blocks, written out as WORKLOADS.md defines them.


def cross_entropy_rows(logits, labels):
    """logsumexp(logits_i) - logits_i[y_i], per row."""
    return torch.logsumexp(logits, dim=-1) - logits.gather(-1, labels[:, None])[:, 0]


def cross_entropy(logits, labels):
    return cross_entropy_rows(logits, labels).mean()


def gelu(x):
    """The tanh form: 0.5*x*(1+tanh(0.7978845608*(x+0.044715*x^3)))."""
    return 0.5 * x * (1.0 + torch.tanh(0.7978845608 * (x + 0.044715 * x * x * x)))


def layer_norm(x, gamma, beta, eps=1e-5):
    """Over the last axis, biased variance."""
    mean = x.mean(dim=-1, keepdim=True)
    centered = x - mean
    var = (centered * centered).mean(dim=-1, keepdim=True)
    return centered / torch.sqrt(var + eps) * gamma + beta


def sgd(lr):
    def init(params):
        return {}

    def update(params, grads, state):
        return tree_map(lambda p, g: p - lr * g, params, grads), state

    return init, update


def adam(lr=1e-3, b1=0.9, b2=0.999, eps=1e-8):
    """t += 1; m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2;
    w -= lr * (m / (1-b1^t)) / (sqrt(v / (1-b2^t)) + eps)."""

    def init(params):
        return {"m": tree_map(torch.zeros_like, params), "v": tree_map(torch.zeros_like, params),
                "t": torch.zeros((), dtype=torch.float32)}

    def update(params, grads, state):
        t = state["t"] + 1.0
        c1 = 1.0 - torch.pow(torch.tensor(b1), t)
        c2 = 1.0 - torch.pow(torch.tensor(b2), t)
        m = tree_map(lambda m, g: b1 * m + (1.0 - b1) * g, state["m"], grads)
        v = tree_map(lambda v, g: b2 * v + (1.0 - b2) * g * g, state["v"], grads)
        new = tree_map(lambda p, m, v: p - lr * (m / c1) / (torch.sqrt(v / c2) + eps),
                       params, m, v)
        return new, {"m": m, "v": v, "t": t}

    return init, update


# ---------------------------------------------------------------------------------------------
# The workloads. Each returns (params, data, loss_fn(params, *data), optimizer, matmul_flops).


def mlp_workload(seed, batch, inputs, hidden, classes):
    init = Init(seed)
    x = init.normal("x", (batch, inputs))
    y = init.labels("y", (batch,), classes).astype(np.int64)
    params, dims = mlp_params(init, inputs, hidden, classes)
    layers = len(dims) - 1

    def loss_fn(params, x, y):
        h = x
        for i in range(1, layers + 1):
            z = h @ params[f"w{i}"] + params[f"b{i}"]
            h = torch.relu(z) if i < layers else z
        return cross_entropy(h, y)

    return params, (x, y), loss_fn, sgd(0.01), mlp_flops(batch, dims)


def w3(seed, rows, width, hidden, blocks):
    init = Init(seed)
    x = init.normal("x", (rows, width))
    t = init.normal("t", (rows, width))
    params = w3_params(init, width, hidden, blocks)

    def loss_fn(params, x, t):
        h = x
        for p in params:
            z = layer_norm(h, p["gamma"], p["beta"])
            h = h + gelu(z @ p["a_w"] + p["a_b"]) @ p["b_w"] + p["b_b"]
        d = h - t
        return (d * d).mean()

    return params, (x, t), loss_fn, adam(), w3_flops(rows, width, hidden, blocks)


def w4_loss(batch, seq, vocab, width, heads, per_position=False, **_):
    c, hd = width, width // heads
    causal = torch.tril(torch.ones((seq, seq), dtype=torch.bool))
    scale = 1.0 / float(np.sqrt(hd))

    def attention(x, p):
        def split(m):  # [B, T, C] -> [B, H, T, hd]
            return m.reshape(batch, seq, heads, hd).transpose(1, 2)

        q, k, v = split(x @ p["wq"]), split(x @ p["wk"]), split(x @ p["wv"])
        scores = (q @ k.transpose(-1, -2)) * scale
        scores = torch.where(causal, scores, float("-inf"))  # future positions get -inf
        probs = torch.softmax(scores, dim=-1)
        out = (probs @ v).transpose(1, 2).reshape(batch, seq, c)
        return out @ p["wo"]

    def loss_fn(params, tokens, targets):
        h = params["embed"][tokens] + params["pos"]
        for p in params["blocks"]:
            h = h + attention(layer_norm(h, p["ln1_gamma"], p["ln1_beta"]), p)
            z = layer_norm(h, p["ln2_gamma"], p["ln2_beta"])
            h = h + gelu(z @ p["m1_w"] + p["m1_b"]) @ p["m2_w"] + p["m2_b"]
        z = layer_norm(h, params["lnf_gamma"], params["lnf_beta"])
        logits = (z @ params["unembed"]).reshape(batch * seq, vocab)
        rows = cross_entropy_rows(logits, targets.reshape(batch * seq))
        return rows.reshape(batch, seq) if per_position else rows.mean()

    return loss_fn


def w4(seed, **shape):
    params, tokens, targets = w4_params(Init(seed), **shape)
    data = (tokens.astype(np.int64), targets.astype(np.int64))
    return params, data, w4_loss(**shape), adam(), w4_flops(**shape)


WORKLOADS = {
    "W1": lambda seed: mlp_workload(seed, *MLP_SHAPES["W1"]),
    "W2": lambda seed: mlp_workload(seed, *MLP_SHAPES["W2"]),
    "W3": lambda seed: w3(seed, **W3_SHAPE),
    "W4": lambda seed: w4(seed, **W4_SHAPE),
}


def make_step(loss_fn, optimizer):
    """One compiled training step: (params, opt_state, *data) -> (params, opt_state, loss)."""
    _, update = optimizer

    def step(params, opt_state, *data):
        grads, loss = torch.func.grad_and_value(loss_fn)(params, *data)
        params, opt_state = update(params, grads, opt_state)
        return params, opt_state, loss

    return torch.compile(step, fullgraph=True, dynamic=False)


def run(workload_id, steps, warmup, seed, threads):
    params_np, data_np, loss_fn, optimizer, flops = WORKLOADS[workload_id](seed)
    params = to_torch(params_np)
    data = tuple(torch.from_numpy(d) for d in data_np)
    opt_state = optimizer[0](params)
    step = make_step(loss_fn, optimizer)

    start = time.perf_counter()
    params, opt_state, loss = step(params, opt_state, *data)
    compile_ms = (time.perf_counter() - start) * 1e3
    loss_compile_call = float(loss)
    enforce_affinity()

    for _ in range(warmup):
        params, opt_state, loss = step(params, opt_state, *data)

    steps = max(steps, 1)
    times, losses = [], []
    ticks0 = thread_cpu_ticks()
    cpu0, wall0 = time.process_time(), time.perf_counter()
    for _ in range(steps):
        start = time.perf_counter()
        params, opt_state, loss = step(params, opt_state, *data)
        times.append((time.perf_counter() - start) * 1e6)
        losses.append(loss)
    cpu_per_wall = (time.process_time() - cpu0) / (time.perf_counter() - wall0)
    ticks1 = thread_cpu_ticks()
    busy_threads = sum(1 for t, v in ticks1.items() if v > ticks0.get(t, 0))
    losses = [float(v) for v in losses]
    median = statistics.median(times)
    return {
        "workload": workload_id,
        "mode": "torch-compile",
        "threads": threads,
        "compile_ms": round(compile_ms, 3),
        "step_us_median": round(median, 1),
        "step_us_min": round(min(times), 1),
        "steps": steps,
        "gflops": round(flops / (median * 1e-6) / 1e9, 3),
        "loss_first": losses[0],
        "loss_last": losses[-1],
        "torch_version": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "matmul_flops": flops,
        "loss_at_compile_call": loss_compile_call,
        "cpu_per_wall": round(cpu_per_wall, 3),
        "os_threads": len(ticks1),
        "os_threads_busy": busy_threads,
        "cpus_allowed": threads_cpus_allowed(),
        "warmup": warmup,
    }


def check(seed):
    ok = check_flops(lambda w: WORKLOADS[w](seed)[4])
    params, (tokens, targets), _, _, _ = w4(seed, **W4_SHAPE)
    per_position = w4_loss(per_position=True, **W4_SHAPE)
    params = to_torch(params)
    target_t = torch.from_numpy(targets)

    def losses(tok):
        with torch.no_grad():
            return per_position(params, torch.from_numpy(tok), target_t).numpy()

    return check_causal(losses, tokens) and ok


def main(args):
    if args.check:
        sys.exit(0 if check(args.seed) else 1)
    for w in selected_workloads(args):
        r = run(w, args.steps, args.warmup, args.seed, THREADS)
        print(json.dumps(r) if args.json else readable(r), flush=True)


if __name__ == "__main__":
    main(ARGS)

#!/usr/bin/env python3
"""The W1-W4 benchmark workloads of WORKLOADS.md written in JAX, timed like `adjoint bench`.

One training step = forward, loss, gradient of every parameter (jax.value_and_grad) and the
optimizer update of every parameter, all inside one `jax.jit`-compiled function whose
parameters (and optimizer state) are donated so XLA may update them in place.

    python bench/peers/jax_workloads.py --workload all --threads 1   --steps 50 --warmup 5 --json
    python bench/peers/jax_workloads.py --workload all --threads all --steps 50 --warmup 5 --json

Timing follows crates/adjoint/src/bench.rs: `warmup` untimed steps, then `steps` timed steps;
the median and minimum of the timed steps are reported, and loss_first / loss_last are the
losses of the first and last timed steps. compile_ms is the wall time of the *first* call of
the jitted step (tracing, lowering, XLA compilation and one execution), measured with
block_until_ready. Every timed call is closed by block_until_ready on all its outputs.

Threads are controlled before jax is imported (see README.md): `--threads 1` sets
XLA_FLAGS="--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1" and pins the
process to one CPU with os.sched_setaffinity -- the pinning is what enforces one core (in
jaxlib 0.10.2 the flag alone still lets XLA split a step over two worker threads, and
intra_op_parallelism_threads is not an XLA flag: without dashes XLA ignores it). `--threads all`
leaves XLA at its defaults on every CPU the process may use. Each JSON line carries
cpu_per_wall (process CPU time / wall time over the timed steps), the number of OS threads that
ran, and the union of their CPU affinity masks, as checks.
"""

import json
import os
import sys
import time

from peer_common import (MLP_SHAPES, W3_SHAPE, W4_SHAPE, Init, check_causal, check_flops,
                         enforce_affinity,
                         mlp_flops, mlp_params, parse_args, pin_threads, readable,
                         selected_workloads, thread_cpu_ticks, threads_cpus_allowed, w3_flops,
                         w3_params, w4_flops, w4_params)

SINGLE_THREAD_XLA_FLAGS = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"


def configure_threads(args):
    """Must run before jax is imported. Returns the number of cores the process may use."""
    if args.threads == "1":
        # XLA reads XLA_FLAGS once, when its CPU backend starts. An existing XLA_FLAGS is kept
        # (appended to), so a caller can still add flags of its own.
        prior = os.environ.get("XLA_FLAGS", "")
        os.environ["XLA_FLAGS"] = (prior + " " + SINGLE_THREAD_XLA_FLAGS).strip()
    # Threads created later (XLA's pools) inherit the pinned mask, so nothing runs on a second
    # core.
    return pin_threads(args)


ARGS = parse_args(__doc__.split("\n\n")[0]) if __name__ == "__main__" else None
THREADS = configure_threads(ARGS) if ARGS is not None else None

import numpy as np  # noqa: E402
import jax  # noqa: E402
import jaxlib  # noqa: E402
import jax.numpy as jnp  # noqa: E402

# ---------------------------------------------------------------------------------------------
# Building blocks, written out as WORKLOADS.md defines them.


def cross_entropy_rows(logits, labels):
    """logsumexp(logits_i) - logits_i[y_i], per row."""
    lse = jax.nn.logsumexp(logits, axis=-1)
    return lse - jnp.take_along_axis(logits, labels[:, None], axis=-1)[:, 0]


def cross_entropy(logits, labels):
    return jnp.mean(cross_entropy_rows(logits, labels))


def gelu(x):
    """The tanh form: 0.5*x*(1+tanh(0.7978845608*(x+0.044715*x^3)))."""
    return 0.5 * x * (1.0 + jnp.tanh(0.7978845608 * (x + 0.044715 * x * x * x)))


def layer_norm(x, gamma, beta, eps=1e-5):
    """Over the last axis, biased variance."""
    mean = jnp.mean(x, axis=-1, keepdims=True)
    centered = x - mean
    var = jnp.mean(centered * centered, axis=-1, keepdims=True)
    return centered / jnp.sqrt(var + eps) * gamma + beta


def sgd(lr):
    def init(params):
        return ()

    def update(params, grads, state):
        return jax.tree_util.tree_map(lambda p, g: p - lr * g, params, grads), state

    return init, update


def adam(lr=1e-3, b1=0.9, b2=0.999, eps=1e-8):
    """t += 1; m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2;
    w -= lr * (m / (1-b1^t)) / (sqrt(v / (1-b2^t)) + eps)."""

    def init(params):
        zeros = jax.tree_util.tree_map(jnp.zeros_like, params)
        return {"m": zeros, "v": jax.tree_util.tree_map(jnp.zeros_like, params),
                "t": jnp.zeros((), jnp.float32)}

    def update(params, grads, state):
        t = state["t"] + 1.0
        c1 = 1.0 - b1 ** t
        c2 = 1.0 - b2 ** t
        m = jax.tree_util.tree_map(lambda m, g: b1 * m + (1.0 - b1) * g, state["m"], grads)
        v = jax.tree_util.tree_map(lambda v, g: b2 * v + (1.0 - b2) * g * g, state["v"], grads)
        new = jax.tree_util.tree_map(
            lambda p, m, v: p - lr * (m / c1) / (jnp.sqrt(v / c2) + eps), params, m, v)
        return new, {"m": m, "v": v, "t": t}

    return init, update


# ---------------------------------------------------------------------------------------------
# The workloads. Each returns (params, data, loss_fn(params, *data), optimizer, matmul_flops).


def mlp_workload(seed, batch, inputs, hidden, classes):
    init = Init(seed)
    x = init.normal("x", (batch, inputs))
    y = init.labels("y", (batch,), classes)
    params, dims = mlp_params(init, inputs, hidden, classes)
    layers = len(dims) - 1

    def loss_fn(params, x, y):
        h = x
        for i in range(1, layers + 1):
            z = h @ params[f"w{i}"] + params[f"b{i}"]
            h = jax.nn.relu(z) if i < layers else z
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
        return jnp.mean(d * d)

    return params, (x, t), loss_fn, adam(), w3_flops(rows, width, hidden, blocks)


def w4_loss(batch, seq, vocab, width, heads, per_position=False, **_):
    c, hd = width, width // heads
    causal = np.tril(np.ones((seq, seq), dtype=bool))  # a compile-time constant
    scale = np.float32(1.0 / np.sqrt(hd))

    def attention(x, p):
        def split(m):  # [B, T, C] -> [B, H, T, hd]
            return m.reshape(batch, seq, heads, hd).transpose(0, 2, 1, 3)

        q, k, v = split(x @ p["wq"]), split(x @ p["wk"]), split(x @ p["wv"])
        scores = (q @ k.transpose(0, 1, 3, 2)) * scale
        scores = jnp.where(causal, scores, -jnp.inf)  # future positions get -inf
        probs = jax.nn.softmax(scores, axis=-1)
        out = (probs @ v).transpose(0, 2, 1, 3).reshape(batch, seq, c)
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
        return rows.reshape(batch, seq) if per_position else jnp.mean(rows)

    return loss_fn


def w4(seed, **shape):
    params, tokens, targets = w4_params(Init(seed), **shape)
    return params, (tokens, targets), w4_loss(**shape), adam(), w4_flops(**shape)


WORKLOADS = {
    "W1": lambda seed: mlp_workload(seed, *MLP_SHAPES["W1"]),
    "W2": lambda seed: mlp_workload(seed, *MLP_SHAPES["W2"]),
    "W3": lambda seed: w3(seed, **W3_SHAPE),
    "W4": lambda seed: w4(seed, **W4_SHAPE),
}


def make_step(loss_fn, optimizer):
    """One jitted training step: (params, opt_state, *data) -> (params, opt_state, loss)."""
    _, update = optimizer

    def step(params, opt_state, *data):
        loss, grads = jax.value_and_grad(loss_fn)(params, *data)
        params, opt_state = update(params, grads, opt_state)
        return params, opt_state, loss

    return jax.jit(step, donate_argnums=(0, 1))


# ---------------------------------------------------------------------------------------------
# Sanity check: matmul FLOPs of the step as JAX actually traces it (every dot_general in the
# jaxpr of forward + backward + update), to set beside WORKLOADS.md's 3x-forward count.


def _dot_flops(eqn):
    (lhs_contract, _), _ = eqn.params["dimension_numbers"]
    lhs = eqn.invars[0].aval.shape
    out = eqn.outvars[0].aval.shape
    contracted = int(np.prod([lhs[d] for d in lhs_contract])) if lhs_contract else 1
    return 2 * int(np.prod(out)) * contracted


def jaxpr_matmul_flops(jaxpr):
    total = 0
    for eqn in jaxpr.eqns:
        if eqn.primitive.name == "dot_general":
            total += _dot_flops(eqn)
        for sub in _subjaxprs(eqn.params):
            total += jaxpr_matmul_flops(sub)
    return total


def _subjaxprs(params):
    for v in params.values():
        for item in (v if isinstance(v, (list, tuple)) else [v]):
            if hasattr(item, "jaxpr") and hasattr(item.jaxpr, "eqns"):
                yield item.jaxpr  # ClosedJaxpr
            elif hasattr(item, "eqns"):
                yield item  # Jaxpr


# ---------------------------------------------------------------------------------------------


# Durations JAX reports for its compile phases (jax.monitoring), summed per event.
COMPILE_EVENTS = {
    "/jax/core/compile/jaxpr_trace_duration": "trace_ms",
    "/jax/core/compile/jaxpr_to_mlir_module_duration": "lower_ms",
    "/jax/core/compile/backend_compile_duration": "xla_compile_ms",
}
_event_secs = {}


def _on_duration(event, duration_secs, **_kwargs):
    if event in COMPILE_EVENTS:
        _event_secs[event] = _event_secs.get(event, 0.0) + duration_secs


def run(workload_id, steps, warmup, seed, threads):
    params_np, data_np, loss_fn, optimizer, flops = WORKLOADS[workload_id](seed)
    params = jax.device_put(params_np)
    data = tuple(jax.device_put(d) for d in data_np)
    opt_state = optimizer[0](params)
    jax.block_until_ready((params, data, opt_state))
    step = make_step(loss_fn, optimizer)

    _event_secs.clear()
    start = time.perf_counter()
    params, opt_state, loss = jax.block_until_ready(step(params, opt_state, *data))
    compile_ms = (time.perf_counter() - start) * 1e3
    phases = {name: round(_event_secs.get(ev, 0.0) * 1e3, 3) for ev, name in COMPILE_EVENTS.items()}
    loss_compile_call = float(loss)
    enforce_affinity()

    for _ in range(warmup):
        params, opt_state, loss = jax.block_until_ready(step(params, opt_state, *data))

    steps = max(steps, 1)
    times, losses = [], []
    ticks0 = thread_cpu_ticks()
    cpu0, wall0 = time.process_time(), time.perf_counter()
    for _ in range(steps):
        start = time.perf_counter()
        params, opt_state, loss = jax.block_until_ready(step(params, opt_state, *data))
        times.append((time.perf_counter() - start) * 1e6)
        losses.append(loss)
    cpu_per_wall = (time.process_time() - cpu0) / (time.perf_counter() - wall0)
    ticks1 = thread_cpu_ticks()
    busy_threads = sum(1 for t, v in ticks1.items() if v > ticks0.get(t, 0))
    losses = [float(l) for l in losses]
    median = float(np.median(times))
    # After the timing, so that this trace cannot warm any cache the first call would use.
    traced_flops = jaxpr_matmul_flops(
        jax.make_jaxpr(step)(params, opt_state, *data).jaxpr)
    return {
        "workload": workload_id,
        "mode": "jax-jit",
        "threads": threads,
        "compile_ms": round(compile_ms, 3),
        "step_us_median": round(median, 1),
        "step_us_min": round(min(times), 1),
        "steps": steps,
        "gflops": round(flops / (median * 1e-6) / 1e9, 3),
        "loss_first": losses[0],
        "loss_last": losses[-1],
        "jax_version": jax.__version__,
        "jaxlib_version": jaxlib.__version__,
        **phases,
        "matmul_flops": flops,
        "traced_matmul_flops": traced_flops,
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
    return check_causal(lambda tok: np.asarray(per_position(params, tok, targets)), tokens) and ok


def main(args):
    if args.check:
        sys.exit(0 if check(args.seed) else 1)
    ids = selected_workloads(args)
    devices = jax.devices()
    if devices[0].platform != "cpu":
        sys.exit(f"expected the CPU backend, got {devices}")
    # Start the backend and JAX's tracing machinery once, so that one-time start-up costs are
    # not charged to the first workload's compile time.
    jax.block_until_ready(jax.jit(lambda a: a * 2.0 + 1.0)(jnp.ones(4)))
    jax.monitoring.register_event_duration_secs_listener(_on_duration)
    for w in ids:
        r = run(w, args.steps, args.warmup, args.seed, THREADS)
        print(json.dumps(r) if args.json else readable(r), flush=True)


if __name__ == "__main__":
    main(ARGS)

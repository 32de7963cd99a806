"""What the peer benchmarks (jax_workloads.py, torch_workloads.py) share: seeded initialization,
the matmul FLOP counts of WORKLOADS.md, thread checks, the command line and the output line.

Nothing here imports a framework, so a script can set its thread settings before it imports one.
"""

import argparse
import os
import zlib

import numpy as np

# FLOPs per step that WORKLOADS.md states (W4's is not stated there: it is the same count as
# adjoint-workloads' GptConfig::matmul_flops, 3x the forward matmuls, attention over all T x T).
DOC_FLOPS = {"W1": 9.93e6, "W2": 1.430e9, "W3": 1.61e9}

# The shapes of WORKLOADS.md.
MLP_SHAPES = {"W1": (64, 64, [128, 128], 10), "W2": (128, 784, [1024, 1024], 10)}
W3_SHAPE = dict(rows=256, width=256, hidden=512, blocks=4)
W4_SHAPE = dict(batch=8, seq=64, vocab=256, width=128, heads=4, mlp_hidden=512, layers=2)
WORKLOAD_IDS = ["W1", "W2", "W3", "W4"]


def parse_args(description, argv=None):
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--workload", default="all", help="W1|W2|W3|W4|all (or a comma list)")
    p.add_argument("--threads", default="1", help="1 or all (default 1, as adjoint bench)")
    p.add_argument("--steps", type=int, default=20, help="timed steps (default 20, as adjoint bench)")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps after the first call (default 3)")
    p.add_argument("--seed", type=int, default=0, help="seed of data and initial parameters")
    p.add_argument("--cpu", type=int, default=None,
                   help="with --threads 1: the CPU to pin to (default: the first one allowed)")
    p.add_argument("--json", action="store_true", help="print one JSON line per workload")
    p.add_argument("--check", action="store_true",
                   help="run the sanity checks (FLOP counts, causal mask) instead of timing")
    args = p.parse_args(argv)
    if args.threads not in ("1", "all"):
        p.error("--threads must be 1 or all")
    return args


def pin_threads(args):
    """Pins the process to one CPU for `--threads 1` (threads created later inherit the mask)
    and asks the usual native pools for one thread. Returns the number of CPUs to use."""
    if args.threads == "1":
        allowed = sorted(os.sched_getaffinity(0))
        cpu = args.cpu if args.cpu is not None else allowed[0]
        os.sched_setaffinity(0, {cpu})
        for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ.setdefault(var, "1")
        return 1
    return len(os.sched_getaffinity(0))


def selected_workloads(args):
    """The workload ids `--workload` names, or an error message."""
    ids = WORKLOAD_IDS if args.workload.lower() == "all" else \
        [w.strip().upper() for w in args.workload.split(",")]
    for w in ids:
        if w not in WORKLOAD_IDS:
            raise SystemExit(f"unknown workload {w!r}: use W1, W2, W3, W4 or all")
    return ids


class Init:
    """Seeded initialization: each named tensor has its own stream, as in adjoint-workloads'
    Init (the streams differ from Adjoint's, the distributions are the same)."""

    def __init__(self, seed):
        self.seed = seed

    def rng(self, name):
        return np.random.default_rng([self.seed, zlib.crc32(name.encode())])

    def normal(self, name, shape, std=1.0):
        return (self.rng(name).standard_normal(shape) * std).astype(np.float32)

    def labels(self, name, shape, bound):
        return self.rng(name).integers(0, bound, size=shape, dtype=np.int32)

    def he(self, name, shape):  # std sqrt(2 / fan_in), fan_in = shape[0]
        return self.normal(name, shape, np.sqrt(2.0 / shape[0]))

    def lecun(self, name, shape):  # std 1 / sqrt(fan_in)
        return self.normal(name, shape, 1.0 / np.sqrt(shape[0]))

    @staticmethod
    def zeros(shape):
        return np.zeros(shape, np.float32)

    @staticmethod
    def ones(shape):
        return np.ones(shape, np.float32)


def mlp_params(init, inputs, hidden, classes):
    """He-initialized weights w1.. and zero biases b1.. of a ReLU MLP; also returns the dims."""
    dims = [inputs] + list(hidden) + [classes]
    params = {}
    for i, (a, b) in enumerate(zip(dims, dims[1:]), start=1):
        params[f"w{i}"] = init.he(f"w{i}", (a, b))
        params[f"b{i}"] = init.zeros((b,))
    return params, dims


def mlp_flops(batch, dims):
    return 3.0 * sum(2 * batch * a * b for a, b in zip(dims, dims[1:]))


def w3_params(init, width, hidden, blocks):
    """Per block: LayerNorm gain/bias, A (LeCun), a, B (small, residual branches start small), b."""
    small = 1.0 / np.sqrt(hidden) / np.sqrt(blocks)
    return [{
        "gamma": init.ones((width,)),
        "beta": init.zeros((width,)),
        "a_w": init.lecun(f"a.w{i}", (width, hidden)),
        "a_b": init.zeros((hidden,)),
        "b_w": init.normal(f"b.w{i}", (hidden, width), small),
        "b_b": init.zeros((width,)),
    } for i in range(1, blocks + 1)]


def w3_flops(rows, width, hidden, blocks):
    return 3.0 * blocks * 2 * 2 * rows * width * hidden


def w4_params(init, batch, seq, vocab, width, mlp_hidden, layers, **_):
    """(params, tokens, targets) of the tiny GPT: random sequences of seq+1 tokens, each target
    the next token."""
    sequences = init.labels("sequences", (batch, seq + 1), vocab)
    tokens, targets = sequences[:, :-1].copy(), sequences[:, 1:].copy()
    small = 1.0 / np.sqrt(mlp_hidden) / np.sqrt(2 * layers)
    c = width
    params = {
        "embed": init.normal("embed", (vocab, c), 0.02),
        "pos": init.normal("pos", (seq, c), 0.02),
        "blocks": [],
        "lnf_gamma": init.ones((c,)),
        "lnf_beta": init.zeros((c,)),
        "unembed": init.lecun("unembed", (c, vocab)),
    }
    for layer in range(1, layers + 1):
        n = lambda s: f"l{layer}.{s}"  # noqa: E731
        params["blocks"].append({
            "ln1_gamma": init.ones((c,)), "ln1_beta": init.zeros((c,)),
            "wq": init.lecun(n("wq"), (c, c)), "wk": init.lecun(n("wk"), (c, c)),
            "wv": init.lecun(n("wv"), (c, c)), "wo": init.normal(n("wo"), (c, c), small),
            "ln2_gamma": init.ones((c,)), "ln2_beta": init.zeros((c,)),
            "m1_w": init.lecun(n("m1.w"), (c, mlp_hidden)), "m1_b": init.zeros((mlp_hidden,)),
            "m2_w": init.normal(n("m2.w"), (mlp_hidden, c), small), "m2_b": init.zeros((c,)),
        })
    return params, tokens, targets


def w4_flops(batch, seq, vocab, width, heads, mlp_hidden, layers):
    rows, c, hd = batch * seq, width, width // heads
    projections = 4 * 2 * rows * c * c
    attn = 2 * 2 * batch * heads * seq * seq * hd
    mlp = 2 * 2 * rows * c * mlp_hidden
    unembed = 2 * rows * c * vocab
    return 3.0 * (layers * (projections + attn + mlp) + unembed)


def check_flops(flops_of):
    """Compares each workload's FLOP count (flops_of(id)) with WORKLOADS.md; prints, returns ok."""
    ok = True
    for w in WORKLOAD_IDS:
        flops = flops_of(w)
        if w in DOC_FLOPS:
            good = abs(flops / DOC_FLOPS[w] - 1) < 5e-3
            ok &= good
            print(f"{w} matmul FLOPs {flops:.6g} vs WORKLOADS.md {DOC_FLOPS[w]:.4g}: "
                  f"{'ok' if good else 'MISMATCH'}")
        else:
            print(f"{w} matmul FLOPs {flops:.6g} (not stated in WORKLOADS.md)")
    return ok


def check_causal(per_position_loss, tokens):
    """Changing the tokens at positions >= 40 must leave the loss of every earlier position
    bit-for-bit unchanged: per_position_loss(tokens) -> [batch, seq] array. Prints, returns ok."""
    a = per_position_loss(tokens)
    changed = tokens.copy()
    changed[:, 40:] = (changed[:, 40:] + 7) % 256
    b = per_position_loss(changed)
    early, late = np.abs(a[:, :40] - b[:, :40]).max(), np.abs(a[:, 40:] - b[:, 40:]).max()
    good = early == 0.0 and late > 0.0
    print(f"W4 causal mask: max change of earlier positions' loss {early}, of later {late:.3g}: "
          f"{'ok' if good else 'LEAK'}")
    return good


def thread_cpu_ticks():
    """utime+stime (clock ticks) of every OS thread of this process, by thread id."""
    ticks = {}
    for tid in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{tid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            ticks[tid] = int(fields[11]) + int(fields[12])
        except (OSError, IndexError, ValueError):
            pass
    return ticks


def threads_cpus_allowed():
    """The union of the CPUs every OS thread of this process may run on."""
    cpus = set()
    for tid in os.listdir("/proc/self/task"):
        try:
            cpus |= os.sched_getaffinity(int(tid))
        except OSError:
            pass
    return sorted(cpus)


def enforce_affinity():
    """Gives every OS thread of this process the main thread's CPU mask (a compiler's worker
    threads may have been started with a wider one)."""
    mask = os.sched_getaffinity(0)
    for tid in os.listdir("/proc/self/task"):
        try:
            os.sched_setaffinity(int(tid), mask)
        except OSError:
            pass


def readable(r):
    """One readable line of a result dictionary."""
    return (f"{r['workload']} {r['mode']} threads {r['threads']}  compile {r['compile_ms']:8.1f} ms"
            f"  step median {r['step_us_median']:10.1f} us (min {r['step_us_min']:.1f})"
            f"  {r['gflops']:6.2f} GFLOP/s  loss {r['loss_first']:.4f} -> "
            f"{r['loss_last']:.4f}  cpu/wall {r['cpu_per_wall']:.2f}  busy threads "
            f"{r['os_threads_busy']}/{r['os_threads']} on cpus {r['cpus_allowed']}")

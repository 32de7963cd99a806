"""GFLOP/s of torch.matmul (MKL on x86 CPUs) on the shapes `gemm_bench` measures, one thread by
default, timed the way `crates/adjoint-jit/examples/gemm_bench.rs` times Adjoint's host kernel
(best of repeated runs over at least ~0.2 s and at least 20 runs, after one warm-up run; with
`--cold`, the median of 15 runs each after writing 64 MiB elsewhere, as `GEMM_BENCH_COLD=1`).

    python bench/peers/torch_matmul.py [--threads N] [--layouts] [--cold] [MxNxK ...]
"""

import argparse
import time

import torch

SHAPES = [
    (128, 1024, 784),
    (256, 512, 256),
    (512, 128, 128),
    (64, 128, 64),
    (128, 10, 1024),
    (512, 256, 128),
    (512, 512, 128),
    (512, 128, 512),
]


def best_time(f):
    f()
    start = time.perf_counter()
    best = float("inf")
    runs = 0
    while runs < 20 or time.perf_counter() - start < 0.2:
        t = time.perf_counter()
        f()
        best = min(best, time.perf_counter() - t)
        runs += 1
    return best


def cold_time(f):
    other = torch.ones(16 << 20)
    times = []
    for _ in range(15):
        other += 1.0
        t = time.perf_counter()
        f()
        times.append(time.perf_counter() - t)
    return sorted(times)[len(times) // 2]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("shapes", nargs="*", help="MxNxK")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--layouts", action="store_true", help="also A^T.B and A.B^T")
    p.add_argument("--cold", action="store_true", help="operands evicted from cache before each run")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    shapes = [tuple(int(x) for x in s.split("x")) for s in args.shapes] or SHAPES
    layouts = [(False, False, "A·B")]
    if args.layouts:
        layouts += [(True, False, "Aᵀ·B"), (False, True, "A·Bᵀ")]
    print(f"torch {torch.__version__}, {args.threads} thread(s), "
          f"MKL {torch.backends.mkl.is_available()}, {torch.backends.cpu.get_cpu_capability()}")
    for m, n, k in shapes:
        for at, bt, name in layouts:
            a = torch.randn(k, m).t() if at else torch.randn(m, k)
            b = torch.randn(n, k).t() if bt else torch.randn(k, n)
            c = torch.empty(m, n)
            timer = cold_time if args.cold else best_time
            t = timer(lambda: torch.matmul(a, b, out=c))
            print(f"{m}x{n}x{k} {name} torch: {t * 1e6:.1f} us, {2 * m * n * k / t / 1e9:.1f} GFLOP/s")


if __name__ == "__main__":
    main()

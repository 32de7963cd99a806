#!/usr/bin/env python3
"""Adjoint, JAX and torch.compile side by side in one window: W1-W4 at one thread and at every
thread, as ratios, with the machine's CPU model and load average printed beside them.

    python bench/peers/compare.py --adjoint target/release/adjoint --steps 50 --warmup 5

Each engine runs in its own process per thread setting, all four workloads per process, in the
order Adjoint, JAX, torch.compile (one thread), then the same at every thread, then Adjoint
once more at one thread, so that a drift of the machine between the first and last Adjoint runs
shows. Prints every JSON line it collected (`--raw FILE` keeps them) and a Markdown table:
median step times, and each peer's time divided by Adjoint's (above 1: Adjoint is faster).
`--engines adjoint,jax` leaves out an engine that is not installed.
"""

import argparse
import json
import os
import platform
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def isa_flags():
    try:
        with open("/proc/cpuinfo") as f:
            flags = next(line for line in f if line.startswith("flags")).split()
    except (OSError, StopIteration):
        return []
    wanted = ["avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512_bf16", "avx512_fp16",
              "amx_bf16"]
    return [w for w in wanted if w in flags]


def run_engine(engine, args, threads):
    if engine == "adjoint":
        cmd = [args.adjoint, "bench", "--workload", "all", "--mode", "jit-fused",
               "--threads", "1" if threads == "1" else "all",
               "--steps", str(args.steps), "--warmup", str(args.warmup), "--json"]
    else:
        script = {"jax": "jax_workloads.py", "torch": "torch_workloads.py"}[engine]
        cmd = [args.python, os.path.join(HERE, script), "--workload", "all",
               "--threads", threads, "--steps", str(args.steps), "--warmup", str(args.warmup),
               "--json"]
    print(f"# {' '.join(cmd)}  (load average {os.getloadavg()[0]:.2f})", file=sys.stderr,
          flush=True)
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    rows = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    for r in rows:
        r["engine"] = engine
        r["threads_setting"] = threads
    return rows


def table(rows, engines):
    def median(engine, workload, threads, which=0):
        found = [r for r in rows if r["engine"] == engine and r["workload"] == workload
                 and r["threads_setting"] == threads]
        return found[which]["step_us_median"] if len(found) > which else None

    peers = [e for e in engines if e != "adjoint"]
    head = ["", "threads", "Adjoint ms"] + [f"{p} ms" for p in peers] + \
        [f"{p} / Adjoint" for p in peers] + ["best peer / Adjoint", "Adjoint again ms"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for threads in ["1", "all"]:
        for w in ["W1", "W2", "W3", "W4"]:
            ours = median("adjoint", w, threads)
            again = median("adjoint", w, threads, 1)
            theirs = [median(p, w, threads) for p in peers]
            cells = [w, threads, f"{ours / 1e3:.3f}" if ours else "—"]
            cells += [f"{t / 1e3:.3f}" if t else "—" for t in theirs]
            cells += [f"{t / ours:.2f}×" if t and ours else "—" for t in theirs]
            known = [t for t in theirs if t]
            cells.append(f"{min(known) / ours:.2f}×" if known and ours else "—")
            cells.append(f"{again / 1e3:.3f}" if again else "—")
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--adjoint", default="target/release/adjoint", help="the adjoint binary")
    p.add_argument("--python", default=sys.executable, help="the Python with jax and torch")
    p.add_argument("--engines", default="adjoint,jax,torch")
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--raw", help="also write the JSON lines to this file")
    args = p.parse_args()
    engines = [e.strip() for e in args.engines.split(",")]
    print(f"# CPU: {cpu_model()}; {os.cpu_count()} CPUs; ISA: {' '.join(isa_flags())}",
          file=sys.stderr)
    rows = []
    for threads in ["1", "all"]:
        for engine in engines:
            rows += run_engine(engine, args, threads)
    if "adjoint" in engines:
        rows += run_engine("adjoint", args, "1")
    print(f"# load average at the end {os.getloadavg()[0]:.2f}", file=sys.stderr)
    if args.raw:
        with open(args.raw, "w") as f:
            for r in rows:
                f.write(json.dumps(r) + "\n")
    print(table(rows, engines))


if __name__ == "__main__":
    main()

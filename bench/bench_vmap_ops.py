"""Where the time of the per-example MLP gradients goes (issue 14, batch 256 against
`torch.func`): each operation of the code `tl.vmap(tl.grad(mlp_loss), ...)` generates,
timed alone in NumPy and the same operation in PyTorch eager, on the same data.

    python bench/bench_vmap_ops.py [--batch 256] [--rounds 200]

One thread each (BLAS and PyTorch), float64. Each operation's time is the least over
`rounds` rounds of one call each, the rounds of all operations interleaved (this machine
is shared: the least is the time of a run no other job interrupted). The generated code
is printed first and checked to be the operations timed here; then, in a fresh order of
calls, the page faults a call of each whole version takes (`ru_minflt`): how the memory
of the two 8 MB results is handed back and faulted in again depends on glibc's
allocator, whose thresholds move with what the process freed before."""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from timing import single_threaded  # noqa: E402

single_threaded()

import numpy as np  # noqa: E402
import vmap_programs as vp  # noqa: E402

import tapeless as tl  # noqa: E402

# The operations of the generated code, in its order (checked against `.source_for`).
GENERATED = """\
    y = np.tanh(np.matmul(x, np.transpose(W1)) + b1)
    y_1 = np.tanh(np.matmul(y, np.transpose(W2)) + b2)
    _t = 1.0 - y_1 * y_1
    _t_1 = np.matmul(_t, W2) * (1.0 - y * y)
    da = _t_1[:, :, None] * x[:, None, :]
    da_1 = _t[:, :, None] * y[:, None, :]
    return da, _t_1, da_1, _t
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=200)
    args = parser.parse_args()
    import torch
    from torch.func import grad, vmap
    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    n, batch = 64, args.batch
    W1, W2 = rng.normal(size=(n, n)) / 8, rng.normal(size=(n, n)) / 8
    b1, b2 = rng.normal(size=n), rng.normal(size=n)
    x = rng.normal(size=(batch, n))
    v = tl.vmap(tl.grad(vp.mlp_loss, argnums=(0, 1, 2, 3)),
                in_axes=(None, None, None, None, 0))
    v(W1, b1, W2, b2, x)
    source = v.source_for(W1, b1, W2, b2, x)
    print(source)
    assert source.split("\n", 1)[1].rstrip() == GENERATED.rstrip(), \
        "the generated code changed: update the operations timed here"
    t = {k: torch.tensor(a) for k, a in dict(W1=W1, b1=b1, W2=W2, b2=b2, x=x).items()}

    # Each operation with its inputs made once, before the timing; (name, NumPy, torch).
    z1 = np.matmul(x, W1.T) + b1
    y = np.tanh(z1)
    z2 = np.matmul(y, W2.T) + b2
    y_1 = np.tanh(z2)
    d2 = 1.0 - y_1 * y_1
    m = np.matmul(d2, W2)
    d1 = m * (1.0 - y * y)
    T = {k: torch.tensor(a) for k, a in dict(z1=z1, y=y, z2=z2, y_1=y_1, d2=d2, m=m,
                                                 d1=d1).items()}
    ops = [
        ("x @ W1.T (matmul, 256x64 @ 64x64)", lambda: np.matmul(x, np.transpose(W1)),
         lambda: t["x"] @ t["W1"].T),
        ("+ b1", lambda: z1 + b1, lambda: T["z1"] + t["b1"]),
        ("tanh (layer 1)", lambda: np.tanh(z1), lambda: torch.tanh(T["z1"])),
        ("y @ W2.T", lambda: np.matmul(y, np.transpose(W2)), lambda: T["y"] @ t["W2"].T),
        ("tanh (layer 2)", lambda: np.tanh(z2), lambda: torch.tanh(T["z2"])),
        ("1 - y_1 * y_1", lambda: 1.0 - y_1 * y_1, lambda: 1.0 - T["y_1"] * T["y_1"]),
        ("d2 @ W2", lambda: np.matmul(d2, W2), lambda: T["d2"] @ t["W2"]),
        ("m * (1 - y * y)", lambda: m * (1.0 - y * y), lambda: T["m"] * (1.0 - T["y"] * T["y"])),
        ("outer product d1 x (8 MB)", lambda: d1[:, :, None] * x[:, None, :],
         lambda: T["d1"][:, :, None] * t["x"][:, None, :]),
        ("outer product d2 y (8 MB)", lambda: d2[:, :, None] * y[:, None, :],
         lambda: T["d2"][:, :, None] * T["y"][:, None, :]),
        ("the same into a preallocated array (out=): the kernel alone",
         lambda: np.multiply(d2[:, :, None], y[:, None, :], out=out),
         lambda: torch.mul(T["d2"][:, :, None], T["y"][:, None, :], out=tout)),
    ]
    out = np.empty((batch, n, n))
    tout = torch.empty((batch, n, n), dtype=torch.float64)
    best = [[float("inf")] * 2 for _ in ops]
    faults = [[0] * 2 for _ in ops]
    for _ in range(args.rounds):
        for i, (_, f_np, f_torch) in enumerate(ops):
            for j, f in enumerate((f_np, f_torch)):
                before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
                start = time.perf_counter()
                f()
                best[i][j] = min(best[i][j], time.perf_counter() - start)
                faults[i][j] += resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
    print(f"| operation (batch {batch}, float64, one thread) | NumPy | PyTorch eager | "
          "NumPy ÷ PyTorch | page faults a call: NumPy, PyTorch |")
    print("|---|---:|---:|---:|---:|")
    for (name, _, _), (a, b), (fa, fb) in zip(ops, best, faults, strict=True):
        print(f"| {name} | {a * 1e6:.0f} µs | {b * 1e6:.0f} µs | {a / b:.2f} | "
              f"{fa / args.rounds:.0f}, {fb / args.rounds:.0f} |")
    sums = [sum(b[j] for b in best[:-1]) for j in range(2)]
    print(f"| sum of the operations (not the out= row) | {sums[0] * 1e6:.0f} µs | "
          f"{sums[1] * 1e6:.0f} µs | {sums[0] / sums[1]:.2f} | |")

    def loss(W1: torch.Tensor, b1: torch.Tensor, W2: torch.Tensor, b2: torch.Tensor,
             x: torch.Tensor) -> torch.Tensor:
        return torch.sum(torch.tanh(W2 @ torch.tanh(W1 @ x + b1) + b2))

    per = vmap(grad(loss, argnums=(0, 1, 2, 3)), in_dims=(None, None, None, None, 0))
    whole = [("hand-written NumPy", lambda: vp.per_example_hand(W1, b1, W2, b2, x)),
             ("tapeless tl.vmap(tl.grad)", lambda: v(W1, b1, W2, b2, x)),
             ("torch.func.vmap(grad)", lambda: per(t["W1"], t["b1"], t["W2"], t["b2"],
                                                   t["x"]))]
    print()
    print("| whole call, in this order, 50 calls each | page faults a call | least time |")
    print("|---|---:|---:|")
    for name, f in whole:
        f()
        count = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        least = float("inf")
        for _ in range(50):
            start = time.perf_counter()
            f()
            least = min(least, time.perf_counter() - start)
        count = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - count
        print(f"| {name} | {count / 50:.0f} | {least * 1e3:.2f} ms |")


if __name__ == "__main__":
    main()

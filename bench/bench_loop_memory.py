"""Memory of a gradient through a long loop, over the trip count: RK4 over vectors
(y' = A y, 64 dimensions), `n` steps, the loss |y_n|^2. Three ways:

- tapeless saving every iteration's values (`tl.config.loop_checkpoint = "never"`);
- tapeless with checkpointed loops (`"auto"`, with `tl.config.loop_memory` set to a
  budget that n = 250 steps exceed): the memory should grow like log(n);
- the hand-written discrete adjoint, saving each step's 4 stage inputs.

Peak memory is tracemalloc's (the bytes Python and NumPy allocate during one call, the
arguments excluded); time is the median of a few calls without tracemalloc. Every
gradient is checked against the hand-written one first. Prints a Markdown table.

    python bench/bench_loop_memory.py [--quick]
"""

from __future__ import annotations

import sys
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from timing import median_time, single_threaded  # noqa: E402

single_threaded()

import numpy as np  # noqa: E402

import tapeless as tl  # noqa: E402

H = 0.001
BUDGET = 200_000  # bytes: about 50 steps of 64-dimension stage inputs


def rk4_loss(A, y0, n):
    y = y0
    for _ in range(n):
        k1 = A @ y
        k2 = A @ (y + 0.5 * H * k1)
        k3 = A @ (y + 0.5 * H * k2)
        k4 = A @ (y + H * k3)
        y = y + (H / 6.0) * (k1 + 2.0 * k2 + 2.0 * k3 + k4)
    return np.sum(y * y)


def rk4_grad_by_hand(A, y0, n):
    """The gradient in A: the discrete adjoint, saving each step's stage inputs."""
    y = y0
    tape = []
    for _ in range(n):
        k1 = A @ y
        u2 = y + 0.5 * H * k1
        k2 = A @ u2
        u3 = y + 0.5 * H * k2
        k3 = A @ u3
        u4 = y + H * k3
        k4 = A @ u4
        tape.append((y, u2, u3, u4))
        y = y + (H / 6.0) * (k1 + 2.0 * k2 + 2.0 * k3 + k4)
    lam = 2.0 * y
    dA = np.zeros_like(A)
    for y, u2, u3, u4 in reversed(tape):
        dk4 = (H / 6.0) * lam
        du4 = A.T @ dk4
        dA += np.outer(dk4, u4)
        dk3 = (H / 3.0) * lam + H * du4
        du3 = A.T @ dk3
        dA += np.outer(dk3, u3)
        dk2 = (H / 3.0) * lam + 0.5 * H * du3
        du2 = A.T @ dk2
        dA += np.outer(dk2, u2)
        dk1 = (H / 6.0) * lam + 0.5 * H * du2
        dA += np.outer(dk1, y)
        lam = lam + du4 + du3 + du2 + A.T @ dk1
    return dA


def peak(fn, *args) -> int:
    fn(*args)
    tracemalloc.start()
    try:
        fn(*args)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def main() -> None:
    quick = "--quick" in sys.argv
    rng = np.random.default_rng(0)
    A, y0 = rng.normal(size=(64, 64)) / 8, rng.normal(size=64)
    sizes = (250, 1000) if quick else (250, 1000, 4000, 16000)
    # (The settings are read when a function compiles: at its first call.)
    tl.config.loop_checkpoint = "never"
    saving = tl.grad(rk4_loss)
    saving(A, y0, 1)
    tl.config.loop_checkpoint, tl.config.loop_memory = "auto", BUDGET
    checkpointed = tl.grad(rk4_loss)
    checkpointed(A, y0, 1)
    assert "checkpoint_for" not in saving.source_for(A, y0, 1)
    print(f"RK4, 64 dimensions, budget {BUDGET // 1000} kB; peak memory (tracemalloc) and "
          "time of one gradient")
    print()
    print("| steps | saving all: MB | ms | checkpointed: MB | ms | hand-written: MB | ms |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for n in sizes:
        expected = rk4_grad_by_hand(A, y0, n)
        for g in (saving, checkpointed):
            got = g(A, y0, n)
            assert np.allclose(got, expected, rtol=1e-9, atol=1e-12), n
        row = [str(n)]
        for fn in (saving, checkpointed, rk4_grad_by_hand):
            mem = peak(fn, A, y0, n)
            t = median_time(lambda fn=fn: fn(A, y0, n), repeat=3, number=1)
            row += [f"{mem / 1e6:.2f}", f"{t * 1e3:.0f}"]
        print("| " + " | ".join(row) + " |")
    assert "checkpoint_for" in checkpointed.source_for(A, y0, sizes[0])


if __name__ == "__main__":
    main()

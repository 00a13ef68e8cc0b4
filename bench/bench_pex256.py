"""Per-example MLP gradients (issue 14's target), base against branch in one run:
`python bench/bench_pex256.py BASE_SRC` where BASE_SRC is the `src` folder of the base
checkout. The base's generated code (its `.source_for`, printed by a subprocess running
the base) is executed here as plain Python, next to this checkout's generated code, this
checkout's `tl.vmap(tl.grad(...))` call, the hand-written NumPy and `torch.func`, all
timed interleaved in one process (least of the rounds; one thread each)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from timing import best_times, single_threaded  # noqa: E402

single_threaded()

import numpy as np  # noqa: E402
import vmap_programs as vp  # noqa: E402
from bench_vmap import close, torch_per_example  # noqa: E402

import tapeless as tl  # noqa: E402

_SOURCE = """
import sys, numpy as np
sys.path.insert(0, {bench!r})
import tapeless as tl, vmap_programs as vp
rng = np.random.default_rng(0)
W1, W2, b1, b2 = np.ones((64, 64)), np.ones((64, 64)), np.ones(64), np.ones(64)
v = tl.vmap(tl.grad(vp.mlp_loss, argnums=(0, 1, 2, 3)), in_axes=(None,) * 4 + (0,))
print(v.source_for(W1, b1, W2, b2, np.ones(({batch}, 64))))
"""


def generated(src: str, batch: int) -> tuple[str, object]:
    code = subprocess.run(
        [sys.executable, "-c", _SOURCE.format(bench=str(Path(__file__).parent),
                                              batch=batch)],
        env={"PYTHONPATH": src, "PATH": "/usr/bin:/bin", "OPENBLAS_NUM_THREADS": "1",
             "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"},
        capture_output=True, text=True, check=True, cwd="/tmp").stdout
    space: dict = {"np": np}
    exec(code, space)  # noqa: S102
    return code, space["vmap_grad_mlp_loss"]


def main() -> None:
    base_src = sys.argv[1]
    here = str(Path(__file__).parent.parent / "src")
    for batch in (32, 256):
        W1, b1, W2, b2, X = vp.mlp_problem(batch)
        hand = vp.per_example_hand(W1, b1, W2, b2, X)
        base_code, base = generated(base_src, batch)
        branch_code, branch = generated(here, batch)
        v = tl.vmap(tl.grad(vp.mlp_loss, argnums=(0, 1, 2, 3)), in_axes=(None,) * 4 + (0,))
        for f in (base, branch, v):
            assert close(f(W1, b1, W2, b2, X), hand)
        torch_fn = torch_per_example(W1, b1, W2, b2, X, hand)
        fns = [lambda: vp.per_example_hand(W1, b1, W2, b2, X),
               lambda: base(W1, b1, W2, b2, X), lambda: branch(W1, b1, W2, b2, X),
               lambda: v(W1, b1, W2, b2, X)]
        if torch_fn is not None:
            fns.append(torch_fn)
        ts = best_times(fns, [1] * len(fns), 200 if batch == 256 else 600)
        names = ["hand-written NumPy", "base generated code", "branch generated code",
                 "branch tl.vmap(tl.grad) call", "torch.func.vmap(grad)"]
        print(f"batch {batch}:")
        for name, t in zip(names, ts, strict=False):
            extra = f"  ÷ torch.func {t / ts[4]:.2f}" if torch_fn is not None else ""
            print(f"  {name:30s} {t * 1e3:7.3f} ms  ÷ hand {t / ts[0]:.2f}{extra}")
        if batch == 256:
            print("base:\n" + base_code + "branch:\n" + branch_code)


if __name__ == "__main__":
    main()

"""Forward mode and second order: the targets of issue 13, measured side by side in one run.

    python bench/bench_forward.py            # full run
    python bench/bench_forward.py --quick    # a smoke test, not a measurement

Reports, for each workload in two spellings a user would write:
- `jvp` ÷ objective (the MLP, the scalar loop): forward mode saves nothing for a
  backward pass, so it should cost less than reverse mode (target <= 2.5);
- Hessian-vector product (`jvp` of `grad`) ÷ gradient (the MLP, the GMM) (target <= 3);
- the full Hessian of a 100-parameter function (`tl.hessian`) against HIPS autograd's
  `hessian` (PyTorch and JAX when installed);
- the first call (compile + run) of `jvp`, of the HVP and of `hessian` (target < 200 ms).

Times are medians of repeated calls (`time.perf_counter`), single-threaded BLAS."""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from timing import median_time, single_threaded  # noqa: E402

single_threaded()

import forward_programs as fp  # noqa: E402
import numpy as np  # noqa: E402
import workloads as wl  # noqa: E402

import tapeless as tl  # noqa: E402


def first_call(make: Callable[[], Callable[[], Any]]) -> float:
    start = time.perf_counter()
    make()()
    return time.perf_counter() - start


def row(name: str, a: float, b: float, target: str) -> str:
    return f"| {name} | {a * 1e6:,.1f} µs | {b * 1e6:,.1f} µs | {a / b:.2f} | {target} |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    opts = parser.parse_args()
    repeat, number = (3, 5) if opts.quick else (15, 40)

    print("# Forward mode and second order\n")
    print(f"Python {sys.version.split()[0]}, NumPy {np.__version__}, "
          f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores\n")
    print("| workload | transform | objective (or gradient) | ratio | target |")
    print("|---|---:|---:|---:|---|")

    # --- jvp ÷ objective ---
    mlp_args = wl.mlp_data(64, 16)
    tangents = tuple(np.random.default_rng(1).standard_normal(np.shape(a)) for a in mlp_args)
    tangents = tangents[:4] + (np.zeros_like(mlp_args[4]),)
    for name, fn in [("MLP 64 (workloads.mlp)", wl.mlp), ("MLP 64 (layers loop)", fp.mlp_layers)]:
        compiled = tl.jit(fn)
        t_obj = median_time(lambda: compiled(*mlp_args), repeat, number)  # noqa: B023
        t_jvp = median_time(lambda: tl.jvp(fn, mlp_args, tangents), repeat, number)  # noqa: B023
        print(row(f"{name}: jvp ÷ objective", t_jvp, t_obj, "≤ 2.5"))
    for name, fn in [("scalar loop (for)", wl.scalar_loop), ("scalar loop (while)",
                                                              fp.scalar_loop_while)]:
        compiled = tl.jit(fn)
        t_obj = median_time(lambda: compiled(0.5), repeat, max(number // 4, 1))  # noqa: B023
        t_jvp = median_time(lambda: tl.jvp(fn, (0.5,), (1.0,)),  # noqa: B023
                            repeat, max(number // 4, 1))
        print(row(f"{name}: jvp ÷ objective", t_jvp, t_obj, "≤ 2.5"))

    # --- HVP ÷ gradient ---
    for name, fn in [("MLP 64 (workloads.mlp)", wl.mlp), ("MLP 64 (layers loop)", fp.mlp_layers)]:
        grad = tl.grad(fn, argnums=(0, 1, 2, 3))
        t_grad = median_time(lambda: grad(*mlp_args), repeat, number)  # noqa: B023
        t_hvp = median_time(lambda: tl.jvp(grad, mlp_args, tangents),  # noqa: B023
                            repeat, number)
        print(row(f"{name}: HVP ÷ gradient", t_hvp, t_grad, "≤ 3"))
    gmm_args = wl.gmm_data(1000, 10, 25)
    gmm_t = tuple(np.random.default_rng(2).standard_normal(np.shape(a)) if i < 4 else
                  (np.zeros(np.shape(a)) if isinstance(a, np.ndarray) else 0.0 * a)
                  for i, a in enumerate(gmm_args))
    gmm_t = gmm_t[:5] + (np.zeros(gmm_args[5].shape, dtype=np.int64), 0.0, 0)
    for name, fn in [("GMM (10, 25) (workloads)", wl.gmm_objective),
                     ("GMM (10, 25) (einsum)", fp.gmm_einsum)]:
        grad = tl.grad(fn, argnums=(0, 1, 2, 3))
        try:
            t_grad = median_time(lambda: grad(*gmm_args), repeat,  # noqa: B023
                                 max(number // 8, 1))
            t_hvp = median_time(lambda: tl.jvp(grad, gmm_args, gmm_t),  # noqa: B023
                                repeat, max(number // 8, 1))
        except tl.TapelessError as exc:
            print(f"| {name}: HVP ÷ gradient | failed: {str(exc).splitlines()[0]} | | | ≤ 3 |")
            continue
        print(row(f"{name}: HVP ÷ gradient", t_hvp, t_grad, "≤ 3"))

    # --- Hessian of a 100-parameter function ---
    x100 = np.linspace(-1.0, 1.0, 100)
    print("\n| Hessian, 100 parameters | time | ÷ tapeless |")
    print("|---|---:|---:|")
    results: dict[str, float] = {}
    for name, fn in [("tapeless (rosenbrock, vectorized)", fp.rosenbrock),
                     ("tapeless (rosenbrock, loop)", fp.rosenbrock_loop)]:
        h = tl.hessian(fn)
        results[name] = median_time(lambda: h(x100), max(repeat // 3, 2), 1)  # noqa: B023
    try:
        import autograd
        import autograd.numpy as anp

        def rosen_ag(x: Any) -> Any:
            return anp.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)

        h_ag = autograd.hessian(rosen_ag)
        results["HIPS autograd"] = median_time(lambda: h_ag(x100), max(repeat // 3, 2), 1)
    except ImportError:
        print("| HIPS autograd | not installed | |")
    base = results["tapeless (rosenbrock, vectorized)"]
    for name, t in results.items():
        print(f"| {name} | {t * 1e3:,.2f} ms | {t / base:.2f} |")
    print("| PyTorch `torch.func.hessian`, JAX `jit(hessian)` | not installed here | |")

    # --- first calls ---
    print("\n| first call (compile + run) | time | target |")
    print("|---|---:|---|")

    def fresh_jvp() -> Callable[[], Any]:
        fn = fp.fresh_mlp()
        return lambda: tl.jvp(fn, mlp_args, tangents)

    def fresh_hvp() -> Callable[[], Any]:
        g = tl.grad(fp.fresh_mlp(), argnums=(0, 1, 2, 3))
        return lambda: tl.jvp(g, mlp_args, tangents)

    def fresh_hessian() -> Callable[[], Any]:
        h = tl.hessian(fp.fresh_rosenbrock())
        return lambda: h(x100[:10])

    for name, make in [("jvp of the MLP", fresh_jvp), ("HVP of the MLP", fresh_hvp),
                       ("hessian of rosenbrock (10)", fresh_hessian)]:
        times = [first_call(make) for _ in range(3 if opts.quick else 5)]
        print(f"| {name} | {statistics.median(times) * 1e3:,.0f} ms | < 200 ms |")


if __name__ == "__main__":
    main()

"""Forward mode and second order: the targets of issue 13, measured side by side in one run.

    python bench/bench_forward.py            # full run
    python bench/bench_forward.py --quick    # a smoke test, not a measurement

Reports, for each workload in two spellings a user would write:
- `jvp` ÷ objective (the MLP, the scalar loop): forward mode saves nothing for a
  backward pass, so it should cost less than reverse mode (target <= 2.5);
- Hessian-vector product (`jvp` of `grad`) ÷ gradient (the MLP, the GMM) (target <= 3);
- the full Hessian of a 100-parameter function (`tl.hessian`) against HIPS autograd's
  `hessian`, PyTorch's `torch.func.hessian` and JAX's `jit(hessian)` (where installed);
- JAX's `jit` of the same ratios, side by side (where installed): JAX closes over the data
  (a JAX user's `jvp` takes tangents of the parameters only), and so do the tapeless rows
  marked "parameters only";
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


def jax_module() -> Any:
    """JAX in float64, or None where it is not installed."""
    try:
        import jax
    except ImportError:
        return None
    jax.config.update("jax_enable_x64", True)
    return jax


def jax_rows(jax: Any, mlp_args: tuple, gmm_args: tuple, repeat: int, number: int) -> None:
    """JAX `jit`: jvp ÷ objective and HVP ÷ gradient on the MLP and the GMM, tangents for
    the parameters only (the data closed over), as a JAX user writes them."""
    import jax.numpy as jnp
    import peers

    ops = peers.Ops(exp=jnp.exp, tanh=jnp.tanh, sin=jnp.sin, sum=jnp.sum,
                    concatenate=jnp.concatenate, zeros=jnp.zeros, swapaxes=jnp.swapaxes,
                    logsumexp=lambda x, axis: jax.scipy.special.logsumexp(x, axis=axis),
                    sigmoid=jax.nn.sigmoid)
    rng = np.random.default_rng(1)
    for name, f_all, args in [("MLP 64", peers._mlp(ops), mlp_args),
                              ("GMM (10, 25)", peers._gmm(ops, gmm_args), gmm_args[:6])]:
        params = tuple(jnp.asarray(a) for a in args[:4])
        data = tuple(jnp.asarray(a) for a in args[4:])
        tans = tuple(jnp.asarray(rng.standard_normal(np.shape(a))) for a in args[:4])

        def f(*p: Any, f_all: Any = f_all, data: Any = data) -> Any:
            return f_all(*p, *data)

        obj = jax.jit(f)
        jvp = jax.jit(lambda p, t, f=f: jax.jvp(f, p, t))
        grad = jax.jit(jax.grad(f, argnums=(0, 1, 2, 3)))
        g = jax.grad(f, argnums=(0, 1, 2, 3))
        hvp = jax.jit(lambda p, t, g=g: jax.jvp(g, p, t))
        n = number if name.startswith("MLP") else max(number // 8, 1)
        t_obj = median_time(lambda: obj(*params).block_until_ready(),  # noqa: B023
                            repeat, n)
        t_jvp = median_time(lambda: jax.block_until_ready(jvp(params, tans)),  # noqa: B023
                            repeat, n)
        t_grad = median_time(lambda: jax.block_until_ready(grad(*params)),  # noqa: B023
                             repeat, n)
        t_hvp = median_time(lambda: jax.block_until_ready(hvp(params, tans)),  # noqa: B023
                            repeat, n)
        print(row(f"{name}, JAX jit, parameters only: jvp ÷ objective", t_jvp, t_obj, "—"))
        print(row(f"{name}, JAX jit, parameters only: HVP ÷ gradient", t_hvp, t_grad, "—"))


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
    X = mlp_args[4]

    def mlp_params(W1: Any, b1: Any, W2: Any, b2: Any) -> Any:
        return wl.mlp(W1, b1, W2, b2, X)

    compiled = tl.jit(mlp_params)
    t_obj = median_time(lambda: compiled(*mlp_args[:4]), repeat, number)
    t_jvp = median_time(lambda: tl.jvp(mlp_params, mlp_args[:4], tangents[:4]), repeat, number)
    print(row("MLP 64 (workloads.mlp), parameters only: jvp ÷ objective", t_jvp, t_obj,
              "≤ 2.5"))
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
    grad_params = tl.grad(mlp_params, argnums=(0, 1, 2, 3))
    t_grad = median_time(lambda: grad_params(*mlp_args[:4]), repeat, number)
    t_hvp = median_time(lambda: tl.jvp(grad_params, mlp_args[:4], tangents[:4]), repeat, number)
    print(row("MLP 64 (workloads.mlp), parameters only: HVP ÷ gradient", t_hvp, t_grad, "≤ 3"))
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
    gmm_data = gmm_args[4:]

    def gmm_params(alpha: Any, mu: Any, q: Any, l: Any) -> Any:  # noqa: E741
        return wl.gmm_objective(alpha, mu, q, l, *gmm_data)

    grad_params = tl.grad(gmm_params, argnums=(0, 1, 2, 3))
    t_grad = median_time(lambda: grad_params(*gmm_args[:4]), repeat, max(number // 8, 1))
    t_hvp = median_time(lambda: tl.jvp(grad_params, gmm_args[:4], gmm_t[:4]), repeat,
                        max(number // 8, 1))
    print(row("GMM (10, 25) (workloads), parameters only: HVP ÷ gradient", t_hvp, t_grad,
              "≤ 3"))
    jax = jax_module()
    if jax is None:
        print("| JAX | not installed | | | |")
    else:
        jax_rows(jax, mlp_args, gmm_args, repeat, number)

    # --- Hessian of a 100-parameter function ---
    x100 = np.linspace(-1.0, 1.0, 100)
    print("\n| Hessian, 100 parameters | time | ÷ tapeless |")
    print("|---|---:|---:|")
    results: dict[str, float] = {}
    for name, fn in [("tapeless (rosenbrock, vectorized)", fp.rosenbrock),
                     ("tapeless (rosenbrock, loop)", fp.rosenbrock_loop)]:
        h = tl.hessian(fn)
        h(x100)  # (the first call: column by column; the second batches that program)
        results[name] = median_time(lambda: h(x100), repeat, max(number // 4, 1))  # noqa: B023
        assert h.batched.last == "batched", h.batched.refused
    for name, fn in [("tapeless (rosenbrock, vectorized), one jvp per column",
                      fp.rosenbrock)]:
        h = tl.hessian(fn)
        h.batched.enabled = False
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
    try:
        import torch
        import torch.func

        torch.set_num_threads(1)

        def rosen_torch(x: Any) -> Any:
            return torch.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)

        h_torch = torch.func.hessian(rosen_torch)
        x_torch = torch.tensor(x100)
        results["PyTorch torch.func.hessian (eager)"] = median_time(
            lambda: h_torch(x_torch), repeat, max(number // 4, 1))
    except ImportError:
        print("| PyTorch | not installed | |")
    if jax is not None:
        import jax.numpy as jnp

        def rosen_jax(x: Any) -> Any:
            return jnp.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)

        h_jax = jax.jit(jax.hessian(rosen_jax))
        x_jax = jnp.asarray(x100)
        results["JAX jit(hessian)"] = median_time(
            lambda: h_jax(x_jax).block_until_ready(), repeat, number)
    base = results["tapeless (rosenbrock, vectorized)"]
    for name, t in results.items():
        print(f"| {name} | {t * 1e3:,.3f} ms | {t / base:.3f} |")

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
    for n in (10, 100):
        firsts, seconds = [], []
        for _ in range(3):
            h = tl.hessian(fp.fresh_rosenbrock())
            firsts.append(first_call(lambda h=h: (lambda: h(x100[:n]))))  # noqa: B023
            seconds.append(first_call(lambda h=h: (lambda: h(x100[:n]))))  # noqa: B023
            assert h.batched.last == "batched"
        print(f"| hessian of rosenbrock ({n}): first call (column by column) | "
              f"{statistics.median(firsts) * 1e3:,.0f} ms | < 200 ms |")
        print(f"| hessian of rosenbrock ({n}): second call (batches the program) | "
              f"{statistics.median(seconds) * 1e3:,.0f} ms | — |")


if __name__ == "__main__":
    main()

"""`tl.vmap`: the targets of issue 14, measured side by side in one run.

    python bench/bench_vmap.py            # full run
    python bench/bench_vmap.py --quick    # a smoke test, not a measurement

Reports:
- per-example gradients of the MLP (N = 64; batches of 32 and 256), in two spellings,
  against a hand-written batched NumPy version and a Python loop of `tl.grad` (target:
  <= 1.5x hand-written);
- a MAML meta-gradient over 8 tasks x 5 inner steps (sinusoid regression, a 40-40 tanh
  MLP): `tl.grad` of a meta-loss that maps the task loss with `tl.vmap`, against the
  same meta-loss written as a Python loop over tasks, and JAX `jit(grad(vmap))` where JAX
  is installed (target: <= 3x JAX);
- Newton iterations to a per-element tolerance (a data-dependent `while`), batch 1,000,
  in two spellings: `tl.vmap` against (the largest trip count x one hand-written batched
  step) (target <= 1.5) and against a Python loop calling the compiled unbatched function
  (target >= 20x faster).

Times are medians of repeated calls (`time.perf_counter`), single-threaded BLAS; every
result is checked against its reference before it is timed."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from timing import median_time, single_threaded  # noqa: E402

single_threaded()

import numpy as np  # noqa: E402
import vmap_programs as vp  # noqa: E402

import tapeless as tl  # noqa: E402


def first_call(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def close(a: Any, b: Any) -> bool:
    return all(np.allclose(x, y, rtol=1e-9, atol=1e-12)
               for x, y in zip(tl.tree_leaves(a), tl.tree_leaves(b), strict=True))


def per_example(batch: int, repeat: int, number: int) -> list[str]:
    rng = np.random.default_rng(0)
    n = 64
    W1, W2 = rng.normal(size=(n, n)) / 8, rng.normal(size=(n, n)) / 8
    b1, b2 = rng.normal(size=n), rng.normal(size=n)
    X = rng.normal(size=(batch, n))
    hand = vp.per_example_hand(W1, b1, W2, b2, X)
    g_args = tl.grad(vp.mlp_loss, argnums=(0, 1, 2, 3))
    v_args = tl.vmap(g_args, in_axes=(None, None, None, None, 0))
    v_tuple = tl.vmap(tl.grad(vp.mlp_loss_params), in_axes=(None, 0))
    params = (W1, b1, W2, b2)
    first_a = first_call(lambda: v_args(W1, b1, W2, b2, X))
    first_t = first_call(lambda: v_tuple(params, X))
    assert close(v_args(W1, b1, W2, b2, X), hand)
    assert close(v_tuple(params, X), hand)
    t_hand = median_time(lambda: vp.per_example_hand(W1, b1, W2, b2, X), repeat, number)
    t_args = median_time(lambda: v_args(W1, b1, W2, b2, X), repeat, number)
    t_tuple = median_time(lambda: v_tuple(params, X), repeat, number)
    t_loop = median_time(lambda: [g_args(W1, b1, W2, b2, x) for x in X], repeat,
                         max(1, number // 8))
    return [
        f"| per-example MLP grads, batch {batch}, separate arrays | {t_args * 1e3:.3f} ms "
        f"| {t_hand * 1e3:.3f} ms | {t_args / t_hand:.2f} | <= 1.5 | first call "
        f"{first_a * 1e3:.0f} ms |",
        f"| per-example MLP grads, batch {batch}, a tuple of parameters | "
        f"{t_tuple * 1e3:.3f} ms | {t_hand * 1e3:.3f} ms | {t_tuple / t_hand:.2f} | <= 1.5 "
        f"| first call {first_t * 1e3:.0f} ms |",
        f"| (a Python loop of tl.grad, batch {batch}) | {t_loop * 1e3:.3f} ms | "
        f"{t_hand * 1e3:.3f} ms | {t_loop / t_hand:.2f} | | |",
    ]


def maml(repeat: int, number: int) -> list[str]:
    params, tasks = vp.maml_data()
    g_vmap = tl.grad(vp.meta_loss_vmap)
    g_loop = tl.grad(vp.meta_loss_loop)
    first_v = first_call(lambda: g_vmap(params, tasks))
    first_l = first_call(lambda: g_loop(params, tasks))
    assert close(g_vmap(params, tasks), g_loop(params, tasks))
    t_v = median_time(lambda: g_vmap(params, tasks), repeat, number)
    t_l = median_time(lambda: g_loop(params, tasks), repeat, number)
    rows = [f"| MAML meta-gradient, 8 tasks x 5 steps: tl.grad of a tl.vmap meta-loss | "
            f"{t_v * 1e3:.2f} ms | first call {first_v:.1f} s |",
            f"| MAML meta-gradient: tl.grad of a Python loop over tasks | {t_l * 1e3:.2f} ms "
            f"| first call {first_l:.1f} s |"]
    try:
        import jax
        import jax.numpy as jnp
    except ImportError:
        return [*rows, "| (JAX is not installed: no JAX row) | | |"]
    jax.config.update("jax_enable_x64", True)

    def jmlp(p, x):
        W1, b1, W2, b2, W3, b3 = p
        h = jnp.tanh(x @ W1 + b1)
        h = jnp.tanh(h @ W2 + b2)
        return h @ W3 + b3

    def jmse(p, x, y):
        return jnp.mean((jmlp(p, x) - y) ** 2)

    def jtask(p, task):
        xs, ys, xq, yq = task
        for _ in range(5):
            g = jax.grad(jmse)(p, xs, ys)
            p = tuple(w - 0.01 * gw for w, gw in zip(p, g, strict=True))
        return jmse(p, xq, yq)

    def jmeta(p, ts):
        return jnp.mean(jax.vmap(jtask, in_axes=(None, 0))(p, ts))

    jg = jax.jit(jax.grad(jmeta))
    jp = tuple(jnp.asarray(w) for w in params)
    jt = tuple(jnp.asarray(t) for t in tasks)
    start = time.perf_counter()
    jax.block_until_ready(jg(jp, jt))
    first_j = time.perf_counter() - start
    assert close(tuple(np.asarray(w) for w in jg(jp, jt)), g_loop(params, tasks))
    t_j = median_time(lambda: jax.block_until_ready(jg(jp, jt)), repeat, number)
    return [*rows, f"| MAML meta-gradient: JAX jit(grad(vmap)) | {t_j * 1e3:.2f} ms | "
            f"first call {first_j:.1f} s |",
            f"| ratio tl.vmap ÷ JAX (target <= 3) | {t_v / t_j:.1f} | |",
            f"| ratio Python loop ÷ JAX | {t_l / t_j:.1f} | |"]


def newton(batch: int, repeat: int, number: int) -> list[str]:
    rng = np.random.default_rng(0)
    a = np.abs(rng.normal(size=batch)) * 100 + 0.01
    rows = []
    for name, fn in (("sqrt, while with a tolerance", vp.newton_sqrt),
                     ("cube root, while True with a break", vp.newton_cbrt)):
        v = tl.vmap(fn)
        first = first_call(lambda v=v: v(a))
        jitted = tl.jit(fn)
        expected = np.array([jitted(float(x)) for x in a])
        assert np.allclose(v(a), expected, rtol=1e-12)
        t_v = median_time(lambda v=v: v(a), repeat, number)
        t_loop = median_time(lambda j=jitted: [j(float(x)) for x in a], repeat,
                             max(1, number // 4))
        # One batched Newton step, hand-written, and the largest trip count.
        trips = 0
        x = a.copy()
        if fn is vp.newton_sqrt:
            def step(x: np.ndarray = x) -> Any:
                return np.abs(x * x - a) > 1e-12 * a, 0.5 * (x + a / x)
            active = np.abs(x * x - a) > 1e-12 * a
            while active.any():
                x = 0.5 * (x + a / x)
                active = np.abs(x * x - a) > 1e-12 * a
                trips += 1
        else:
            def step(x: np.ndarray = x) -> Any:
                s = (x * x * x - a) / (3.0 * x * x)
                return np.abs(s) <= 1e-12 * np.abs(x - s), x - s
            while True:
                s = (x * x * x - a) / (3.0 * x * x)
                x = x - s
                trips += 1
                if np.all(np.abs(s) <= 1e-12 * np.abs(x)):
                    break
        t_step = median_time(step, repeat, number * 10)
        rows.append(f"| Newton {name}, batch {batch} | {t_v * 1e3:.3f} ms | {trips} x "
                    f"{t_step * 1e6:.1f} µs = {trips * t_step * 1e3:.3f} ms | "
                    f"{t_v / (trips * t_step):.2f} (target <= 1.5) | loop of the compiled "
                    f"function {t_loop * 1e3:.1f} ms: {t_loop / t_v:.0f}x (target >= 20) | "
                    f"first call {first * 1e3:.0f} ms |")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    repeat, number = (3, 2) if args.quick else (7, 10)
    print("| workload | tapeless | reference | ratio | target | |")
    print("|---|---:|---:|---:|---|---|")
    for batch in (32, 256):
        for line in per_example(batch, repeat, number):
            print(line, flush=True)
    print()
    for line in newton(1000, repeat, number):
        print(line, flush=True)
    print()
    for line in maml(repeat, max(1, number // 5)):
        print(line, flush=True)


if __name__ == "__main__":
    main()

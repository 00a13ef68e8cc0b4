"""`tl.vmap`: the targets of issue 14, measured side by side in one run.

    python bench/bench_vmap.py            # full run
    python bench/bench_vmap.py --quick    # a smoke test, not a measurement

Reports:
- per-example gradients of the MLP (N = 64; batches of 32 and 256), in two spellings,
  against a hand-written batched NumPy version, a Python loop of `tl.grad` and, where
  PyTorch is installed, `torch.func.vmap(torch.func.grad(...))` (targets: <= 1.5x
  hand-written, ahead of torch.func), with each one's page faults a call; and the
  per-example-gradient example of JAX's README (a loop over a list of `(W, b)` layers),
  not written for this benchmark, and `tl.grad` of that loss on a whole batch against its
  hand-written gradient (`--layers`: these rows only);
- a MAML meta-gradient over 8 tasks x 5 inner steps (sinusoid regression, a 40-40 tanh
  MLP): `tl.grad` of a meta-loss that maps the task loss with `tl.vmap`, against the
  same meta-loss written as a Python loop over tasks, JAX `jit(grad(vmap))` where JAX
  is installed and PyTorch eager (a loop over tasks, `create_graph=True`) where PyTorch
  is (targets: <= 3x JAX, ahead of PyTorch eager);
- Newton iterations to a per-element tolerance (a data-dependent `while`), batch 1,000,
  in two spellings: `tl.vmap` against (the largest trip count x one hand-written batched
  step) (target <= 1.5) and against a Python loop calling the compiled unbatched function
  (target >= 20x faster; the row says how close to the ideal that asks the loop to be).

Times are the least of repeated runs of calls (`time.perf_counter`; this machine is
shared, and the least is the time a run takes uninterrupted, where the median moves with
the other jobs), single-threaded BLAS; every result is checked against its reference
before it is timed."""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from timing import best_time, best_times, single_threaded  # noqa: E402

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


def page_faults(fns: list[Callable[[], Any]], calls: int = 20) -> list[int]:
    """Each of `fns`' minor page faults a call (the median of `calls` calls, one after
    another). Fresh memory faults when it is first written: a result of 8 MB or more
    costs about 1,000 faults (several ms) when the process's `malloc` hands it memory it
    gave back to the system on the last call (glibc maps a request above its dynamic
    mmap threshold afresh and unmaps it when freed, and trims the top of its heap when
    the freed chunks there pass its trim threshold), none when it reuses a free chunk;
    which one a call gets depends on the allocations the whole process made before, so
    the rows report it: a time is comparable to another only in the same regime."""
    out = []
    for fn in fns:
        counts = []
        for _ in range(calls):
            before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
            fn()
            counts.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
        out.append(round(statistics.median(counts)))
    return out


def per_example(batch: int, repeat: int, number: int) -> list[str]:
    W1, b1, W2, b2, X = vp.mlp_problem(batch)
    hand = vp.per_example_hand(W1, b1, W2, b2, X)
    g_args = tl.grad(vp.mlp_loss, argnums=(0, 1, 2, 3))
    v_args = tl.vmap(g_args, in_axes=(None, None, None, None, 0))
    v_tuple = tl.vmap(tl.grad(vp.mlp_loss_params), in_axes=(None, 0))
    params = (W1, b1, W2, b2)
    first_a = first_call(lambda: v_args(W1, b1, W2, b2, X))
    first_t = first_call(lambda: v_tuple(params, X))
    assert close(v_args(W1, b1, W2, b2, X), hand)
    assert close(v_tuple(params, X), hand)
    torch_rows = []
    torch_fn = torch_per_example(W1, b1, W2, b2, X, hand)
    # (interleaved, one call a run: runs of about the same length see the same load)
    fns = [lambda: vp.per_example_hand(W1, b1, W2, b2, X),
           lambda: v_args(W1, b1, W2, b2, X), lambda: v_tuple(params, X),
           lambda: [g_args(W1, b1, W2, b2, x) for x in X]]
    times = best_times(fns + ([torch_fn] if torch_fn is not None else []),
                       [1] * (len(fns) + (torch_fn is not None)), repeat * number)
    t_hand, t_args, t_tuple, t_loop = times[:4]
    t_torch = times[4] if torch_fn is not None else None
    faults = page_faults(fns[:3] + ([torch_fn] if torch_fn is not None else []))
    if t_torch is None:
        torch_rows.append("| (PyTorch is not installed: no torch.func row) | | | | | |")
    else:
        torch_rows.append(
            f"| (PyTorch torch.func.vmap(torch.func.grad), batch {batch}) | "
            f"{t_torch * 1e3:.3f} ms | {t_hand * 1e3:.3f} ms | {t_torch / t_hand:.2f} | | "
            f"tapeless ÷ torch.func: separate arrays {t_args / t_torch:.2f}, tuple "
            f"{t_tuple / t_torch:.2f} (target < 1) |")
    torch_rows.append(
        f"| (page faults a call, batch {batch}: hand-written, separate arrays, tuple"
        f"{', torch.func' if t_torch is not None else ''}) | "
        f"{', '.join(str(f) for f in faults)} | | | | |")
    return [
        f"| per-example MLP grads, batch {batch}, separate arrays | {t_args * 1e3:.3f} ms "
        f"| {t_hand * 1e3:.3f} ms | {t_args / t_hand:.2f} | <= 1.5 | first call "
        f"{first_a * 1e3:.0f} ms |",
        f"| per-example MLP grads, batch {batch}, a tuple of parameters | "
        f"{t_tuple * 1e3:.3f} ms | {t_hand * 1e3:.3f} ms | {t_tuple / t_hand:.2f} | <= 1.5 "
        f"| first call {first_t * 1e3:.0f} ms |",
        f"| (a Python loop of tl.grad, batch {batch}) | {t_loop * 1e3:.3f} ms | "
        f"{t_hand * 1e3:.3f} ms | {t_loop / t_hand:.2f} | | |",
        *torch_rows,
    ]


def layer_params(widths: tuple[int, ...]) -> list:
    rng = np.random.default_rng(0)
    return [(rng.normal(size=(m, n)) / 8, rng.normal(size=n))
            for m, n in zip(widths, widths[1:], strict=False)]


def per_example_layers(batch: int, repeat: int, number: int,
                       widths: tuple[int, ...] = (64, 64, 64)) -> list[str]:
    """The per-example-gradient example of JAX's README (`vp.layers_loss`: a list of
    `(W, b)` layers, a loop over them), two layers (64 wide, or of these widths):
    `tl.vmap(tl.grad(loss), in_axes=(None, 0, 0))` against its hand-written batched
    NumPy and torch.func. Layers of one shape make a list whose items share one
    signature (a kind without a length: the loop stays a loop); of different shapes, as
    in JAX's README (784-512-512-10), one with item-wise kinds, whose loop is unrolled."""
    params = layer_params(widths)
    rng = np.random.default_rng(1)
    X, Y = rng.normal(size=(batch, widths[0])), rng.normal(size=(batch, widths[-1]))
    hand = vp.layers_hand(params, X, Y)
    v = tl.vmap(tl.grad(vp.layers_loss), in_axes=(None, 0, 0))
    cpu = time.process_time()
    first = first_call(lambda: v(params, X, Y))
    cpu = time.process_time() - cpu
    assert close(v(params, X, Y), hand)
    fns = [lambda: vp.layers_hand(params, X, Y), lambda: v(params, X, Y)]
    torch_fn = torch_layers(params, X, Y, hand)
    times = best_times(fns + ([torch_fn] if torch_fn is not None else []),
                       [1] * (len(fns) + (torch_fn is not None)), repeat * number)
    t_hand, t_v = times[:2]
    vs_torch = "" if torch_fn is None else \
        f"torch.func {times[2] * 1e3:.3f} ms: tapeless ÷ torch.func {t_v / times[2]:.2f}; "
    shape = "" if widths == (64, 64, 64) else f" {'-'.join(map(str, widths))}"
    return [f"| per-example grads, JAX README's loop over a list of (W, b) layers{shape}, "
            f"batch {batch} | {t_v * 1e3:.3f} ms | {t_hand * 1e3:.3f} ms | {t_v / t_hand:.2f} | "
            f"<= 1.5 | {vs_torch}first call {first:.2f} s ({cpu:.2f} s CPU) |"]


def batch_gradient_layers(batch: int, repeat: int, number: int,
                          widths: tuple[int, ...] = (64, 64, 64)) -> list[str]:
    """`tl.grad(vp.layers_loss)` of the whole batch's loss (rows of X through the same
    loop over a list of layers) against its hand-written NumPy gradient (the per-example
    gradients' sum, written as matrix products)."""
    params = layer_params(widths)
    rng = np.random.default_rng(1)
    X, Y = rng.normal(size=(batch, widths[0])), rng.normal(size=(batch, widths[-1]))

    def hand(params: list, X: np.ndarray, Y: np.ndarray) -> list:
        (W1, b1), (W2, b2) = params
        h = np.tanh(X @ W1 + b1)
        d = 2.0 * (h @ W2 + b2 - Y)
        dh = (d @ W2.T) * (1.0 - h * h)
        return [(X.T @ dh, dh.sum(axis=0)), (h.T @ d, d.sum(axis=0))]

    g = tl.grad(vp.layers_loss)
    cpu = time.process_time()
    g(params, X, Y)
    cpu = time.process_time() - cpu
    assert close(g(params, X, Y), hand(params, X, Y))
    t_hand, t_g = best_times([lambda: hand(params, X, Y), lambda: g(params, X, Y)], [1, 1],
                             repeat * number)
    shape = "" if widths == (64, 64, 64) else f" {'-'.join(map(str, widths))}"
    return [f"| tl.grad of JAX README's loss on a batch of {batch} (a list of 2 layers"
            f"{shape}) | "
            f"{t_g * 1e3:.3f} ms | {t_hand * 1e3:.3f} ms | {t_g / t_hand:.2f} | | first call "
            f"{cpu:.2f} s CPU |"]


def torch_layers(params: list, X: np.ndarray, Y: np.ndarray,
                 hand: Any) -> Callable[[], Any] | None:
    """`vp.layers_loss` in PyTorch (float64, one thread): `torch.func.vmap(grad)`,
    checked against the hand-written gradients; the call to time."""
    try:
        import torch
        from torch.func import grad, vmap
    except ImportError:
        return None
    torch.set_num_threads(1)

    def loss(params: Any, inputs: Any, targets: Any) -> Any:
        for W, b in params:
            outputs = inputs @ W + b
            inputs = torch.tanh(outputs)
        return torch.sum((outputs - targets) ** 2)

    per = vmap(grad(loss), in_dims=(None, 0, 0))
    tp = [tuple(torch.tensor(a, dtype=torch.float64) for a in layer) for layer in params]
    tX, tY = (torch.tensor(a, dtype=torch.float64) for a in (X, Y))
    assert close([tuple(g.numpy() for g in layer) for layer in per(tp, tX, tY)], hand)
    return lambda: per(tp, tX, tY)


def torch_per_example(W1: np.ndarray, b1: np.ndarray, W2: np.ndarray, b2: np.ndarray,
                      X: np.ndarray, hand: Any) -> Callable[[], Any] | None:
    """PyTorch's per-example gradients of the same MLP: `torch.func.vmap` of
    `torch.func.grad` (float64, one thread), checked against the hand-written ones; the
    call to time."""
    try:
        import torch
        from torch.func import grad, vmap
    except ImportError:
        return None
    torch.set_num_threads(1)

    def loss(W1: Any, b1: Any, W2: Any, b2: Any, x: Any) -> Any:
        return torch.sum(torch.tanh(W2 @ torch.tanh(W1 @ x + b1) + b2))

    per = vmap(grad(loss, argnums=(0, 1, 2, 3)), in_dims=(None, None, None, None, 0))
    tw = [torch.tensor(a, dtype=torch.float64) for a in (W1, b1, W2, b2, X)]
    assert close(tuple(g.numpy() for g in per(*tw)), hand)
    return lambda: per(*tw)


def torch_maml(params: tuple, tasks: tuple, reference: Any, repeat: int,
               number: int) -> float | None:
    """The MAML meta-gradient in PyTorch eager (float64, one thread): a Python loop over
    tasks, each inner step's gradient taken with `create_graph=True`, the meta-gradient
    by `torch.autograd.grad`; checked against tapeless's."""
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(1)
    xs, ys, xq, yq = (torch.tensor(a, dtype=torch.float64) for a in tasks)
    n_tasks = xs.shape[0]

    def mlp(p: list, x: Any) -> Any:
        W1, b1, W2, b2, W3, b3 = p
        h = torch.tanh(x @ W1 + b1)
        h = torch.tanh(h @ W2 + b2)
        return h @ W3 + b3

    def mse(p: list, x: Any, y: Any) -> Any:
        return torch.mean((mlp(p, x) - y) ** 2)

    def meta_grad() -> tuple:
        p = [torch.tensor(w, dtype=torch.float64, requires_grad=True) for w in params]
        total = torch.zeros((), dtype=torch.float64)
        for i in range(n_tasks):
            q = p
            for _ in range(5):
                g = torch.autograd.grad(mse(q, xs[i], ys[i]), q, create_graph=True)
                q = [w - 0.01 * gw for w, gw in zip(q, g, strict=True)]
            total = total + mse(q, xq[i], yq[i])
        return torch.autograd.grad(total / n_tasks, p)

    assert close(tuple(g.numpy() for g in meta_grad()), reference)
    return best_time(meta_grad, repeat, number)


def maml(repeat: int, number: int) -> list[str]:
    params, tasks = vp.maml_data()
    g_vmap = tl.grad(vp.meta_loss_vmap)
    g_loop = tl.grad(vp.meta_loss_loop)
    first_v = first_call(lambda: g_vmap(params, tasks))
    first_l = first_call(lambda: g_loop(params, tasks))
    assert close(g_vmap(params, tasks), g_loop(params, tasks))
    t_v = best_time(lambda: g_vmap(params, tasks), repeat, number)
    t_l = best_time(lambda: g_loop(params, tasks), repeat, number)
    rows = [f"| MAML meta-gradient, 8 tasks x 5 steps: tl.grad of a tl.vmap meta-loss | "
            f"{t_v * 1e3:.2f} ms | first call {first_v:.1f} s |",
            f"| MAML meta-gradient: tl.grad of a Python loop over tasks | {t_l * 1e3:.2f} ms "
            f"| first call {first_l:.1f} s |"]
    t_t = torch_maml(params, tasks, g_loop(params, tasks), repeat, number)
    if t_t is None:
        rows.append("| (PyTorch is not installed: no PyTorch row) | | |")
    else:
        rows += [f"| MAML meta-gradient: PyTorch eager, a loop over tasks, create_graph | "
                 f"{t_t * 1e3:.2f} ms | |",
                 f"| ratio tl.vmap ÷ PyTorch eager (target < 1) | {t_v / t_t:.2f} | |",
                 f"| ratio Python loop ÷ PyTorch eager | {t_l / t_t:.2f} | |"]
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
    t_j = best_time(lambda: jax.block_until_ready(jg(jp, jt)), repeat, number)
    return [*rows, f"| MAML meta-gradient: JAX jit(grad(vmap)) | {t_j * 1e3:.2f} ms | "
            f"first call {first_j:.1f} s |",
            f"| ratio tl.vmap ÷ JAX (target <= 3) | {t_v / t_j:.1f} | |",
            f"| ratio Python loop ÷ JAX | {t_l / t_j:.1f} | |"]


def masked_loop(fn: Callable[[Any], Any], a: np.ndarray) -> np.ndarray:
    """What a NumPy user writes to batch the Newton loops by hand: every element steps
    until its own tolerance, a finished element's value kept (`np.where`)."""
    x = a
    if fn is vp.newton_sqrt:
        active = np.abs(x * x - a) > 1e-12 * a
        while active.any():
            x = np.where(active, 0.5 * (x + a / x), x)
            active = np.logical_and(active, np.abs(x * x - a) > 1e-12 * a)
        return x
    active = np.ones(a.shape, dtype=bool)
    while active.any():
        s = (x * x * x - a) / (3.0 * x * x)
        x = np.where(active, x - s, x)
        active = np.logical_and(active, np.abs(s) > 1e-12 * np.abs(x))
    return x


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
        assert np.allclose(masked_loop(fn, a), expected, rtol=1e-12)
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
        # (interleaved: the four timings see the same load; each run of the batched
        # loops is one call and each run of the bare step `trips` calls, the same work as
        # the ideal loop, so that runs of about the same length are compared: on a loaded
        # machine a longer run is more often interrupted, and its least time is worse)
        # (the plain Python function too, no tapeless: the compiled one's calls each
        # pay its dispatch, a few µs, which the plain one does not)
        t_v, t_loop, t_step, t_hand, t_plain = best_times(
            [lambda v=v: v(a), lambda j=jitted: [j(float(x)) for x in a], step,
             lambda f=fn: masked_loop(f, a), lambda f=fn: [f(float(x)) for x in a]],
            [1, 1, trips, 1, 1], repeat * number)
        rows.append(f"| Newton {name}, batch {batch} | {t_v * 1e3:.3f} ms | {trips} x "
                    f"{t_step * 1e6:.1f} µs = {trips * t_step * 1e3:.3f} ms | "
                    f"{t_v / (trips * t_step):.2f} (target <= 1.5) | loop of the compiled "
                    f"function {t_loop * 1e3:.1f} ms: {t_loop / t_v:.0f}x (target >= 20; "
                    f"it needs <= {t_loop / 20 / (trips * t_step):.2f} x the ideal) | "
                    f"first call {first * 1e3:.0f} ms |")
        rows.append(f"| (the same loop hand-written in NumPy, masked: np.where, "
                    f"np.logical_and, .any()) | {t_hand * 1e3:.3f} ms | | "
                    f"tl.vmap ÷ hand-written {t_v / t_hand:.2f} | | |")
        rows.append(f"| (a Python loop of the plain Python function, no tapeless) | "
                    f"{t_plain * 1e3:.1f} ms | | {t_plain / t_v:.0f}x slower than tl.vmap "
                    "| | |")
        rows.extend(newton_native(fn, a, expected, repeat * number))
    return rows


def newton_native(fn: Callable[[Any], Any], a: np.ndarray, expected: np.ndarray,
                  repeat: int) -> list[str]:
    """The same batched loop on the native backend (`tl.vmap(fn, backend="native")`),
    against a loop over the batch calling the unbatched function compiled natively and
    the one compiled by the Python backend (skipped without Numba)."""
    try:
        import numba  # noqa: F401
    except ImportError:
        return ["| (native backend: Numba not installed) | | | | | |"]
    v = tl.vmap(fn, backend="native")
    first = first_call(lambda: v(a))
    assert np.allclose(v(a), expected, rtol=1e-12)
    jn, jp = tl.jit(fn, backend="native"), tl.jit(fn)
    jn(float(a[0]))
    t_v, t_native, t_python = best_times(
        [lambda: v(a), lambda: [jn(float(x)) for x in a], lambda: [jp(float(x)) for x in a]],
        [1, 1, 1], repeat)
    return [f"| (native backend: tl.vmap(f, backend=\"native\")) | {t_v * 1e3:.3f} ms | | | "
            f"loop of the natively compiled function {t_native * 1e3:.1f} ms: "
            f"{t_native / t_v:.0f}x; of the Python backend's {t_python * 1e3:.1f} ms: "
            f"{t_python / t_v:.0f}x (target >= 20) | first call {first:.1f} s |"]


def layers_rows(batch: int, repeat: int, number: int) -> list[str]:
    return [row for widths in ((64, 64, 64), (64, 48, 32))
            for row in per_example_layers(batch, repeat, number, widths) +
            batch_gradient_layers(batch, repeat, number, widths)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--layers", action="store_true",
                        help="only the rows of JAX README's loss (a loop over layers)")
    parser.add_argument("--newton", action="store_true",
                        help="only the Newton rows (a `while` to a per-element tolerance)")
    args = parser.parse_args()
    repeat, number = (3, 2) if args.quick else (25, 10)
    print("| workload | tapeless | reference | ratio | target | |")
    print("|---|---:|---:|---:|---|---|")
    if args.layers:
        for batch in (32, 256):
            for line in layers_rows(batch, repeat, number):
                print(line, flush=True)
        return
    if args.newton:
        for line in newton(1000, repeat, number):
            print(line, flush=True)
        return
    for batch in (32, 256):
        for line in per_example(batch, repeat, number):
            print(line, flush=True)
    for batch in (32, 256):
        for line in layers_rows(batch, repeat, number):
            print(line, flush=True)
    print()
    for line in newton(1000, repeat, number):
        print(line, flush=True)
    print()
    for line in maml(repeat, max(1, number // 5)):
        print(line, flush=True)


if __name__ == "__main__":
    main()

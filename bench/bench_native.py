"""The native backend (Numba) against the Python backend and JAX `jit`; prints Markdown.

    python bench/bench_native.py            # one short run (a minute or two)
    python bench/bench_native.py --only lstm,det --no-probe
                                            # the workloads whose names contain a word;
                                            # no second process (no cache-warm column)
    python bench/bench_native.py --cpu      # per-call times in CPU time, not wall clock

For each control-flow workload: the objective and its gradient (`value_and_grad`) on the
Python backend and on the native one, JAX `jit` of the same (float64, one thread,
`block_until_ready`; a `lax.fori_loop`/`lax.scan` rewrite where JAX cannot run the
program as written), which programs fall back and why, the first call's time (tapeless's
compile and Numba's, with an empty cache; JAX's trace and compile), and the first call
in a second process that finds Numba's cache (objective and gradient). MLP and GMM check
that array-dominated code is no slower on the native backend. The source must not change
while it runs: the second process would not find the cache (its key covers the
backend's source).
"""

from __future__ import annotations

import os
import sys
import tempfile

ENV = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
       "XLA_FLAGS": "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"}
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def ensure_env() -> None:
    """Re-exec with one thread everywhere and a fresh native cache (before NumPy)."""
    if all(os.environ.get(k) == v for k, v in ENV.items()) and \
            "TAPELESS_CACHE_DIR" in os.environ:
        return
    env = dict(os.environ, **ENV)
    env.setdefault("TAPELESS_CACHE_DIR", tempfile.mkdtemp(prefix="tapeless-bench-"))
    os.execve(sys.executable, [sys.executable, os.path.abspath(__file__), *sys.argv[1:]], env)


ensure_env()
sys.path[:0] = [HERE, os.path.join(ROOT, "src")]

import math  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from collections.abc import Callable  # noqa: E402
from typing import Any  # noqa: E402

import control_programs as C  # noqa: E402
import numpy as np  # noqa: E402
import programs_core as PC  # noqa: E402
import workloads as W  # noqa: E402

import tapeless as tl  # noqa: E402
from tapeless.backend import native  # noqa: E402

# --- workloads written here (the control-flow programs of issue 15 not in workloads.py) ------


def rk4_vector(y, h):
    """RK4 steps of dy/dt = -y**2 (elementwise) over a vector, then a scalar loss."""
    for _ in range(100):
        k1 = -y * y
        z = y + 0.5 * h * k1
        k2 = -z * z
        z = y + 0.5 * h * k2
        k3 = -z * z
        z = y + h * k3
        k4 = -z * z
        y = y + h / 6.0 * (k1 + 2.0 * k2 + 2.0 * k3 + k4)
    return np.sum(y * y)


def coefficient_least_squares(c, xs, ys):
    """A polynomial fit's squared error, the polynomial evaluated by a Horner loop per
    point (scalar loops over coefficients and points)."""
    total = 0.0
    for i in range(xs.shape[0]):
        x = xs[i]
        p = 0.0
        for j in range(c.shape[0]):
            p = p * x + c[j]
        r = p - ys[i]
        total = total + r * r
    return total


def particle(v, drag):
    """A particle thrown up with speed v, with drag, stepped until it lands (a `while`
    loop whose trip count depends on the arguments); its range."""
    x, y, vx, vy = 0.0, 0.0, v * 0.6, v * 0.8
    dt = 0.001
    while y >= 0.0:
        speed = math.sqrt(vx * vx + vy * vy)
        vx = vx - dt * drag * speed * vx
        vy = vy - dt * (9.81 + drag * speed * vy)
        x = x + dt * vx
        y = y + dt * vy
    return x


def numba_start(x):
    """A trivial loop: its first native call in a process times Numba's own start."""
    for _ in range(3):
        x = x + 1.0
    return x


# --- timing ----------------------------------------------------------------------------------


# (`--cpu`: the process's CPU time instead of the wall clock, for a machine whose cores
# other jobs share: time spent waiting for a core is not counted. One thread everywhere,
# so the process's CPU time is the computation's.)
_clock = time.process_time if "--cpu" in sys.argv else time.perf_counter


def per_call(fn: Callable[[], Any], min_sample: float = 0.05, repeats: int = 5) -> float:
    """Seconds per call: the best of `repeats` samples of back-to-back calls."""
    fn()
    k, t = 1, 0.0
    while True:
        t0 = _clock()
        for _ in range(k):
            fn()
        t = _clock() - t0
        if t >= min_sample:
            break
        k *= 2
    best = t / k
    for _ in range(repeats - 1):
        t0 = _clock()
        for _ in range(k):
            fn()
        best = min(best, (_clock() - t0) / k)
    return best


def first_call(make: Callable[[], Callable[..., Any]], args: tuple) -> tuple[float, Any]:
    t0 = time.perf_counter()
    fn = make()
    fn(*args)
    return time.perf_counter() - t0, fn


def fmt(t: float | None) -> str:
    if t is None:
        return "—"
    return f"{t * 1e6:.1f} µs" if t < 1e-3 else f"{t * 1e3:.2f} ms" if t < 1 else f"{t:.2f} s"


def ratio(a: float | None, b: float | None) -> str:
    return "—" if a is None or b is None else f"{a / b:.2f}×"


# --- JAX ---------------------------------------------------------------------------------------


def jax_versions(name: str, args: tuple) -> tuple[Callable, Callable, tuple, str] | None:
    """(objective, gradient, arguments, the rewrite JAX needed) under `jax.jit`."""
    try:
        import jax
    except ImportError:
        return None
    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp
    from jax import lax

    if name == "scalar loop":
        def f(x):
            return lax.fori_loop(0, 1000, lambda i, x: jnp.sin(x) * 1.01, x)
        return f, jax.grad(f), (jnp.float64(args[0]),), "`lax.fori_loop`"
    if name == "scalar while loop":
        n = args[1]

        def f(x):
            return lax.fori_loop(0, n, lambda i, x: jnp.sin(x) * 1.01 + i * 1e-9, x)
        return f, jax.grad(f), (jnp.float64(args[0]),), \
            "`lax.fori_loop` (JAX cannot differentiate `lax.while_loop` in reverse mode)"
    if name == "RK4 over a vector":
        def f(y, h):
            def step(i, y):
                k1 = -y * y
                z = y + 0.5 * h * k1
                k2 = -z * z
                z = y + 0.5 * h * k2
                k3 = -z * z
                z = y + h * k3
                k4 = -z * z
                return y + h / 6.0 * (k1 + 2.0 * k2 + 2.0 * k3 + k4)
            y = lax.fori_loop(0, 100, step, y)
            return jnp.sum(y * y)
        return f, jax.grad(f), (jnp.asarray(args[0]), jnp.float64(args[1])), "`lax.fori_loop`"
    if name == "coefficient-loop least squares":
        def f(c, xs, ys):
            p = lax.fori_loop(0, c.shape[0], lambda j, p: p * xs + c[j], jnp.zeros_like(xs))
            r = p - ys
            return jnp.sum(r * r)
        return f, jax.grad(f), tuple(jnp.asarray(a) for a in args), \
            "vectorized over points, `lax.fori_loop` over coefficients"
    if name == "while-loop particle":
        def f(v, drag):
            def cond(s):
                return s[1] >= 0.0

            def body(s):
                x, y, vx, vy = s
                speed = jnp.sqrt(vx * vx + vy * vy)
                vx = vx - 0.001 * drag * speed * vx
                vy = vy - 0.001 * (9.81 + drag * speed * vy)
                return x + 0.001 * vx, y + 0.001 * vy, vx, vy
            x0 = jnp.float64(0.0)
            return lax.while_loop(cond, body, (x0, x0, v * 0.6, v * 0.8))[0]
        # (reverse mode cannot go through lax.while_loop: JAX's gradient is by jvp)
        return f, jax.jacfwd(f), (jnp.float64(args[0]), jnp.float64(args[1])), \
            "`lax.while_loop`; its gradient by forward mode (`jacfwd`): reverse mode " \
            "cannot differentiate `while_loop`"
    if name.startswith("while-loop particle, nested derivative"):
        g, drag, dt = C.GRAVITY, C.DRAG, C.DT

        def landing(v, angle):
            def body(s):
                x, y, vx, vy, _, _ = s
                return (x + vx * dt, y + vy * dt, vx - drag * vx * dt,
                        vy - (g + drag * vy) * dt, x, y)
            zero = jnp.zeros_like(v * angle)
            x, y, _, _, px, py = lax.while_loop(
                lambda s: s[1] >= 0.0, body,
                (zero, zero, v * jnp.cos(angle), v * jnp.sin(angle), zero, zero))
            return px + (x - px) * py / (py - y)

        def f(v, target):
            # (the angle's derivative by forward mode: reverse mode cannot go through
            # `lax.while_loop`)
            slope = jax.jacfwd(lambda a: (landing(v, a) - target) ** 2)
            angle = lax.fori_loop(0, 8, lambda _, a: a - 0.002 * slope(a), jnp.float64(0.6))
            return landing(v, angle) + 0.01 * v * v
        return f, jax.jacfwd(f), (jnp.float64(args[0]), jnp.float64(args[1])), \
            "`lax.while_loop` for the landing, its angle derivative by `jax.jacfwd` " \
            "inside a `lax.fori_loop` of the 8 steps; the gradient by `jax.jacfwd` " \
            "(reverse mode cannot differentiate `while_loop`)"
    if name.startswith("recursive determinant"):
        import itertools

        n = args[0].shape[0]
        perms = np.array(list(itertools.permutations(range(n))))
        # (the sign of each permutation: the parity of its inversions)
        inversions = sum((perms[:, i] > perms[:, j]).astype(int)
                         for i in range(n) for j in range(i + 1, n))
        signs = jnp.asarray(1.0 - 2.0 * (inversions % 2))
        rows, cols = jnp.arange(n)[None, :], jnp.asarray(perms)

        def f(A):
            return jnp.sum(signs * jnp.prod(A[rows, cols], axis=1))
        return f, jax.grad(f), (jnp.asarray(args[0]),), \
            f"a table of the {len(perms)} permutations with their signs (Leibniz's " \
            "formula, vectorized) instead of the recursion"
    if name == "nested-descent saddle":
        def game(x, y, a, b):
            return 0.5 * x * x + a * x * y - 0.5 * y * y + b * jnp.sin(x)

        dx, dy = jax.grad(game, 0), jax.grad(game, 1)

        def f(a, b):
            def outer(_, s):
                x, y = s
                x = lax.fori_loop(0, 15, lambda _, x: x - 0.3 * dx(x, y, a, b), x)
                return x, y + 0.3 * dy(x, y, a, b)
            x, y = lax.fori_loop(0, 12, outer, (jnp.float64(0.0), jnp.float64(0.0)))
            return game(x, y, a, b)
        return f, jax.grad(f, (0, 1)), (jnp.float64(args[0]), jnp.float64(args[1])), \
            "two nested `lax.fori_loop`s, `jax.grad` inside"
    if name == "LSTM":
        from peers import jax_setup

        primal, gradient, _ = jax_setup("lstm", args)
        return primal, gradient, (), "`lax.scan` over the characters (bench/peers.py)"
    if name == "MLP":
        def f(W1, b1, W2, b2, X):
            h = jnp.tanh(W1 @ X + b1)
            return jnp.sum(jnp.tanh(W2 @ h + b2))
        return f, jax.grad(f, (0, 1, 2, 3)), tuple(jnp.asarray(a) for a in args), "none"
    return None


def time_jax(name: str, args: tuple) -> tuple[float | None, float | None, float | None, str]:
    found = jax_versions(name, args)
    if found is None:
        return None, None, None, "not measured here (bench/run.py has JAX's GMM)"
    import jax

    f, g, jargs, rewrite = found
    if not jargs:  # (bench/peers.py's: already jitted, no arguments)
        t0 = time.perf_counter()
        g()
        first = time.perf_counter() - t0
        return per_call(f), per_call(g), first, rewrite
    fj, gj = jax.jit(f), jax.jit(g)
    t0 = time.perf_counter()
    jax.block_until_ready(gj(*jargs))
    first = time.perf_counter() - t0
    return (per_call(lambda: jax.block_until_ready(fj(*jargs))),
            per_call(lambda: jax.block_until_ready(gj(*jargs))), first, rewrite)


# --- the run -------------------------------------------------------------------------------------


def workloads() -> list[tuple[str, Callable, tuple, Any]]:
    rng = np.random.default_rng(0)
    xs = rng.uniform(-1, 1, 200)
    return [
        ("scalar loop", W.scalar_loop, (0.5,), 0),
        ("scalar while loop", PC.scalar_while, (0.5, 1000), 0),
        ("RK4 over a vector", rk4_vector, (np.linspace(0.1, 1.0, 8), 0.01), 0),
        ("coefficient-loop least squares", coefficient_least_squares,
         (rng.standard_normal(6), xs, np.sin(3 * xs)), 0),
        ("while-loop particle", particle, (10.0, 0.1), (0, 1)),
        ("while-loop particle, nested derivative (floats)", C.aimed_landing,
         C.particle_data(), 0),
        ("while-loop particle, nested derivative (tuple state, lambda)",
         C.aimed_landing_closure, C.particle_data(), 0),
        ("recursive determinant", C.det_laplace, C.det_data(7), 0),
        ("recursive determinant, filter spelling", C.det_laplace_filter, C.det_data(7), 0),
        ("nested-descent saddle", C.saddle_value, C.saddle_data(), (0, 1)),
        ("LSTM", W.lstm_objective, W.lstm_data(2, 64), (0, 1)),
        ("MLP", W.mlp, W.mlp_data(64, 32), (0, 1, 2, 3)),
        ("GMM", W.gmm_objective, W.gmm_data(10, 5, 3), (0, 1, 2, 3)),
    ]


def selected() -> list[tuple[str, Callable, tuple, Any]]:
    """The workloads `--only WORD[,WORD]` names (by a part of the name, any case)."""
    words = next((a.split("=", 1)[1] if "=" in a else sys.argv[i + 2]
                  for i, a in enumerate(sys.argv[1:]) if a.startswith("--only")), None)
    if words is None:
        return workloads()
    wanted = [w.strip().lower() for w in words.split(",") if w.strip()]
    return [w for w in workloads() if any(word in w[0].lower() for word in wanted)]


def fallbacks_of(fn: Any) -> list[str]:
    out = []
    for compiled in fn._compiled.values():
        entry = compiled.fn
        if isinstance(entry, native.NativeFunction) and entry.fallback is not None:
            out.append(f"{entry.fallback.function}: {entry.fallback.reason} "
                       f"({entry.fallback.where})")
    return out


def cache_probe() -> None:
    """(In a second process.) The first call of each native gradient, Numba's cache warm."""
    import numba  # noqa: F401  (imported before timing, as a program using it would)

    t0 = time.perf_counter()
    tl.jit(numba_start, backend="native")(1.0)
    print(f"(Numba's start in a process: a trivial function)\t{time.perf_counter() - t0}")
    for name, fn, args, argnums in selected():
        t0 = time.perf_counter()
        tl.jit(fn, backend="native")(*args)
        t1 = time.perf_counter()
        tl.value_and_grad(fn, argnums, backend="native")(*args)
        print(f"{name}\t{t1 - t0}\t{time.perf_counter() - t1}")


def main() -> None:
    if "--cache-probe" in sys.argv:
        cache_probe()
        return
    warnings.simplefilter("ignore")
    import numba

    rows, notes, firsts = [], [], []
    for name, fn, args, argnums in selected():
        py_f, py_g = tl.jit(fn), tl.value_and_grad(fn, argnums)
        first_nf, nat_f = first_call(lambda fn=fn: tl.jit(fn, backend="native"), args)
        first_ng, nat_g = first_call(
            lambda fn=fn, a=argnums: tl.value_and_grad(fn, a, backend="native"), args)
        first_pg, _ = first_call(lambda fn=fn, a=argnums: tl.value_and_grad(fn, a), args)
        first_pf, _ = first_call(lambda fn=fn: tl.jit(fn), args)
        t = {k: per_call(lambda f=f: f(*args)) for k, f in
             (("py_f", py_f), ("py_g", py_g), ("nat_f", nat_f), ("nat_g", nat_g))}
        jf, jg, jfirst, rewrite = time_jax(name, args)
        fb = fallbacks_of(nat_f) + fallbacks_of(nat_g)
        rows.append((name, t, jf, jg, fb))
        firsts.append((name, first_pf, first_nf, first_pg, first_ng, jfirst))
        notes.append((name, rewrite))
    probe = "" if "--no-probe" in sys.argv else subprocess.run(
        [sys.executable, os.path.abspath(__file__), "--cache-probe", *sys.argv[1:]],
        capture_output=True, text=True, env=os.environ).stdout
    warm = {line.split("\t")[0]: line.split("\t")[1:] for line in probe.splitlines()
            if "\t" in line}

    clock = "process CPU time" if "--cpu" in sys.argv else "wall clock"
    print(f"numba {numba.__version__}, numpy {np.__version__}, one thread, float64, "
          f"per-call times by {clock}\n")
    print("| workload | objective python | objective native | gradient python | "
          "gradient native | native ÷ python (objective) | native ÷ python (gradient) | "
          "JAX jit objective | JAX jit gradient | native gradient ÷ JAX | "
          "native gradient ÷ native objective |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for name, t, jf, jg, _ in rows:
        print(f"| {name} | {fmt(t['py_f'])} | {fmt(t['nat_f'])} | {fmt(t['py_g'])} | "
              f"{fmt(t['nat_g'])} | {ratio(t['nat_f'], t['py_f'])} | "
              f"{ratio(t['nat_g'], t['py_g'])} | {fmt(jf)} | {fmt(jg)} | "
              f"{ratio(t['nat_g'], jg)} | {ratio(t['nat_g'], t['nat_f'])} |")
    print("\nFirst call (compile included) of the objective (`jit`) and the gradient: Python "
          "backend; native with an empty cache; native in a second process that finds "
          "Numba's cache; JAX jit (the gradient).\n")
    print("| workload | objective: python | native, cold | native, cache warm | "
          "gradient: python | native, cold | native, cache warm | JAX jit gradient |")
    print("|---|---|---|---|---|---|---|---|")
    start = [float(v[0]) for k, v in warm.items() if k.startswith("(Numba")]
    for name, pf, nf, pg, ng, jfirst in firsts:
        w = warm.get(name) or ["", ""]
        wf, wg = (fmt(float(v)) if v else "—" for v in w[:2])
        print(f"| {name} | {fmt(pf)} | {fmt(nf)} | {wf} | {fmt(pg)} | {fmt(ng)} | {wg} | "
              f"{fmt(jfirst)} |")
    if start:
        print(f"\nIn the second process, Numba's own start (the first native call of a "
              f"trivial function, before the workloads) took {fmt(start[0])}; the warm "
              "columns are each function's first call after it, tapeless's compile "
              "included.")
    print("\nFallbacks (these run on the Python backend):\n")
    for name, *_, fb in rows:
        for line in fb or ["none: native"]:
            print(f"- {name}: {line}")
    print("\nJAX rewrites:\n")
    for name, rewrite in notes:
        print(f"- {name}: {rewrite}")
    _ = math


if __name__ == "__main__":
    main()

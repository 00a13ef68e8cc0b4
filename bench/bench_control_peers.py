"""The control-flow workloads of issue 12 (bench/bench_control.py's, programs in
bench/control_programs.py) under tapeless and its peers, side by side; prints Markdown.

    python bench/bench_control_peers.py                  # every workload, a few minutes
    python bench/bench_control_peers.py --only det,rk4   # some workloads (keys below)
    python bench/bench_control_peers.py --quick          # short samples: a smoke test
    python bench/bench_control_peers.py --cpu            # per-call times in process CPU
                                                         # time, not the wall clock
    python bench/bench_control_peers.py --no-native      # without tapeless's native backend

Per workload, the gradient's time per call under: tapeless `tl.grad` (Python backend, both
spellings of bench_control.py) and `tl.grad(..., backend="native")` (first spelling, if
Numba is installed); HIPS autograd (`autograd.grad` of the program as written: its
functions with `np`/`math`/`tl` bound to `autograd.numpy`/`autograd.grad`, so nested
derivatives are `autograd.grad` inside, as a user would write them); PyTorch eager
(`torch.autograd.grad` on float64 tensors, `np`/`math` bound to `torch`; nested
derivatives with `create_graph=True`); JAX `jit` of its gradient, the program rewritten
where JAX cannot run it as written or where a JAX user would not write it so (each
rewrite is named in the report). A tool that is not installed is left out. Every
tool's gradient is checked against tapeless's (relative error ≤ 1e-6, as
bench_control.py's) before anything is timed; a wrong one is reported and not timed.

One thread for every tool (`OMP/OPENBLAS/MKL_NUM_THREADS=1`, XLA's flags as in
bench/run.py, `torch.set_num_threads(1)`), the same malloc settings as
bench_control.py, a fresh native cache; the script re-executes itself with them. Timing
as bench/timing.py's `best_times`: each function's calls grouped into samples of at
least 50 ms, the samples of all tools interleaved round by round, the least of 5 rounds.
"""

from __future__ import annotations

import os
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
_saved_path = list(sys.path)
sys.path.insert(0, HERE)
try:
    # bench/run.py's environment: one thread for BLAS and XLA, its malloc settings. (Its
    # import loads NumPy; where the environment is missing, the process starts again.)
    from run import ENV
finally:
    sys.path[:] = _saved_path

if __name__ == "__main__" and not (
        all(os.environ.get(k) == v for k, v in ENV.items())
        and "TAPELESS_CACHE_DIR" in os.environ):
    _env = dict(os.environ, **ENV)
    _env.setdefault("TAPELESS_CACHE_DIR", tempfile.mkdtemp(prefix="tapeless-bench-"))
    os.execve(sys.executable, [sys.executable, os.path.abspath(__file__), *sys.argv[1:]],
              _env)

import argparse  # noqa: E402
import contextlib  # noqa: E402
import importlib  # noqa: E402
import importlib.util  # noqa: E402
import time  # noqa: E402
import types  # noqa: E402
import warnings  # noqa: E402
from collections.abc import Callable, Iterator  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

import tapeless as tl  # noqa: E402


@contextlib.contextmanager
def _bench_on_path() -> Iterator[None]:
    """bench/ first on sys.path while its scripts are imported, and the path as it was
    after (a test loads this module; bench/'s `timing`, `peers`, ... must not stay ahead
    of other modules)."""
    saved = list(sys.path)
    sys.path.insert(0, HERE)
    try:
        yield
    finally:
        sys.path[:] = saved


with _bench_on_path():
    import bench_control as BC
    import control_programs as C
    import peers as P
    import timing as T

GRAD_RTOL = BC.GRAD_RTOL
PEERS = ("autograd", "PyTorch", "JAX jit")


def _bench_native() -> Any:
    """bench/bench_native.py (its JAX rewrites and `fallbacks_of`). Its import re-executes
    the process unless the environment it sets is there, so it is imported with that
    environment and the environment is restored after."""
    want = dict(ENV, TAPELESS_CACHE_DIR=os.environ.get("TAPELESS_CACHE_DIR")
                or tempfile.mkdtemp(prefix="tapeless-bench-"))
    saved = {k: os.environ.get(k) for k in want}
    os.environ.update(want)
    try:
        with _bench_on_path():
            return importlib.import_module("bench_native")
    finally:
        for k, v in saved.items():
            if v is None:
                del os.environ[k]
            else:
                os.environ[k] = v


def installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


# --- one gradient of one tool -------------------------------------------------------------


@dataclass
class Version:
    """A tool's gradient of a workload: `grad()` runs it on inputs already converted (JAX:
    blocked until ready); `to_numpy` turns its result into a tuple of arrays; `how` says
    what was written for the tool; `as_written` whether that is the program as written
    (the tool's spelling of `np`/`math` aside)."""

    grad: Callable[[], Any]
    to_numpy: Callable[[Any], tuple]
    how: str
    as_written: bool


def _tuple_np(r: Any) -> tuple:
    return tuple(np.asarray(x) for x in r) if isinstance(r, tuple | list) else (np.asarray(r),)


def as_written(**names: Any) -> dict[str, Any]:
    """control_programs.py's functions as written, each global of `names` (`np`, `math`,
    `tl`) bound to a tool's module instead: one namespace, so that a program's calls of
    the module's other functions reach their rebound versions too."""
    space = dict(vars(C), **names)
    for key, value in vars(C).items():
        if isinstance(value, types.FunctionType) and value.__module__ == C.__name__:
            space[key] = types.FunctionType(value.__code__, space, value.__name__,
                                            value.__defaults__, value.__closure__)
    return space


PROGRAMS = {"det": "det_laplace", "walk": "walk_energy", "particle": "aimed_landing",
            "rk4": "rk4_loss", "saddle": "saddle_value", "poly": "poly_loss",
            "classifier": "classifier_loss"}
NESTED = ("particle", "saddle")


def _how(key: str, module: str, nested: str) -> str:
    used = {"det": "", "walk": "", "particle": "`math`", "saddle": "`math`"}.get(key, "`np`")
    how = f"as written, {used} as `{module}`" if used else "the program unchanged"
    return how + (f"; its `tl.grad` as {nested}" if key in NESTED else "")


# --- HIPS autograd ---------------------------------------------------------------------------


def autograd_version(key: str, args: tuple, argnums: Any) -> Version:
    import autograd
    import autograd.numpy as anp

    if key == "gmm":
        _, gradient, to_numpy = P.autograd_setup("gmm", args)
        return Version(gradient, to_numpy, "bench/peers.py's GMM (autograd's logsumexp)",
                       False)
    nested = types.SimpleNamespace(grad=lambda f, argnums=0: autograd.grad(f, argnums))
    f = as_written(np=anp, math=anp, tl=nested)[PROGRAMS[key]]
    g = autograd.grad(f, argnums)
    return Version(lambda: g(*args), _tuple_np,
                   _how(key, "autograd.numpy", "`autograd.grad`"), True)


# --- PyTorch eager ---------------------------------------------------------------------------


def torch_version(key: str, args: tuple, argnums: Any) -> Version:
    import torch

    torch.set_num_threads(1)
    f64 = torch.float64

    def nested_grad(f: Callable, argnums: int = 0) -> Callable:
        """A PyTorch user's `grad` of a scalar function, differentiable again: the
        argument enters as a fresh node (`view_as`), so that the result is the partial
        derivative. `torch.autograd.grad(f(x, y), x)` would also count the paths through
        arguments computed from x (the saddle's y, made by an ascent step from this x): a
        total derivative, whose first ascent step differs by 1.6e-4 and whose final
        gradient differs by 2.5e-8 relative (a 1e-6 check lets it through)."""

        def g(*args: Any) -> Any:
            xs = list(args)
            x = xs[argnums]
            x = (x.view_as(x) if isinstance(x, torch.Tensor)
                 else torch.tensor(x, dtype=f64, requires_grad=True))
            xs[argnums] = x
            (d,) = torch.autograd.grad(f(*xs), x, create_graph=True)
            return d
        return g

    zero = torch.tensor(0.0, dtype=f64)

    def classifier_loss(W1, b1, W2, b2, X, labels):
        h = torch.maximum(X @ W1 + b1, zero)
        logits = h @ W2 + b2
        shifted = logits - torch.max(logits, dim=1, keepdim=True).values
        logp = shifted - torch.log(torch.sum(torch.exp(shifted), dim=1, keepdim=True))
        return -torch.mean(logp[torch.arange(X.shape[0]), labels])

    def to_numpy(r: Any) -> tuple:
        return tuple(x.detach().numpy() for x in r)

    if key == "gmm":
        _, gradient, to_np = P.torch_setup("gmm", args)
        return Version(gradient, to_np, "bench/peers.py's GMM (`torch.logsumexp`)", False)
    if key == "classifier":
        f = classifier_loss
        how = ("`np` as `torch`, with torch's signatures (`torch.maximum` of a tensor, "
               "`dim=`, `keepdim=`, `.values`)")
    else:
        f = as_written(np=torch, math=torch,
                       tl=types.SimpleNamespace(grad=nested_grad))[PROGRAMS[key]]
        how = _how(key, "torch", "`torch.autograd.grad(..., create_graph=True)` of a "
                   "fresh node (`x.view_as(x)`)")
    tensors = [torch.tensor(a, dtype=f64) if isinstance(a, float) else torch.tensor(a)
               for a in args]
    nums = (argnums,) if isinstance(argnums, int) else argnums
    params = [tensors[i].requires_grad_() for i in nums]
    return Version(lambda: torch.autograd.grad(f(*tensors), params), to_numpy, how, True)


# --- JAX jit -----------------------------------------------------------------------------------

# Why JAX's `jit` does not run each program as written (the program under `jax.jit(jax.grad)`,
# `np`/`math` spelled `jax.numpy`): what a JAX user rewrites, and why.
# (Measured once, 2026-12-07, on a 2-core machine at a load average of 13: the first call
# of `jax.jit(jax.grad(...))` of the walk as written took 10.6 s of CPU time; the
# determinant's had not finished after 15 minutes, RK4's after 10; the saddle's took 5.1 s.)
JAX_AS_WRITTEN = {
    "det": "the recursion is unrolled while tracing (13,700 calls, each a gather): "
           "XLA's compile had not finished after 15 minutes",
    "walk": "the recursion is unrolled while tracing (600 calls): its first call takes "
            "about 10 s",
    "particle": "`while y >= 0.0` on a traced value fails under `jit`; `lax.while_loop` "
                "has no reverse-mode derivative",
    "rk4": "the 1,000 steps are unrolled while tracing: XLA's compile had not finished "
           "after 10 minutes",
    "saddle": "the 12 × 16 `jax.grad` steps are unrolled while tracing: it runs, its "
              "first call about 5 s",
}


def jax_version(key: str, args: tuple, argnums: Any) -> Version:
    import jax

    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp
    from jax import lax

    G, DRAG, DT = C.GRAVITY, C.DRAG, C.DT
    if key == "gmm":
        _, gradient, to_numpy = P.jax_setup("gmm", args)
        return Version(gradient, to_numpy, "bench/peers.py's GMM "
                       "(`jax.scipy.special.logsumexp`)", False)
    if key in ("det", "saddle"):
        name = {"det": "recursive determinant", "saddle": "nested-descent saddle"}[key]
        f, g, jargs, how = _bench_native().jax_versions(name, args)
        gj = jax.jit(g)
        return Version(lambda: jax.block_until_ready(gj(*jargs)), _tuple_np,
                       how + " (bench/bench_native.py's)", False)
    written = key in ("poly", "classifier")
    if written:
        f, how = as_written(np=jnp)[PROGRAMS[key]], _how(key, "jax.numpy", "")
    elif key == "walk":
        def f(A):
            n = A.shape[0]
            i = jnp.arange(n)
            return jnp.sum(A[i, i] * A[i, (7 * i) % n])
        how = "one gather over `arange(n)` instead of the recursion"
    elif key == "rk4":
        def f(A, y0):
            h = 0.001

            def step(_, y):
                k1 = A @ y
                k2 = A @ (y + 0.5 * h * k1)
                k3 = A @ (y + 0.5 * h * k2)
                k4 = A @ (y + h * k3)
                return y + (h / 6.0) * (k1 + 2.0 * k2 + 2.0 * k3 + k4)

            y = lax.fori_loop(0, 1000, step, y0)
            return jnp.sum(y * y)
        how = "`lax.fori_loop` over the steps"
    elif key == "particle":
        def landing(v, angle):
            def body(s):
                x, y, vx, vy, _, _ = s
                return (x + vx * DT, y + vy * DT, vx - DRAG * vx * DT,
                        vy - (G + DRAG * vy) * DT, x, y)

            z = 0.0 * v
            x, y, _, _, px, py = lax.while_loop(
                lambda s: s[1] >= 0.0, body,
                (z, z, v * jnp.cos(angle), v * jnp.sin(angle), z, z))
            return px + (x - px) * py / (py - y)

        slope = jax.jacfwd(lambda angle, v, target: (landing(v, angle) - target) ** 2)

        def f(v, target):
            angle = lax.fori_loop(0, 8, lambda _, a: a - 0.002 * slope(a, v, target),
                                  0.6 + 0.0 * v)
            return landing(v, angle) + 0.01 * v * v

        jargs = tuple(jnp.float64(a) for a in args)
        gj = jax.jit(jax.jacfwd(f, argnums))
        return Version(lambda: jax.block_until_ready(gj(*jargs)), _tuple_np,
                       "`lax.while_loop` and `lax.fori_loop`; the inner and the outer "
                       "derivative by forward mode (`jax.jacfwd`)", False)
    else:
        raise ValueError(key)
    jargs = tuple(jnp.asarray(a) for a in args)
    gj = jax.jit(jax.grad(f, argnums))
    return Version(lambda: jax.block_until_ready(gj(*jargs)), _tuple_np, how, written)


MAKERS: dict[str, tuple[str, Callable[[str, tuple, Any], Version]]] = {
    "autograd": ("autograd", autograd_version),
    "PyTorch": ("torch", torch_version),
    "JAX jit": ("jax", jax_version),
}


def peer_versions(key: str, args: tuple, argnums: Any,
                  tools: tuple[str, ...] = PEERS) -> tuple[dict[str, Version], dict[str, str]]:
    """The installed peers' gradients of workload `key`, and a note for each peer that is
    not installed or could not be built."""
    out, missing = {}, {}
    for tool in tools:
        module, make = MAKERS[tool]
        if not installed(module):
            missing[tool] = "not installed"
            continue
        try:
            out[tool] = make(key, args, argnums)
        except Exception as e:  # reported, not hidden: the table says why it is missing
            missing[tool] = f"{type(e).__name__}: {str(e).splitlines()[0][:160]}"
    return out, missing


# --- the run -------------------------------------------------------------------------------------


def fmt_ms(s: float | None) -> str:
    if s is None:
        return "–"
    ms = s * 1e3
    return f"{ms:.3g}" if ms < 100 else f"{ms:.0f}"


def calls_for(fn: Callable[[], Any], min_sample: float, clock: Callable[[], float]) -> int:
    """Calls in a sample that lasts at least `min_sample` s (after one call)."""
    fn()
    n = 1
    while True:
        t0 = clock()
        for _ in range(n):
            fn()
        t = clock() - t0
        if t >= min_sample:
            return n
        n = max(2 * n, int(n * 1.2 * min_sample / max(t, 1e-9)) + 1)


def bench_case(case: Any, opts: Any) -> tuple[str, list[str], list[str]]:
    """The workload's table row, its notes, and its first-call row."""
    args = case.data()
    notes: list[str] = []
    fns: dict[str, Callable[[], Any]] = {}
    firsts: dict[str, float] = {}

    def first(label: str, fn: Callable[[], Any]) -> Any:
        t0 = time.perf_counter()
        r = fn()
        firsts[label] = time.perf_counter() - t0
        return r

    (_, fn1), (label2, fn2) = case.spellings[:2]
    g1 = tl.grad(fn1, argnums=case.argnums)
    ref = BC.as_tuple(first("tl.grad", lambda: g1(*args)))
    fns["tl.grad"] = lambda: g1(*args)
    g2 = tl.grad(fn2, argnums=case.argnums)
    err = BC.rel_error(BC.as_tuple(g2(*args)), ref)
    if err <= GRAD_RTOL:
        fns["tl.grad 2"] = lambda: g2(*args)
    else:
        notes.append(f"tapeless's second spelling ({label2}): wrong gradient, {err:.1e}")
    if opts.native:
        gn = tl.grad(fn1, argnums=case.argnums, backend="native")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            got = BC.as_tuple(first("native", lambda: gn(*args)))
        err = BC.rel_error(got, ref)
        if err <= GRAD_RTOL:
            fns["native"] = lambda: gn(*args)
        else:
            notes.append(f"tapeless native: wrong gradient ({err:.1e} from the Python "
                         "backend's), not timed")
        fallbacks = _bench_native().fallbacks_of(gn)
        if fallbacks:
            notes.append("tapeless native falls back to the Python backend: "
                         + "; ".join(fallbacks))
    versions, missing = peer_versions(case.key, args, case.argnums)
    for tool, why in missing.items():
        notes.append(f"{tool}: {why}")
    for tool, v in versions.items():
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                got = v.to_numpy(first(tool, v.grad))
        except Exception as e:
            notes.append(f"{tool} fails: {type(e).__name__}: "
                         f"{str(e).splitlines()[0][:160]}")
            continue
        err = BC.rel_error(got, ref)
        written = "as written" if v.as_written else "rewritten"
        if err <= GRAD_RTOL:
            fns[tool] = v.grad
            notes.append(f"{tool} ({written}): {v.how}; gradient {err:.1e} from tapeless's")
        else:
            notes.append(f"{tool} ({written}): {v.how}; **wrong gradient** ({err:.1e} "
                         "from tapeless's), not timed")
        if tool == "JAX jit" and not v.as_written and case.key in JAX_AS_WRITTEN:
            notes.append(f"JAX as written: {JAX_AS_WRITTEN[case.key]}")
    BC.log(f"   checked; timing {', '.join(fns)}")
    labels = list(fns)
    numbers = [calls_for(fns[k], opts.min_sample, opts.clock) for k in labels]
    best = T.best_times([fns[k] for k in labels], numbers, opts.repeats, opts.clock)
    t = dict(zip(labels, best, strict=True))
    peer_times = {k: t[k] for k in PEERS if k in t}
    best_peer = min(peer_times, key=peer_times.__getitem__) if peer_times else None

    written = {k: v for k, v in peer_times.items() if versions[k].as_written}
    best_written = min(written, key=written.__getitem__) if written else None

    def over(label: str, peer: str | None) -> str:
        if peer is None or label not in t:
            return "–"
        r = t[label] / peer_times[peer]
        return f"{r:.2f}" if r >= 0.1 else f"{r:.2g}"

    def peer_cell(tool: str) -> str:
        if tool not in t:
            return "–"
        cell = fmt_ms(t[tool])
        return cell if versions[tool].as_written else cell + " (rewrite)"

    row = (f"| {case.key} | {fmt_ms(t.get('tl.grad'))} | {fmt_ms(t.get('tl.grad 2'))} | "
           f"{fmt_ms(t.get('native'))} | "
           + " | ".join(peer_cell(p) for p in PEERS)
           + f" | {best_peer or '–'} | **{over('tl.grad', best_peer)}** | "
           f"**{over('native', best_peer)}** | {best_written or '–'} | "
           f"**{over('tl.grad', best_written)}** |")
    first_row = (f"| {case.key} | "
                 + " | ".join(fmt_ms(firsts.get(k)) for k in ("tl.grad", "native", *PEERS))
                 + " |")
    return row, notes, [first_row]


HEADER = ("| workload | tl.grad (ms) | tl.grad, 2nd spelling (ms) | tl.grad native (ms) | "
          "autograd (ms) | PyTorch (ms) | JAX jit (ms) | best peer | tapeless ÷ best peer "
          "| native ÷ best peer | best peer running it as written | tapeless ÷ it |\n"
          "|---|---:|---:|---:|---:|---:|---:|---|---:|---:|---|---:|")
FIRST_HEADER = ("| workload | tl.grad | tl.grad native | autograd | PyTorch | JAX jit |\n"
                "|---|---:|---:|---:|---:|---:|")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--only", default="", help="comma-separated workload keys: "
                    + ", ".join(c.key for c in BC.CASES))
    ap.add_argument("--quick", action="store_true", help="short samples: a smoke test")
    ap.add_argument("--cpu", action="store_true",
                    help="per-call times in process CPU time (one thread everywhere)")
    ap.add_argument("--no-native", action="store_true",
                    help="leave out tapeless's native backend")
    opts = ap.parse_args()
    opts.min_sample, opts.repeats = (0.01, 2) if opts.quick else (0.05, 5)
    opts.clock = time.process_time if opts.cpu else time.perf_counter
    opts.native = not opts.no_native and installed("numba")
    if installed("torch"):
        import torch

        torch.set_num_threads(1)
    only = set(filter(None, opts.only.split(",")))
    unknown = only - {c.key for c in BC.CASES}
    if unknown:
        ap.error(f"unknown workload(s): {', '.join(sorted(unknown))}")
    from machine_info import cpu_model

    versions = []
    for module in ("numpy", "autograd", "torch", "jax", "numba"):
        if installed(module):
            from importlib.metadata import PackageNotFoundError, version
            try:
                versions.append(f"{module} {version(module)}")
            except PackageNotFoundError:
                versions.append(module)
    print(f"- CPU: {cpu_model()}; load average at start "
          + ", ".join(f"{x:.2f}" for x in os.getloadavg()))
    print(f"- {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; "
          + ", ".join(versions) + "; one thread; per-call times by "
          + ("process CPU time" if opts.cpu else "the wall clock")
          + f", least of {opts.repeats} interleaved rounds\n")
    rows, notes, firsts = [], [], []
    for case in BC.CASES:
        if only and case.key not in only:
            continue
        BC.log(f"{case.key}: {case.title}")
        row, case_notes, first_rows = bench_case(case, opts)
        BC.log("   " + row)
        rows.append(row)
        notes.append((case, case_notes))
        firsts += first_rows
    print(HEADER)
    print("\n".join(rows))
    print("\nNotes (what each peer ran; gradients checked against tapeless's first "
          "spelling):\n")
    for case, case_notes in notes:
        print(f"- **{case.key}** ({case.title}; spellings: "
              + ", ".join(label for label, _ in case.spellings) + "):")
        for n in case_notes:
            print(f"  - {n}")
    print("\nFirst gradient call in this process, compile included (ms; later workloads "
          "find rules and libraries loaded):\n")
    print(FIRST_HEADER)
    print("\n".join(firsts))


if __name__ == "__main__":
    with _bench_on_path():
        main()

"""Gradients of the programs only tapeless runs as written (issue 12): recursion, `while`
loops, derivatives nested in loops, loops over vectors and everyday losses in two
spellings each (bench/control_programs.py). Prints a Markdown report.

    python bench/bench_control.py                 # every workload, about 2 minutes
    python bench/bench_control.py --only det,rk4  # some workloads (keys below)
    python bench/bench_control.py --no-probes     # no fresh-process compile times
    python bench/bench_control.py --quick         # short samples: a smoke test
    python bench/bench_control.py --activity      # also the gradient built without the
                                                  # activity analysis (TAPELESS_ACTIVITY=0)
    python bench/bench_control.py --no-cpython    # not the objective run by CPython
    python bench/bench_control.py --memory [...]  # peak memory instead: the options of
                                                  # bench/bench_control_memory.py

Reported, per workload and spelling, from one run: the objective run by CPython and by
`tl.jit`; the gradient `tl.grad(f, argnums)`; *gradient ÷ objective* (over tl.jit's
objective); *tapeless ÷ hand-written* where a hand-written NumPy gradient exists
(bench/control_handwritten.py, bench/handwritten.py); and, in a fresh process per
spelling, *compile* (`tl.grad(f)._get(args)`) and *first call* (compile and one
gradient). Every gradient is checked first: a hand-written one against central finite
differences, tapeless's against the hand-written one or, where there is none, against
central finite differences of the objective run by CPython, coordinate by coordinate.
Timing as in bench/run.py: interleaved samples of at least 50 ms, median of 7 rounds.
"""

from __future__ import annotations

import os
import sys

ENV = {
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "MALLOC_MMAP_THRESHOLD_": "67108864",
    "MALLOC_TRIM_THRESHOLD_": "268435456",
}
HERE = os.path.dirname(os.path.abspath(__file__))

if __name__ == "__main__" and not all(os.environ.get(k) == v for k, v in ENV.items()):
    os.execve(sys.executable, [sys.executable, os.path.abspath(__file__), *sys.argv[1:]],
              dict(os.environ, **ENV))

import argparse  # noqa: E402
import gc  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402

sys.path.insert(0, HERE)

import control_handwritten as CH  # noqa: E402
import control_programs as C  # noqa: E402
import handwritten as H  # noqa: E402
import numpy as np  # noqa: E402
import workloads as W  # noqa: E402

import tapeless as tl  # noqa: E402

GRAD_RTOL = 1e-6


@dataclass
class Case:
    key: str
    title: str
    data: Callable[[], tuple]
    argnums: int | tuple[int, ...]
    spellings: list[tuple[str, Callable]]
    hand: Callable | None = None
    fd_eps: float = 1e-6
    fd_rtol: float = 1e-5
    array: bool = False          # an array workload (target gradient ÷ objective ≤ 3)
    nested: bool = False         # contains a nested derivative (compile target 1 s)
    notes: list[str] = field(default_factory=list)

    @property
    def nums(self) -> tuple[int, ...]:
        return (self.argnums,) if isinstance(self.argnums, int) else self.argnums


CASES = [
    Case("det", "determinant 7×7, recursive Laplace expansion", C.det_data, 0,
         [("slices of a column list", C.det_laplace),
          ("enumerate + comprehension", C.det_laplace_filter)], hand=CH.det_laplace_grad),
    Case("walk", "recursion reading 2 elements of a 600×600 array per call (600 calls)",
         C.walk_data, 0, [("recursive", C.walk_energy), ("for loop", C.walk_energy_loop)],
         hand=CH.walk_energy_grad),
    Case("particle", "particle `while` loop, angle by 8 nested-`tl.grad` descent steps",
         C.particle_data, 0,
         [("floats", C.aimed_landing), ("tuple state, lambda", C.aimed_landing_closure)],
         fd_eps=1e-5, fd_rtol=1e-4, nested=True),
    Case("rk4", "RK4, y' = A y, 8 dims, 1,000 steps", C.rk4_data, (0, 1),
         [("inline stages", C.rk4_loss), ("stepper + lambda", C.rk4_loss_lambda)],
         hand=CH.rk4_loss_grad, array=True),
    Case("saddle", "saddle point: 12 × (15 descent + 1 ascent) `tl.grad` steps",
         C.saddle_data, (0, 1),
         [("argnums", C.saddle_value), ("lambdas", C.saddle_value_closure)],
         nested=True),
    Case("poly", "polynomial least squares, degree 8, n=1000", C.poly_data, 0,
         [("powers", C.poly_loss), ("Horner", C.poly_loss_horner)],
         hand=CH.poly_loss_grad, array=True),
    Case("classifier", "classifier 256×64 → 128 ReLU → 10, log-softmax, int labels",
         C.classifier_data, (0, 1, 2, 3),
         [("maximum, keepdims", C.classifier_loss), ("where, mx[:, None]",
                                                     C.classifier_loss_where)],
         hand=CH.classifier_loss_grad, array=True),
    Case("gmm", "GMM n=1000, d=10, K=25", lambda: W.gmm_data(1000, 10, 25), (0, 1, 2, 3),
         [("bench (gather all K)", W.gmm_objective),
          ("loop over K, mx[None, :]", C.gmm_objective_loop)],
         hand=H.gmm_grad, array=True),
]


def median(xs: list[float]) -> float:
    s = sorted(xs)
    n = len(s)
    return s[n // 2] if n % 2 else 0.5 * (s[n // 2 - 1] + s[n // 2])


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def as_tuple(r) -> tuple:
    return r if isinstance(r, tuple) else (r,)


def rel_error(got: tuple, ref: tuple) -> float:
    worst = 0.0
    for a, b in zip(got, ref, strict=True):
        a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
        if a.shape != b.shape:
            return math.inf
        scale = max(float(np.max(np.abs(b))), 1e-300)
        worst = max(worst, float(np.max(np.abs(a - b))) / scale)
    return worst


def fd_gradient(f: Callable, args: tuple, nums: tuple[int, ...], eps: float) -> tuple:
    """Central differences of f in each scalar argument of `nums`."""
    out = []
    for a in nums:
        plus, minus = list(args), list(args)
        plus[a] = args[a] + eps
        minus[a] = args[a] - eps
        out.append((f(*plus) - f(*minus)) / (2 * eps))
    return tuple(out)


def run_n(fn: Callable, n: int) -> float:
    gc.collect()
    t0 = time.perf_counter()
    for _ in range(n):
        fn()
    return time.perf_counter() - t0


def measure(fns: dict[str, Callable], min_sample: float, repeats: int) -> dict[str, float]:
    counts = {}
    for k, f in fns.items():
        f()
        n = 1
        while (t := run_n(f, n)) < min_sample:
            n = max(2 * n, int(n * 1.2 * min_sample / max(t, 1e-9)) + 1)
        counts[k] = n
    samples: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for k, f in fns.items():
            samples[k].append(run_n(f, counts[k]) / counts[k])
    return {k: median(v) for k, v in samples.items()}


def probe(key: str, spelling: int) -> dict:
    """In a fresh process: compile time and first gradient call."""
    case = next(c for c in CASES if c.key == key)
    fn = case.spellings[spelling][1]
    args = case.data()
    t0 = time.perf_counter()
    g = tl.grad(fn, argnums=case.argnums)
    g._get(args)
    t1 = time.perf_counter()
    g(*args)
    t2 = time.perf_counter()
    return {"compile": t1 - t0, "first": t2 - t0}


def run_probe(key: str, spelling: int) -> dict:
    cmd = [sys.executable, os.path.abspath(__file__), "--probe", key, str(spelling)]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    if p.returncode != 0:
        lines = [ln for ln in p.stderr.strip().splitlines() if ln.strip()]
        return {"error": lines[-1] if lines else f"exit status {p.returncode}"}
    return json.loads(p.stdout.strip().splitlines()[-1])


def fmt_ms(s: float | None) -> str:
    if s is None:
        return "–"
    ms = s * 1e3
    return f"{ms:.3g}" if ms < 100 else f"{ms:.0f}"


def fmt_ratio(x: float | None) -> str:
    return "–" if x is None else f"{x:.2f}"


def bench_case(case: Case, opts, off_rows: list[str]) -> list[str]:
    args = case.data()
    rows = []
    ref = None
    if case.hand is not None:
        hand = case.hand
        fd_err = H.check_against_fd(case.spellings[0][1], hand, args, case.nums,
                                    eps=case.fd_eps, rtol=case.fd_rtol)
        log(f"   hand-written gradient vs finite differences: {fd_err:.1e}")
        ref = as_tuple(hand(*args))
    for i, (label, fn) in enumerate(case.spellings):
        log(f"   {label}")
        g = tl.grad(fn, argnums=case.argnums)
        f = tl.jit(fn)
        got = as_tuple(g(*args))
        if ref is None:
            want = fd_gradient(fn, args, case.nums, case.fd_eps)
            err = rel_error(got, want)
            ok = err <= case.fd_rtol
            check = f"finite differences {err:.1e}"
        else:
            err = rel_error(got, ref)
            ok = err <= GRAD_RTOL
            check = f"hand-written {err:.1e}"
        if not ok:
            rows.append(f"| {case.key} | {label} | wrong gradient ({check}) |"
                        + " – |" * 7)
            continue
        fns = {"python": lambda fn=fn: fn(*args), "jit": lambda: f(*args),
               "grad": lambda: g(*args)}
        if opts.no_cpython:
            del fns["python"]
        if case.hand is not None:
            fns["hand"] = lambda: case.hand(*args)
        if opts.activity:
            # (The setting is read when a gradient is built.)
            os.environ["TAPELESS_ACTIVITY"] = "0"
            try:
                g_off = tl.grad(fn, argnums=case.argnums)
                off_err = rel_error(as_tuple(g_off(*args)), got)
            finally:
                del os.environ["TAPELESS_ACTIVITY"]
            log(f"      without the activity analysis: {off_err:.1e} from the gradient")
            fns["grad_off"] = lambda: g_off(*args)
        t = measure(fns, opts.min_sample, opts.repeats)
        if opts.activity:
            off_rows.append(
                f"| {case.key} | {label} | {fmt_ms(t['jit'])} | {fmt_ms(t['grad_off'])} | "
                f"{fmt_ms(t['grad'])} | **{fmt_ratio(t['grad_off'] / t['jit'])}** | "
                f"**{fmt_ratio(t['grad'] / t['jit'])}** | "
                f"{fmt_ratio(t['grad_off'] / t['grad'])} |")
        p = {} if opts.no_probes else run_probe(case.key, i)
        hand_ratio = t["grad"] / t["hand"] if "hand" in t else None
        rows.append(
            f"| {case.key} | {label} | {fmt_ms(t.get('python'))} | {fmt_ms(t['jit'])} | "
            f"{fmt_ms(t['grad'])} | {fmt_ms(t.get('hand'))} | "
            f"**{fmt_ratio(t['grad'] / t['jit'])}** | **{fmt_ratio(hand_ratio)}** | "
            f"{fmt_ms(p.get('compile'))} | {fmt_ms(p.get('first'))} | {check} |")
        log("      " + rows[-1])
    return rows


HEADER = ("| workload | spelling | CPython objective (ms) | tl.jit objective (ms) | "
          "tl.grad (ms) | hand-written gradient (ms) | gradient ÷ objective | "
          "tapeless ÷ hand-written | compile (ms) | first call (ms) | gradient checked "
          "against |\n|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|")


ACTIVITY_HEADER = (
    "| workload | spelling | tl.jit objective (ms) | tl.grad, analysis off (ms) | "
    "tl.grad, on (ms) | gradient ÷ objective, off | on | off ÷ on |\n"
    "|---|---|---:|---:|---:|---:|---:|---:|")


def main() -> None:
    if "--memory" in sys.argv[1:]:
        import bench_control_memory

        bench_control_memory.main([a for a in sys.argv[1:] if a != "--memory"])
        return
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--only", default="", help="comma-separated workload keys: "
                    + ", ".join(c.key for c in CASES))
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--no-probes", action="store_true")
    ap.add_argument("--no-cpython", action="store_true",
                    help="do not time the objective run by CPython (seconds for the "
                    "nested derivatives)")
    ap.add_argument("--activity", action="store_true",
                    help="also time the gradient built with TAPELESS_ACTIVITY=0")
    ap.add_argument("--probe", nargs=2, help=argparse.SUPPRESS)
    opts = ap.parse_args()
    if opts.probe:
        print(json.dumps(probe(opts.probe[0], int(opts.probe[1]))))
        return
    opts.min_sample, opts.repeats = (0.01, 3) if opts.quick else (0.05, 7)
    only = set(filter(None, opts.only.split(",")))
    from machine_info import cpu_model

    print(f"- CPU: {cpu_model()}; load average at start "
          + ", ".join(f"{x:.2f}" for x in os.getloadavg()))
    print(f"- {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}\n")
    print(HEADER)
    off_rows: list[str] = []
    for case in CASES:
        if only and case.key not in only:
            continue
        log(f"{case.key}: {case.title}")
        for row in bench_case(case, opts, off_rows):
            print(row, flush=True)
    if opts.activity:
        print("\nWith and without the activity analysis (interleaved samples, one run):\n")
        print(ACTIVITY_HEADER)
        print("\n".join(off_rows))
    print("\nWorkloads: " + "; ".join(f"`{c.key}`: {c.title}" for c in CASES
                                      if not only or c.key in only))


if __name__ == "__main__":
    main()

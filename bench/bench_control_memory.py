"""Peak memory of the gradients of bench/bench_control.py's workloads (issue 12's target:
a gradient's peak memory at most 2x the hand-written gradient's, and O(log n) growth in
a loop's length with checkpointing on). Prints a Markdown report in two parts.

    python bench/bench_control_memory.py                  # both parts, a few minutes
    python bench/bench_control.py --memory                # the same
    python bench/bench_control_memory.py --only det,rk4   # part 1 for some workloads
    python bench/bench_control_memory.py --sizes 250,1000,64000   # part 2's loop lengths
    python bench/bench_control_memory.py --no-loops       # part 1 only
    python bench/bench_control_memory.py --no-workloads   # part 2 only
    python bench/bench_control_memory.py --quick          # short: a smoke test

1. Every workload and spelling of bench/bench_control.py at its benchmark size, under the
   default settings: the peak of tapeless's gradient (`tl.grad(f, argnums)`), of the
   hand-written NumPy gradient where there is one (bench/control_handwritten.py,
   bench/handwritten.py), of the objective (run by CPython and by `tl.jit`) and of HIPS
   autograd's gradient of the same source (its functions rebound to `autograd.numpy`, the
   nested `tl.grad` to `autograd.grad`; `--no-autograd` leaves it out). JAX is not
   measured: its buffers are XLA's, which tracemalloc does not see.
2. Long loops over their length n, checkpointing on (`tl.config.loop_checkpoint =
   "auto"`, `tl.config.loop_memory` = the budget, read when a gradient compiles) and off
   ("never", or the default 1 GiB where it checkpoints nothing): RK4 over 64-dimension
   vectors (`control_programs.rk4_steps`, a `for` loop of n steps) and a scalar `while`
   loop (`control_programs.drift_while`, n steps, its trip count known once it stops),
   against their hand-written adjoints (which save each step's values). Budget 0 is the
   pure schedule: one step's saved values and a snapshot of the loop state per halving
   of the iterations, so the peak grows by one snapshot each time n doubles.

Peak memory is tracemalloc's: the bytes Python and NumPy allocate during one call, after a
warm-up call (compiling, filling caches); the arguments are not counted, the result is.
Part 2 measures after `gc.collect()` (see `peak`'s `cold`): a loop of up to a few thousand
steps would otherwise reuse the tuples the call before freed, untraced.
Times (part 2) are the CPU time of one call, only indicative. Every gradient is checked
first: tapeless's and autograd's against the hand-written gradient or, where there is
none, against central finite differences of the objective.
"""

from __future__ import annotations

import gc
import math
import os
import sys
import time
import tracemalloc
import types
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:  # (run as a script; the tests load it with bench/ on the path)
    sys.path.insert(0, HERE)

import bench_control as BC  # noqa: E402
import control_handwritten as CH  # noqa: E402
import control_programs as C  # noqa: E402
import handwritten as H  # noqa: E402

import tapeless as tl  # noqa: E402

LOOP_BUDGETS = (200_000, 0)   # bytes: part 2's checkpointed settings
SIZES = (250, 500, 1000, 2000, 4000, 8000, 16000, 32000, 64000)
QUICK_SIZES = (250, 1000)


def peak(fn: Callable, *args: Any, warm: bool = True, cold: bool = False) -> int:
    """tracemalloc's peak during one call of fn(*args), after one call (with `warm`).
    `cold`: after `gc.collect()`, which empties Python's free lists of floats, tuples,
    lists and dicts, so that every object the call makes is allocated (and traced);
    otherwise the objects the call before freed into them are reused untraced (up to
    100 floats, 2,000 tuples of each length...): it matters for peaks of a few kB."""
    if warm:
        fn(*args)
    if cold:
        gc.collect()
    tracemalloc.start()
    try:
        fn(*args)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@contextmanager
def loop_settings(mode: str, budget: int) -> Iterator[None]:
    """tl.config's loop settings, for the gradients compiled (first called) inside."""
    saved = tl.config.loop_checkpoint, tl.config.loop_memory
    tl.config.loop_checkpoint, tl.config.loop_memory = mode, budget
    try:
        yield
    finally:
        tl.config.loop_checkpoint, tl.config.loop_memory = saved


def fmt_bytes(b: float | None) -> str:
    if b is None:
        return "–"
    if b >= 1e6:
        return f"{b / 1e6:.2f} MB"
    return f"{b / 1e3:.1f} kB"


def fmt_ratio(x: float | None) -> str:
    return "–" if x is None else f"{x:.2f}"


# --- HIPS autograd on the same source ------------------------------------------------------


class _AutogradMath:
    """`math` for code run under autograd: its functions of a float from autograd.numpy."""

    def __init__(self, anp: Any) -> None:
        self._anp = anp

    def __getattr__(self, name: str) -> Any:
        if name in ("cos", "sin", "exp", "log", "sqrt", "tanh"):
            return getattr(self._anp, name)
        return getattr(math, name)


def _autograd_grad_of(fn: Callable, argnums: int | tuple[int, ...] = 0) -> Callable:
    import autograd

    nums = (argnums,) if isinstance(argnums, int) else argnums

    def packed(xs: tuple, *args: Any) -> Any:
        full = list(args)
        for a, x in zip(nums, xs, strict=True):
            full[a] = x
        return fn(*full)

    g = autograd.grad(packed, 0)

    def run(*args: Any) -> Any:
        got = g(tuple(args[a] for a in nums), *args)
        return got[0] if isinstance(argnums, int) else tuple(got)

    return run


def under_autograd(fn: Callable) -> Callable:
    """`fn` and the functions of its module, rebound to globals where `np` is
    autograd.numpy, `math`'s functions of a float are autograd.numpy's and `tl.grad` is
    autograd.grad (for the nested derivatives)."""
    import autograd.numpy as anp

    module = sys.modules[fn.__module__]
    space = dict(vars(module))
    space["np"] = anp
    space["math"] = _AutogradMath(anp)
    space["tl"] = types.SimpleNamespace(grad=_autograd_grad_of)
    for name, value in vars(module).items():
        if isinstance(value, types.FunctionType) and value.__module__ == module.__name__:
            space[name] = types.FunctionType(value.__code__, space, value.__name__,
                                             value.__defaults__, value.__closure__)
    rebound = space[fn.__name__]
    assert isinstance(rebound, types.FunctionType)
    return rebound


# --- part 1: every workload at its benchmark size ----------------------------------------


def workload_rows(case: BC.Case, with_autograd: bool) -> list[str]:
    args = case.data()
    hand_mem, hand_cold = None, 1
    if case.hand is not None:
        H.check_against_fd(case.spellings[0][1], case.hand, args, case.nums,
                           eps=case.fd_eps, rtol=case.fd_rtol)
        ref = BC.as_tuple(case.hand(*args))
        hand_mem = peak(case.hand, *args)
        hand_cold = peak(case.hand, *args, cold=True)
    else:
        ref = BC.fd_gradient(case.spellings[0][1], args, case.nums, case.fd_eps)
    rtol = BC.GRAD_RTOL if case.hand is not None else case.fd_rtol
    rows = []
    for label, fn in case.spellings:
        BC.log(f"   {label}")
        g = tl.grad(fn, argnums=case.argnums)
        err = BC.rel_error(BC.as_tuple(g(*args)), ref)
        if err > rtol:
            rows.append(f"| {case.key} | {label} | wrong gradient ({err:.1e}) |" + " – |" * 10)
            continue
        mem = peak(g, *args)
        cold = peak(g, *args, cold=True)
        python_mem = peak(fn, *args)
        jit_mem = peak(tl.jit(fn), *args)
        ag_mem = None
        if with_autograd:
            ag = _autograd_grad_of(under_autograd(fn), case.argnums)
            try:
                ag_err = BC.rel_error(BC.as_tuple(ag(*args)), ref)
            except Exception as e:  # (autograd does not run every spelling)
                BC.log(f"      autograd fails: {type(e).__name__}: {e}")
                ag_err = math.inf
            if ag_err <= max(rtol, 1e-6):
                ag_mem = peak(ag, *args)
            else:
                BC.log(f"      autograd's gradient is off by {ag_err:.1e}: not reported")
        vs_hand = mem / hand_mem if hand_mem else None
        vs_jit = mem / jit_mem
        if vs_hand is not None:
            verdict = ("met" if vs_hand <= 2.0 else "**missed**") + " (≤ 2× hand-written)"
            if (vs_hand <= 2.0) != (cold <= 2.0 * hand_cold):
                verdict += ("; missed" if vs_hand <= 2.0 else "; met") + " with free lists emptied"
        else:
            verdict = "no hand-written gradient"
            if ag_mem is not None:
                verdict += f": {mem / ag_mem:.3f}× autograd's gradient"
        rows.append(
            f"| {case.key} | {label} | {fmt_bytes(python_mem)} | {fmt_bytes(jit_mem)} | "
            f"{fmt_bytes(mem)} | {fmt_bytes(hand_mem)} | {fmt_bytes(ag_mem)} | "
            f"**{fmt_ratio(vs_hand)}** | {fmt_ratio(cold / hand_cold if hand_mem else None)} | "
            f"{fmt_ratio(vs_jit)} | "
            f"{fmt_ratio(ag_mem / mem if ag_mem else None)} | {verdict} |")
        BC.log("      " + rows[-1])
    return rows


WORKLOAD_HEADER = (
    "| workload | spelling | objective, CPython | objective, tl.jit | tl.grad | "
    "hand-written gradient | autograd gradient | tapeless ÷ hand-written | "
    "the same, free lists emptied | tapeless ÷ objective (tl.jit) | autograd ÷ tapeless | "
    "verdict |\n|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")


# --- part 2: long loops over their length ----------------------------------------------------


def loop_ways(fn: Callable, argnums: int | tuple[int, ...], first_args: tuple,
              budgets: tuple[int, ...], off: tuple[str, int]) -> list[tuple[str, Any, str, int]]:
    """(label, gradient, mode, budget): saving every iteration under `off`, checkpointed
    under each budget; each compiled under its settings, checked to be (or not be)
    checkpointed code."""
    ways = [(f"saving all (`\"{off[0]}\"`" + (")" if off[1] == 1 << 30 else
                                              f", {off[1] // 1000} kB)"), *off)]
    ways += [(f"checkpointed, budget {b // 1000:g} kB", "auto", b) for b in budgets]
    made = []
    for label, mode, budget in ways:
        with loop_settings(mode, budget):
            g = tl.grad(fn, argnums=argnums)
            g(*first_args)
        source = g.source_for(*first_args)
        checkpointed = "checkpoint_for" in source or "checkpoint_while_loop" in source
        assert checkpointed == label.startswith("checkpointed"), (fn.__name__, label)
        made.append((label, g, mode, budget))
    return made


def loop_table(title: str, ways: list, hand: Callable, args_of: Callable[[int], tuple],
               sizes: tuple[int, ...], steps_of: Callable[[int], int]) -> list[str]:
    labels = [w[0] for w in ways] + ["hand-written"]
    lines = [title, "",
             "| n | " + " | ".join(f"{lab}: peak | CPU ms" for lab in labels) +
             " | " + " | ".join(f"{lab} ÷ hand" for lab in labels[:-1]) + " |",
             "|---:|" + "---:|---:|" * len(labels) + "---:|" * (len(labels) - 1)]
    peaks: dict[str, list[int]] = {lab: [] for lab in labels}
    for n in sizes:
        args = args_of(n)
        BC.log(f"   n = {n}")
        expected = BC.as_tuple(hand(*args))
        cells = []
        for label, g, mode, budget in [*ways, ("hand-written", hand, "never", 1 << 30)]:
            with loop_settings(mode, budget):  # (in case this n compiles again)
                start = time.process_time()
                got = BC.as_tuple(g(*args))
                cpu = time.process_time() - start
                err = BC.rel_error(got, expected)
                assert err < 1e-9, (label, n, err)
                mem = peak(g, *args, warm=False, cold=True)
            peaks[label].append(mem)
            cells.append(f"{fmt_bytes(mem)} | {cpu * 1e3:.0f}")
        hand_mem = peaks["hand-written"][-1]
        cells += [fmt_ratio(peaks[lab][-1] / hand_mem) for lab in labels[:-1]]
        lines.append(f"| {steps_of(n):,} | " + " | ".join(cells) + " |")
        BC.log("      " + lines[-1])
    if len(sizes) > 1:
        lo, hi = sizes[0], sizes[-1]
        doublings = math.log2(hi / lo)
        lines.append("")
        lines.append(f"Growth from n = {lo:,} to {hi:,} ({doublings:.1f} doublings): " +
                     "; ".join(f"{lab}: {(p[-1] - p[0]) / doublings / 1e3:+.1f} kB per "
                               f"doubling, {(p[-1] - p[0]) / (hi - lo):+.1f} B per step"
                               for lab, p in peaks.items()))
    return lines


def loops_report(sizes: tuple[int, ...], budgets: tuple[int, ...]) -> list[str]:
    A, y0 = C.rotation_data(64)
    out = []
    BC.log("rk4_steps: RK4, 64 dimensions, a `for` loop of n steps")
    ways = loop_ways(C.rk4_steps, (0, 1), (A, y0, 3), budgets, ("never", 1 << 30))
    out += loop_table(
        "RK4 over 64-dimension vectors, a `for` loop of n steps (`control_programs."
        "rk4_steps`), the gradient in (A, y0):", ways,
        lambda A, y0, n: CH.rk4_steps_grad(A, y0, n), lambda n: (A, y0, n), sizes,
        lambda n: n)
    BC.log("drift_while: a scalar `while` loop of n steps")
    ways = loop_ways(C.drift_while, (0, 1), (0.7, 0.3, 3 * C.DRIFT_STEP), budgets,
                     ("auto", 1 << 30))
    out += ["", ""]
    out += loop_table(
        "A scalar `while t < T` loop (`control_programs.drift_while`, T = n × 0.001: "
        "n steps, give or take one), the gradient in (k, x0); saving all: the default "
        "settings (a scalar loop is not checkpointed under the default budget):", ways,
        CH.drift_while_grad, lambda n: (0.7, 0.3, n * C.DRIFT_STEP), sizes,
        lambda n: drift_steps(n * C.DRIFT_STEP))
    return out


def drift_steps(T: float) -> int:
    """How many steps drift_while takes to reach T (t summed as it sums it)."""
    t, n = 0.0, 0
    while t < T:
        t, n = t + C.DRIFT_STEP, n + 1
    return n


# --- the report -------------------------------------------------------------------------------


def report(only: set[str], sizes: tuple[int, ...], workloads: bool = True,
           loops: bool = True, with_autograd: bool = True,
           budgets: tuple[int, ...] = LOOP_BUDGETS) -> list[str]:
    """The Markdown lines of the report (see the module's docstring)."""
    out = []
    if workloads:
        out += ["Every workload of bench/bench_control.py, default settings; tracemalloc's "
                "peak during one call after a warm-up call:", "", WORKLOAD_HEADER]
        for case in BC.CASES:
            if only and case.key not in only:
                continue
            BC.log(f"{case.key}: {case.title}")
            out += workload_rows(case, with_autograd)
        out += ["", "Workloads: " + "; ".join(f"`{c.key}`: {c.title}" for c in BC.CASES
                                              if not only or c.key in only)]
    if loops and sizes:
        if out:
            out += ["", ""]
        out += loops_report(sizes, budgets)
    return out


def main(argv: list[str] | None = None) -> None:
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--only", default="", help="part 1's workloads (comma-separated keys): "
                    + ", ".join(c.key for c in BC.CASES))
    ap.add_argument("--sizes", default="", help="part 2's loop lengths, comma-separated")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--no-loops", action="store_true")
    ap.add_argument("--no-workloads", action="store_true")
    ap.add_argument("--no-autograd", action="store_true")
    opts = ap.parse_args(argv)
    sizes = tuple(int(s) for s in opts.sizes.split(",") if s) or \
        (QUICK_SIZES if opts.quick else SIZES)
    from machine_info import cpu_model

    print(f"- CPU: {cpu_model()}; load average at start "
          + ", ".join(f"{x:.2f}" for x in os.getloadavg()))
    print(f"- {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}\n")
    lines = report(set(filter(None, opts.only.split(","))), sizes,
                   workloads=not opts.no_workloads, loops=not opts.no_loops,
                   with_autograd=not opts.no_autograd)
    print("\n".join(lines), flush=True)


if __name__ == "__main__":
    if not all(os.environ.get(k) == v for k, v in BC.ENV.items()):
        os.execve(sys.executable, [sys.executable, os.path.abspath(__file__), *sys.argv[1:]],
                  dict(os.environ, **BC.ENV))
    main()

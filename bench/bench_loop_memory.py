"""Memory of gradients through loops, against hand-written gradients (issue 12's target:
a gradient's peak memory at most 2x the hand-written one's, and O(log n) growth in the
loop's length with checkpointing on). Three parts:

1. RK4 over vectors (y' = A y, 64 dimensions), `n` steps, the loss |y_n|^2, over n:
   tapeless saving every iteration's values (`tl.config.loop_checkpoint = "never"`),
   tapeless with checkpointed loops (`"auto"`, with `tl.config.loop_memory` set to a
   budget that n = 250 steps exceed: the memory should grow like log(n)), and the
   hand-written discrete adjoint, saving each step's 4 stage inputs.
2. The LSTM of bench/workloads.py (2 layers, 14 wide) over the sequence length, the same
   three ways (the hand-written gradient: bench/handwritten.lstm_grad).
3. (Every workload of bench/bench_control.py at its benchmark size, against the
   hand-written gradient, is bench/bench_control_memory.py's.)
4. (`native`) RK4 as in 1. on both backends over n = 1,000, 10,000 and 100,000 (1,000 and
   10,000 with --quick): native and Python, each saving every iteration (`"never"`) and
   checkpointed (`"auto"`, the 200 kB budget), in one process. tracemalloc sees native
   code's arrays too (Numba's runtime allocates them through Python's allocator). The
   first call of each (Numba's compile included) is reported; times are medians of 3
   calls up to 10,000 steps, one call above.

5. (`while`) RK4 as in 1., written as a `while t < T` loop (its trip count unknown until
   it stops: T / h steps), over n = 1,000, 10,000 and 100,000 steps (1,000 and 10,000
   with --quick): Python and native, each saving every iteration (`"never"`) and
   checkpointed (`"auto"`, the 200 kB budget: the forward loop snapshots its state at a
   doubling stride once its saved values pass the budget). Run from another checkout
   (`cd base && python path/to/this --only while`) it measures that checkout's code: a
   base without checkpointed `while` loops saves every iteration under "auto" too (the
   table says whether the code was checkpointed).
6. (`recursion`) The recursive determinant (7x7) with its top levels checkpointed by the
   user (`control_programs.det_checkpointed_top`: `tl.checkpoint` of the minor, called
   for the rows above `levels`), and checkpointed by the optimizer under budgets of
   `tl.config.loop_memory` bytes (`opt.checkpoint.checkpoint_recursion`; the column
   "checkpointed code" says whether the checkout's gradient has it: run from another
   checkout, `cd base && python path/to/this --only recursion`, it measures that
   checkout's code): peak memory and time against the plain recursion and the
   hand-written gradient (which recomputes each minor's value in its backward pass);
   "streamed": the backward pass under budget 0 runs each level's children forward, one
   at a time (`opt.checkpoint.stream_recursion`). The filter spelling
   (`det_laplace_filter`) too, under a few settings.

Peak memory is tracemalloc's (the bytes Python and NumPy allocate during one call, the
arguments excluded); time is the median of a few calls without tracemalloc (CPU time in
6.). Every
gradient is checked against the hand-written one first. Prints Markdown tables.

    python bench/bench_loop_memory.py [--quick] [--only rk4,lstm,native,while,recursion]
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from timing import median_time, single_threaded  # noqa: E402

single_threaded()

import control_handwritten as CH  # noqa: E402
import control_programs as C  # noqa: E402
import numpy as np  # noqa: E402
from bench_control_memory import peak  # noqa: E402

import tapeless as tl  # noqa: E402

H = 0.001
BUDGET = 200_000  # bytes: about 50 steps of 64-dimension stage inputs


# RK4 over vectors, n steps of 0.001 (y' = A y), the loss |y_n|^2: the program of
# bench/bench_control_memory.py's loop table and its hand-written discrete adjoint.
rk4_loss = C.rk4_steps


def rk4_grad_by_hand(A, y0, n):
    """The gradient in A: the discrete adjoint, saving each step's stage inputs."""
    return CH.rk4_steps_grad(A, y0, n)[0]


def under(mode: str, budget: int, fn, *args) -> None:
    """Call `fn` once with the loop settings `mode` and `budget` (they are read when a
    function compiles for its arguments' kinds: the first call for each shape)."""
    saved = tl.config.loop_checkpoint, tl.config.loop_memory
    tl.config.loop_checkpoint, tl.config.loop_memory = mode, budget
    try:
        fn(*args)
    finally:
        tl.config.loop_checkpoint, tl.config.loop_memory = saved


def ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}"


def rk4_table(quick: bool) -> None:
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
    print("| steps | saving all: MB | ms | checkpointed: MB | ms | hand-written: MB | ms | "
          "saving ÷ hand (memory) | checkpointed ÷ hand (memory) |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for n in sizes:
        under("never", 1 << 30, saving, A, y0, n)
        under("auto", BUDGET, checkpointed, A, y0, n)
        expected = rk4_grad_by_hand(A, y0, n)
        for g in (saving, checkpointed):
            got = g(A, y0, n)
            assert np.allclose(got, expected, rtol=1e-9, atol=1e-12), n
        row = [str(n)]
        mems = []
        for fn in (saving, checkpointed, rk4_grad_by_hand):
            mem = peak(fn, A, y0, n)
            mems.append(mem)
            t = median_time(lambda fn=fn: fn(A, y0, n), repeat=3, number=1)
            row += [f"{mem / 1e6:.2f}", f"{t * 1e3:.0f}"]
        row += [ratio(mems[0], mems[2]), ratio(mems[1], mems[2])]
        print("| " + " | ".join(row) + " |", flush=True)
    assert "checkpoint_for" in checkpointed.source_for(A, y0, sizes[0])


def lstm_table(quick: bool) -> None:
    import handwritten as H
    import workloads as W

    sizes = (64, 256) if quick else (64, 256, 1024, 4096)
    args = W.lstm_data(2, sizes[0])
    tl.config.loop_checkpoint = "never"
    saving = tl.grad(W.lstm_objective, argnums=(0, 1))
    saving(*args)
    # ("auto" leaves this loop alone: what an iteration saves holds the layer loop's
    # stack and a list, whose size kinds do not bound, and checkpointing costs time even
    # where the run-time measurement then keeps everything. Asked for, it is done.)
    tl.config.loop_checkpoint, tl.config.loop_memory = "auto", BUDGET
    auto = tl.grad(W.lstm_objective, argnums=(0, 1))
    auto(*args)
    assert "checkpoint_" not in auto.source_for(*args)
    tl.config.loop_checkpoint = "always"
    checkpointed = tl.grad(W.lstm_objective, argnums=(0, 1))
    checkpointed(*args)
    tl.config.loop_checkpoint, tl.config.loop_memory = "auto", 1 << 30
    assert "checkpoint_" in checkpointed.source_for(*args)
    print()
    print(f"LSTM (bench/workloads.py, 2 layers, 14 wide) over the sequence length; "
          f"checkpointed: `loop_checkpoint = \"always\"`, budget {BUDGET // 1000} kB "
          "(\"auto\" does not checkpoint it: kinds do not bound what an iteration saves)")
    print()
    print("| characters | saving all: MB | ms | checkpointed: MB | ms | hand-written: MB | "
          "ms | saving ÷ hand (memory) | checkpointed ÷ hand (memory) |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for c in sizes:
        args = W.lstm_data(2, c)
        under("never", 1 << 30, saving, *args)
        under("always", BUDGET, checkpointed, *args)
        assert "checkpoint_" in checkpointed.source_for(*args)
        expected = H.lstm_grad(*args)
        for g in (saving, checkpointed):
            got = g(*args)
            for a, b in zip(got, expected, strict=True):
                assert np.allclose(a, b, rtol=1e-9, atol=1e-12), c
        row = [str(c)]
        mems = []
        for fn in (saving, checkpointed, H.lstm_grad):
            mem = peak(fn, *args)
            mems.append(mem)
            t = median_time(lambda fn=fn: fn(*args), repeat=3, number=1)
            row += [f"{mem / 1e6:.3f}", f"{t * 1e3:.1f}"]
        row += [ratio(mems[0], mems[2]), ratio(mems[1], mems[2])]
        print("| " + " | ".join(row) + " |", flush=True)


def measured(made: list, args: tuple, expected: object, many: bool
             ) -> tuple[list[int], list[float]]:
    """Each gradient of `made` at `args`: its peak memory and time (the median of 3
    calls with `many`, else the call that is checked), each checked against `expected`
    (None: the first one's result)."""
    mems, times = [], []
    for g in made:
        start = time.perf_counter()
        got = g(*args)
        once = time.perf_counter() - start
        if expected is None:
            expected = got
        assert np.allclose(got, expected, rtol=1e-9, atol=1e-12), args[2]
        mems.append(peak(g, *args, warm=False))
        times.append(median_time(lambda g=g: g(*args), repeat=3, number=1)
                     if many else once)
    return mems, times


def native_table(quick: bool) -> None:
    rng = np.random.default_rng(0)
    A, y0 = rng.normal(size=(64, 64)) / 8, rng.normal(size=64)
    sizes = (1000, 10000) if quick else (1000, 10000, 100000)
    ways = [("native, saving all", "native", "never"),
            ("native, checkpointed", "native", "auto"),
            ("Python, saving all", "python", "never"),
            ("Python, checkpointed", "python", "auto")]
    made = []
    firsts = []
    for _, backend, mode in ways:
        # (The settings are read when a function compiles: at its first call.)
        tl.config.loop_checkpoint, tl.config.loop_memory = mode, BUDGET
        g = tl.grad(rk4_loss, backend=backend)
        start = time.perf_counter()
        g(A, y0, 10)
        firsts.append(time.perf_counter() - start)
        made.append(g)
    tl.config.loop_checkpoint, tl.config.loop_memory = "auto", 1 << 30
    for (label, backend, _), g in zip(ways, made, strict=True):
        entry = g._get(g.bind((A, y0, 10), {})).fn
        if backend == "native":
            assert entry.is_native, entry.fallback
        assert ("checkpoint_for" in g.source_for(A, y0, 10)) == ("checkpointed" in label)
    print()
    print(f"RK4, 64 dimensions, on both backends; checkpointed: `loop_checkpoint = \"auto\"`, "
          f"budget {BUDGET // 1000} kB. Peak memory (tracemalloc) and time of one gradient; "
          "first call (compile included, 10 steps): " +
          ", ".join(f"{label} {t * 1e3:.0f} ms"
                    for (label, _, _), t in zip(ways, firsts, strict=True)))
    print()
    print("| steps | " + " | ".join(f"{label}: MB | ms" for label, _, _ in ways) +
          " | native checkpointed ÷ saving (memory, time) | Python ÷ native (checkpointed, "
          "time) |")
    print("|---:|" + "---:|---:|" * len(ways) + "---:|---:|")
    for n in sizes:
        # (Checked against the hand-written adjoint up to 10,000 steps, above against the
        # first way's gradient; above 10,000 steps the checked call is the timed one.)
        expected = rk4_grad_by_hand(A, y0, n) if n <= 10000 else None
        mems, times = measured(made, (A, y0, n), expected, many=n <= 10000)
        row = [str(n)] + [f"{m / 1e6:.2f} | {t * 1e3:.0f}"
                          for m, t in zip(mems, times, strict=True)]
        row += [f"{ratio(mems[1], mems[0])}, {ratio(times[1], times[0])}",
                ratio(times[3], times[1])]
        print("| " + " | ".join(row) + " |", flush=True)


def rk4_while_loss(A, y0, T):
    y = y0
    t = 0.0
    while t < T:
        k1 = A @ y
        k2 = A @ (y + 0.5 * H * k1)
        k3 = A @ (y + 0.5 * H * k2)
        k4 = A @ (y + H * k3)
        y = y + (H / 6.0) * (k1 + 2.0 * k2 + 2.0 * k3 + k4)
        t = t + H
    return np.sum(y * y)


def while_steps(T: float) -> int:
    """How many steps `rk4_while_loss` takes to reach T (t summed as it sums it)."""
    t, n = 0.0, 0
    while t < T:
        t, n = t + H, n + 1
    return n


def while_table(quick: bool) -> None:
    rng = np.random.default_rng(0)
    A, y0 = rng.normal(size=(64, 64)) / 8, rng.normal(size=64)
    sizes = (1000, 10000) if quick else (1000, 10000, 100000)
    ways = [("Python, saving all", "python", "never"),
            ("Python, checkpointed", "python", "auto"),
            ("native, saving all", "native", "never"),
            ("native, checkpointed", "native", "auto")]
    made = []
    for _, backend, mode in ways:
        tl.config.loop_checkpoint, tl.config.loop_memory = mode, BUDGET
        g = tl.grad(rk4_while_loss, backend=backend)
        g(A, y0, 10 * H)
        made.append(g)
    tl.config.loop_checkpoint, tl.config.loop_memory = "auto", 1 << 30
    marks = []
    for (label, backend, _), g in zip(ways, made, strict=True):
        entry = g._get(g.bind((A, y0, 10 * H), {})).fn
        native = "" if backend == "python" else \
            (" (native)" if entry.is_native else " (fell back to Python)")
        checkpointed = "checkpoint_while_loop" in g.source_for(A, y0, 10 * H)
        marks.append(f"{label}: {'checkpointed' if checkpointed else 'saving'}{native}")
    print()
    print(f"RK4, 64 dimensions, `while t < T`, budget {BUDGET // 1000} kB; peak memory "
          "(tracemalloc) and time of one gradient (median of 3 up to 10,000 steps, one "
          "call above). Code: " + "; ".join(marks))
    print()
    print("| steps | " + " | ".join(f"{label}: MB | ms" for label, _, _ in ways) +
          " | Python checkpointed ÷ saving (memory, time) | native checkpointed ÷ saving "
          "(memory, time) |")
    print("|---:|" + "---:|---:|" * len(ways) + "---:|---:|")
    for n in sizes:
        T = n * H
        steps = while_steps(T)
        expected = rk4_grad_by_hand(A, y0, steps) if n <= 10000 else None
        mems, times = measured(made, (A, y0, T), expected, many=n <= 10000)
        row = [str(steps)] + [f"{m / 1e6:.2f} | {t * 1e3:.0f}"
                              for m, t in zip(mems, times, strict=True)]
        row += [f"{ratio(mems[1], mems[0])}, {ratio(times[1], times[0])}",
                f"{ratio(mems[3], mems[2])}, {ratio(times[3], times[2])}"]
        print("| " + " | ".join(row) + " |", flush=True)


def cpu_time(fn, repeat: int = 7) -> float:
    """The median CPU time (process time) of one call over `repeat` calls, after one."""
    fn()
    times = []
    for _ in range(repeat):
        start = time.process_time()
        fn()
        times.append(time.process_time() - start)
    return sorted(times)[repeat // 2]


def recursion_table() -> None:
    (A,) = C.det_data()
    expected = CH.det_laplace_grad(A)
    print()
    print("The recursive determinant 7×7: the plain recursion, its top levels "
          "checkpointed with `tl.checkpoint` (`det_checkpointed_top(levels)`), and the "
          "recursion checkpointed by the optimizer under a budget (`tl.config.loop_memory`)")
    print()
    print("| gradient | checkpointed code | MB | CPU ms | ÷ hand (memory) | ÷ hand (time) |")
    print("|---|---|---:|---:|---:|---:|")
    hand_mem = peak(CH.det_laplace_grad, A)
    hand_t = cpu_time(lambda: CH.det_laplace_grad(A))
    rows: list[tuple[str, object, str, int]] = [
        ("hand-written", CH.det_laplace_grad, "never", 1 << 30),
        ("tapeless, plain (never)", tl.grad(C.det_laplace), "never", 1 << 30)]
    rows += [(f"tapeless, tl.checkpoint levels {n} (never)", tl.grad(C.det_checkpointed_top(n)),
              "never", 1 << 30) for n in (3, 5)]
    rows.append(("tapeless, always, budget 1 GiB", tl.grad(C.det_laplace), "always", 1 << 30))
    for budget in (300_000, 30_000, 3_000, 0):
        rows.append((f"tapeless, auto, budget {budget / 1000:g} kB", tl.grad(C.det_laplace),
                     "auto", budget))
    # (the enumerate + comprehension spelling: its backward loop carries the total's
    # sensitivity through the conditional expression's records, not streamed)
    rows.append(("filter spelling, plain (never)", tl.grad(C.det_laplace_filter), "never",
                 1 << 30))
    for budget in (3_000, 0):
        rows.append((f"filter spelling, auto, budget {budget / 1000:g} kB",
                     tl.grad(C.det_laplace_filter), "auto", budget))
    for name, g, mode, budget in rows:
        under(mode, budget, g, A)  # (compiled under these settings)
        assert np.allclose(g(A), expected, rtol=1e-9, atol=1e-12), name
        code = "–"
        if hasattr(g, "source_for"):
            code = "yes" if "recursion_call" in g.source_for(A) else "no"
            code += ", streamed" if "_stream" in g.source_for(A) else ""
        mem = peak(g, A)
        t = cpu_time(lambda g=g: g(A))
        print(f"| {name} | {code} | {mem / 1e6:.4f} | {t * 1e3:.1f} | "
              f"{ratio(mem, hand_mem)} | {ratio(t, hand_t)} |", flush=True)


def main() -> None:
    quick = "--quick" in sys.argv
    only = set()
    if "--only" in sys.argv:
        only = set(sys.argv[sys.argv.index("--only") + 1].split(","))
    if not only or "rk4" in only:
        rk4_table(quick)
    if not only or "lstm" in only:
        lstm_table(quick)
    if not only or "native" in only:
        native_table(quick)
    if not only or "while" in only:
        while_table(quick)
    if not only or "recursion" in only:
        recursion_table()


if __name__ == "__main__":
    main()

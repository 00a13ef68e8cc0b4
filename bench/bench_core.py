"""Speed benchmarks of the compiler core; prints a Markdown report.

    python bench/bench_core.py            # full run (about a minute)
    python bench/bench_core.py --quick    # fewer repetitions, for a smoke test

Sections (see bench/README.md for what each number means and the targets):
  (a) compile latency of a realistic ~50-line function (bench/programs_core.py),
      "cold file" (file read + ast.parse included) and "warm file" (module AST cached);
  (b) compile latency of every program of the differential corpus (tests/corpus/programs.py);
  (c) run-time overhead of compiled code over CPython: scalar loops and NumPy-bound code;
  (d) the scalar-loop gradient against the CPython primal loop and the hand-written one.

The allocator and BLAS thread settings must be in the environment before NumPy is
imported, so the script re-executes itself with them when they are missing.
"""

from __future__ import annotations

import os
import sys

ENV = {
    "MALLOC_MMAP_THRESHOLD_": "67108864",
    "MALLOC_TRIM_THRESHOLD_": "268435456",
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
}

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
CORPUS = os.path.join(ROOT, "tests", "corpus", "programs.py")


def ensure_env() -> None:
    """Re-exec this script with ENV set, unless it already is (before importing NumPy)."""
    if all(os.environ.get(k) == v for k, v in ENV.items()):
        return
    if "numpy" in sys.modules:
        raise RuntimeError("numpy was imported before the benchmark environment was set")
    env = dict(os.environ, **ENV)
    os.execve(sys.executable, [sys.executable, os.path.abspath(__file__), *sys.argv[1:]], env)


# --- helpers (no NumPy at module level) ---------------------------------------------


def median(xs: list[float]) -> float:
    s = sorted(xs)
    n = len(s)
    return s[n // 2] if n % 2 else 0.5 * (s[n // 2 - 1] + s[n // 2])


def quantile(xs: list[float], q: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, int(round(q * (len(s) - 1))))]


def ms(seconds: float) -> str:
    return f"{seconds * 1e3:.2f}"


def verdict(ok: bool) -> str:
    return "met" if ok else "**MISSED**"


def machine() -> list[str]:
    import platform

    import numpy as np
    from machine_info import cpu_model, usable_cores

    model = cpu_model()
    usable = usable_cores()
    try:
        load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        load = "n/a"
    env = " ".join(f"{k}={os.environ.get(k)}" for k in ENV)
    busy = []
    try:
        if os.getloadavg()[0] > 0.5 * (usable or 1):
            busy = [f"- **warning: the machine is busy (load {load} on {usable} cores); "
                    "timings are unreliable, ratios less so (interleaved)**"]
    except OSError:
        pass
    return [
        f"- CPU: {model}; {os.cpu_count()} logical cores ({usable} usable); "
        f"load average {load}",
        f"- Python {platform.python_version()} ({platform.python_implementation()}), "
        f"NumPy {np.__version__}, {platform.system()} {platform.release()}",
        f"- environment: {env}",
    ] + busy


# --- (a) and (b): compile latency ---------------------------------------------------


def compile_for(jf: object, call: tuple | None) -> object:
    """Compile `jf` as its first call with `call` = (args, kwargs) would (tapeless may
    specialize the code to the arguments' kinds), or generically when `call` is None or
    this version of tapeless does not specialize."""
    import inspect

    get = jf._get  # type: ignore[attr-defined]
    if call is not None and len(inspect.signature(get).parameters) >= 1:
        args, kwargs = call
        bind = getattr(jf, "bind", None)
        return get(bind(tuple(args), kwargs) if bind is not None else tuple(args))
    return get()


class CompileTimer:
    """Times source-to-callable, `tl.jit(fn)._get()`, with the compile caches cleared.

    The stages are timed by wrapping the functions `tapeless.api.load` calls (in this
    process only): `parse` (front end), `copy_module` + `optimize` (optimizer, when
    present) and `compile_graph` (code generation, CPython `compile()` and `exec`)."""

    STAGES = {"copy_module": "opt", "optimize": "opt", "compile_graph": "codegen"}

    def __init__(self) -> None:
        import linecache
        import time

        import tapeless as tl
        from tapeless import api
        from tapeless.frontend import parser, source

        self.tl, self.api, self.parser, self.source = tl, api, parser, source
        self.linecache = linecache
        self.stage_times: dict[str, float] = {}
        for name, stage in self.STAGES.items():
            fn = getattr(api, name, None)
            if fn is None or getattr(fn, "__bench_wrapped__", False):
                continue

            def timed(*args: object, __fn: object = fn, __stage: str = stage,
                      **kwargs: object) -> object:
                t0 = time.perf_counter()
                try:
                    return __fn(*args, **kwargs)  # type: ignore[operator]
                finally:
                    self.stage_times[__stage] = self.stage_times.get(__stage, 0.0) + \
                        time.perf_counter() - t0

            timed.__bench_wrapped__ = True  # type: ignore[attr-defined]
            setattr(api, name, timed)

    def clear(self, fn: object, cold_file: bool) -> None:
        self.parser.RESOLVER.graphs.clear()
        if cold_file:
            filename = fn.__code__.co_filename  # type: ignore[attr-defined]
            self.source._module_cache.pop(filename, None)
            for key in [k for k in getattr(self.source, "_segment_cache", {}) if k[0] == filename]:
                self.source._segment_cache.pop(key)
            self.linecache.cache.pop(filename, None)

    def forget(self, compiled: object) -> None:
        """Drop what a compilation registered globally (not timed)."""
        filename = compiled.filename  # type: ignore[attr-defined]
        self.api.GENERATED.pop(filename, None)
        self.linecache.cache.pop(filename, None)

    def once(self, fn: object, cold_file: bool, call: tuple | None = None
             ) -> dict[str, object]:
        """One timed compile, for a call with `call` = (args, kwargs) when given (what
        the first such call compiles); total, CPU, front end, optimizer, codegen."""
        import time

        self.clear(fn, cold_file)
        jf = self.tl.jit(fn)
        self.stage_times.clear()
        c0 = time.thread_time()
        t0 = time.perf_counter()
        self.parser.parse(fn)  # the front end; `_get` finds the graph cached
        t1 = time.perf_counter()
        compiled = compile_for(jf, call)
        t2 = time.perf_counter()
        c2 = time.thread_time()
        self.forget(compiled)
        return {"total": t2 - t0, "cpu": c2 - c0, "front": t1 - t0,
                "opt": self.stage_times.get("opt", 0.0),
                "codegen": self.stage_times.get("codegen", 0.0), "compiled": compiled}

    def py_compile_time(self, compiled: object, reps: int = 5) -> float:
        """Median time of CPython's compile()+exec() of the generated source alone."""
        import time

        src = compiled.source  # type: ignore[attr-defined]
        times = []
        for _ in range(reps):
            ns: dict = {"np": None, "math": None, "_rt": None}
            t0 = time.perf_counter()
            exec(compile(src, "<bench>", "exec"), ns)  # noqa: S102
            times.append(time.perf_counter() - t0)
        return median(times)

    def series(self, fn: object, reps: int, cold_file: bool, call: tuple | None = None
               ) -> dict[str, list]:
        import gc

        out: dict[str, list] = {"total": [], "cpu": [], "front": [], "opt": [],
                                "codegen": [], "compiled": []}
        for _ in range(reps):
            gc.collect()
            for key, value in self.once(fn, cold_file, call).items():
                out[key].append(value)
        return out


def section_compile_core(timer: CompileTimer, reps: int) -> tuple[list[str], dict]:
    import inspect
    import time

    import programs_core as pc

    out = ["## (a) Compile latency of a realistic 50-line function", ""]
    fn = pc.train_step
    nlines = len(inspect.getsource(fn).splitlines())
    # The very first compilation in a process also builds one-off tables (the
    # backend's table of known NumPy/math names, primitive lookups): report it apart.
    timer.clear(fn, cold_file=True)
    t0 = time.perf_counter()
    first = timer.tl.jit(fn)
    call = (pc.make_train_inputs(), {})
    timer.forget(compile_for(first, call))
    first_time = time.perf_counter() - t0
    # warm-up (imports, caches of the interpreter)
    timer.series(fn, 3, cold_file=False, call=call)
    cold = timer.series(fn, reps, cold_file=True, call=call)
    warm = timer.series(fn, reps, cold_file=False, call=call)
    compiled = warm["compiled"][-1]
    pyc = timer.py_compile_time(compiled)
    out += [
        f"`bench/programs_core.py:train_step` ({nlines} source lines, including a nested "
        f"`forward` and `clip`; generated module "
        f"{len(compiled.source.splitlines())} lines). {reps} repetitions each; before "
        "each, `RESOLVER.graphs` is cleared (and, for *cold file*, the parsed-source caches "
        "`source._module_cache` and `source._segment_cache` and the `linecache` entry of "
        "the file).",
        "",
        "| variant | median ms | worst ms | CPU median ms | front end (parse) "
        "| optimizer (copy+optimize) | codegen (+compile+exec) | target | |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    results = {}
    for label, s in (("cold file", cold), ("warm file", warm)):
        med = median(s["total"])
        results[label] = med
        out.append(
            f"| {label} | {ms(med)} | {ms(max(s['total']))} | {ms(median(s['cpu']))} | "
            f"{ms(median(s['front']))} | "
            f"{ms(median(s['opt']))} | {ms(median(s['codegen']))} | < 20 | "
            f"{verdict(med < 0.020)} |")
    out += [
        "",
        f"- first compilation in the process (one-off tables included): {ms(first_time)} ms",
        "- times are wall-clock; *CPU* is the compiling thread's CPU time (`thread_time`), "
        "which waiting for a busy machine's cores does not inflate; stage columns are "
        "wall-clock medians in ms; the optimizer column is 0 when tapeless has no "
        "optimizer or it is off (`TAPELESS_OPTIMIZE=0`)",
        f"- of codegen, CPython's own `compile()`+`exec()` of the generated source: "
        f"{ms(pyc)} ms",
        "",
    ]
    return out, results


# --- (b) the differential corpus ------------------------------------------------------


def load_corpus() -> tuple[list[tuple[str, object, tuple | None]], str]:
    """The corpus programs as (name, function, first call) triples, the call being
    (args, kwargs) or None; or ([], why not)."""
    import importlib
    import inspect
    import types

    if not os.path.exists(CORPUS):
        return [], f"`{os.path.relpath(CORPUS, ROOT)}` does not exist (yet)"
    tests_dir = os.path.dirname(os.path.dirname(CORPUS))
    if tests_dir not in sys.path:
        sys.path.insert(0, tests_dir)  # the tests import it as `corpus.programs`
    try:
        mod = importlib.import_module("corpus.programs")
    except Exception as exc:  # noqa: BLE001 - report and skip
        return [], f"could not import the corpus: {type(exc).__name__}: {exc}"
    fns: list[tuple[str, object, tuple | None]] = []
    seen: set[int] = set()

    def first_call(arg_sets: object) -> tuple | None:
        if not isinstance(arg_sets, (list, tuple)) or not arg_sets:
            return None
        a = arg_sets[0]
        if hasattr(a, "args") and hasattr(a, "kwargs"):
            return tuple(a.args), dict(a.kwargs)
        return (tuple(a), {}) if isinstance(a, tuple) else None

    def add(name: str | None, fn: object, call: tuple | None) -> None:
        while hasattr(fn, "__tapeless_wrapped__"):
            fn = fn.__tapeless_wrapped__
        if isinstance(fn, types.FunctionType) and id(fn) not in seen:
            seen.add(id(fn))
            fns.append((name or fn.__qualname__, fn, call))

    # `CASES`: a list of (name, function, argument sets), filled by `@case`/`register`.
    registry = getattr(mod, "CASES", None)
    for entry in registry or ():
        if isinstance(entry, (tuple, list)):
            name = next((x for x in entry if isinstance(x, str)), None)
            fn = next((x for x in entry if isinstance(x, types.FunctionType)), None)
            call = first_call(next((x for x in entry if isinstance(x, list)), None))
        else:
            name, fn = getattr(entry, "name", None), getattr(entry, "fn", entry)
            call = None
        add(name, fn, call)
    if fns:
        return fns, "`CASES`"
    for name, fn in inspect.getmembers(mod, inspect.isfunction):
        if fn.__module__ == mod.__name__ and not name.startswith("_"):
            add(name, fn, None)
    return fns, "no `CASES` registry: every public function of the module"


def corpus_file_parse_time() -> float:
    """Reading and `ast.parse`-ing the corpus file once (what its first compile pays)."""
    import ast
    import time

    t0 = time.perf_counter()
    with open(CORPUS) as fh:
        ast.parse(fh.read(), CORPUS)
    return time.perf_counter() - t0


def section_corpus(timer: CompileTimer, reps: int) -> list[str]:
    out = ["## (b) Compile latency of the differential corpus", ""]
    fns, note = load_corpus()
    if not fns:
        return out + [f"Skipped: {note}.", ""]
    per: list[tuple[float, float, float, float, str]] = []
    failures: list[str] = []
    for name, fn, call in fns:
        try:
            timer.once(fn, False, call)  # warm-up: the file's AST, this program's paths
            s = timer.series(fn, reps, cold_file=False, call=call)
        except Exception as exc:  # noqa: BLE001 - a failure is a finding, not a crash
            failures.append(f"{name} ({type(exc).__name__}: {str(exc).splitlines()[0][:80]})")
            continue
        per.append((median(s["total"]), max(s["total"]), median(s["front"]),
                    median(s["opt"]), name))
    if not per:
        return out + [f"Skipped: none of the {len(fns)} programs compiled.", ""]
    meds = [p[0] for p in per]
    worst = max(per, key=lambda p: p[1])
    out += [
        f"{len(per)} programs (from {note}) compiled for their first argument set, warm "
        f"file, {reps} repetitions "
        "each, `RESOLVER.graphs` cleared before each (so module-level helpers a program "
        "calls are compiled again too); per program the median over repetitions. "
        f"Reading and parsing the {len(open(CORPUS).readlines())}-line corpus file "
        f"itself (paid once per file, by its first compile): {ms(corpus_file_parse_time())} "
        "ms.",
        "",
        "| statistic over programs | ms |",
        "|---|---:|",
        f"| median of per-program medians | {ms(median(meds))} |",
        f"| 90th percentile of per-program medians | {ms(quantile(meds, 0.9))} |",
        f"| slowest program (median) | {ms(max(meds))} |",
        f"| worst single compile (`{worst[4]}`) | {ms(worst[1])} |",
        f"| total, all programs once (sum of medians) | {ms(sum(meds))} |",
        "",
        "Slowest five (median ms; of which front end, optimizer):",
        "",
    ]
    for med, _, front, opt, name in sorted(per, reverse=True)[:5]:
        out.append(f"- `{name}`: {ms(med)} ({ms(front)} front end, {ms(opt)} optimizer)")
    if failures:
        out += ["", f"{len(failures)} programs failed to compile (not timed):", ""]
        out += [f"- {f}" for f in failures[:20]]
        if len(failures) > 20:
            out.append(f"- ... and {len(failures) - 20} more")
    out.append("")
    return out


# --- (c) run-time overhead ------------------------------------------------------------


def calibrate(call: object, min_time: float) -> int:
    """Calls per sample so that one sample takes at least `min_time` seconds."""
    import time

    k = 1
    while True:
        t0 = time.perf_counter()
        for _ in range(k):
            call()  # type: ignore[operator]
        dt = time.perf_counter() - t0
        if dt >= min_time:
            return k
        k = max(k + 1, int(k * min_time * 1.2 / max(dt, 1e-6)))


def interleaved(a: object, b: object, samples: int, min_time: float) -> dict[str, object]:
    """Alternate samples of `a` (CPython) and `b` (compiled), ABBA order, each sample of
    k calls lasting >= min_time; per-call seconds."""
    import gc
    import time

    k = max(calibrate(a, min_time), calibrate(b, min_time))
    ta: list[float] = []
    tb: list[float] = []
    ca: list[float] = []
    cb: list[float] = []

    def sample(f: object, cpu: list[float]) -> float:
        c0 = time.thread_time()
        t0 = time.perf_counter()
        for _ in range(k):
            f()  # type: ignore[operator]
        t1 = time.perf_counter()
        cpu.append((time.thread_time() - c0) / k)
        return (t1 - t0) / k

    gc.collect()
    gc.disable()
    try:
        for r in range(samples):
            if r % 2 == 0:
                ta.append(sample(a, ca))
                tb.append(sample(b, cb))
            else:
                tb.append(sample(b, cb))
                ta.append(sample(a, ca))
    finally:
        gc.enable()
    ratios = [y / x for x, y in zip(ta, tb, strict=True)]
    return {"a": ta, "b": tb, "k": k, "ratio": median(tb) / median(ta),
            "pair_ratio": median(ratios), "cpu_ratio": median(cb) / median(ca),
            "min_ratio": min(tb) / min(ta)}


def same(a: object, b: object) -> bool:
    """Equal results, to 1e-12 relative for floats and arrays, through tuples/lists."""
    import numpy as np

    if isinstance(a, (tuple, list)):
        return isinstance(b, (tuple, list)) and len(a) == len(b) and \
            all(same(x, y) for x, y in zip(a, b, strict=True))
    return bool(np.allclose(a, b, rtol=1e-12, atol=0))


SCALAR_N = 100_000
ARRAY_REPS = 4


def _array_args() -> tuple:
    import programs_core as pc

    return (*pc.make_array_inputs(), ARRAY_REPS)


OVERHEAD_ARGS = {
    "scalar_for": lambda: (0.5, SCALAR_N),
    "scalar_while": lambda: (0.5, SCALAR_N),
    "array_mlp": _array_args,
}


def section_overhead(samples: int, min_time: float) -> tuple[list[str], dict]:
    import programs_core as pc

    import tapeless as tl

    n, reps = SCALAR_N, ARRAY_REPS
    cases = [  # (label, function, arguments, loop iterations per call, target ratio)
        ("scalar `for` loop, 10^5 iterations", pc.scalar_for,
         OVERHEAD_ARGS["scalar_for"](), n, 1.20),
        ("scalar `while` loop, 10^5 iterations", pc.scalar_while,
         OVERHEAD_ARGS["scalar_while"](), n, 1.20),
        (f"NumPy-bound: {3 * reps} matmuls + {2 * reps} tanh of 256x256", pc.array_mlp,
         OVERHEAD_ARGS["array_mlp"](), reps, 1.05),
        ("for information: `train_step` (section a), 20 steps on 32x8 data", pc.train_step,
         pc.make_train_inputs(), 20, None),
    ]
    out = [
        "## (c) Run-time overhead of compiled code over CPython", "",
        f"Same function, same arguments; {samples} samples each, CPython and compiled "
        f"interleaved (ABBA); a sample is k calls lasting >= {min_time * 1e3:.0f} ms; "
        "times are per call. Ratio = median(compiled) / median(CPython); "
        "the paired ratio is the median of per-sample-pair ratios; the CPU ratio is the "
        "ratio of median thread CPU times; the min ratio is that of the fastest samples "
        "(the least disturbed by other processes).", "",
        "| workload | CPython median ms | compiled median ms | extra per iteration "
        "| k | ratio | paired ratio | CPU ratio | min ratio | target | |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    results = {}
    for label, fn, args, iters, target in cases:
        jf = tl.jit(fn)
        want, got = fn(*args), jf(*args)
        if not same(want, got):
            out.append(f"| {label} | result MISMATCH: {want!r} vs {got!r} | | | | | | | | | |")
            continue
        r = interleaved(lambda fn=fn, args=args: fn(*args),
                        lambda jf=jf, args=args: jf(*args), samples, min_time)
        ratio = r["ratio"]
        results[fn.__name__] = ratio
        extra = (median(r["b"]) - median(r["a"])) / iters
        extra_text = f"{extra * 1e9:.1f} ns" if abs(extra) < 1e-6 else f"{extra * 1e6:.1f} us"
        out.append(
            f"| {label} | {ms(median(r['a']))} | {ms(median(r['b']))} | {extra_text} | "
            f"{r['k']} | "
            f"{ratio:.3f} | {r['pair_ratio']:.3f} | {r['cpu_ratio']:.3f} | "
            f"{r['min_ratio']:.3f} | "
            + (f"<= {target:.2f} | {verdict(ratio <= target)} |" if target else "- | |"))
    out.append("")
    return out, results


def section_scalar_gradient(samples: int, min_time: float) -> list[str]:
    """The reverse-mode issue's scalar-loop target, measured alone (bench/run.py measures
    it too, interleaved with every peer in one process, which adds noise)."""
    import handwritten as hw
    import workloads as wl

    import tapeless as tl

    g = tl.grad(wl.scalar_loop)
    if not same(g(0.5), hw.scalar_loop_grad(0.5)):
        return ["## (d) Scalar-loop gradient", "", "gradient MISMATCH", ""]
    primal = interleaved(lambda: wl.scalar_loop(0.5), lambda: g(0.5), samples, min_time)
    hand = interleaved(lambda: hw.scalar_loop_grad(0.5), lambda: g(0.5), samples, min_time)
    r = primal["ratio"]
    return [
        "## (d) Scalar-loop gradient against the CPython primal loop", "",
        "`tl.grad(workloads.scalar_loop)(0.5)` (1,000 steps of `x = math.sin(x) * 1.01`) "
        "against the plain CPython loop and against the hand-written backward loop "
        "(`handwritten.scalar_loop_grad`), interleaved as in (c).", "",
        "| comparison | median ms (reference) | median ms (tapeless) | ratio | paired ratio "
        "| min ratio | target | |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
        f"| gradient ÷ CPython primal loop | {ms(median(primal['a']))} | "
        f"{ms(median(primal['b']))} | {r:.2f} | {primal['pair_ratio']:.2f} | "
        f"{primal['min_ratio']:.2f} | <= 2.50 | {verdict(r <= 2.5)} |",
        f"| gradient ÷ hand-written backward loop | {ms(median(hand['a']))} | "
        f"{ms(median(hand['b']))} | {hand['ratio']:.2f} | {hand['pair_ratio']:.2f} | "
        f"{hand['min_ratio']:.2f} | <= 1.50 | {verdict(hand['ratio'] <= 1.5)} |", ""]


def generated_sources() -> list[str]:
    import programs_core as pc

    import tapeless as tl

    out = ["## Generated source of the benchmarked functions", "",
           "As compiled for the benchmark's arguments (what the timed calls run).", ""]
    cases = [(pc.scalar_for, OVERHEAD_ARGS["scalar_for"]()),
             (pc.scalar_while, OVERHEAD_ARGS["scalar_while"]()),
             (pc.array_mlp, OVERHEAD_ARGS["array_mlp"]()),
             (pc.train_step, pc.make_train_inputs())]
    for fn, args in cases:
        jf = tl.jit(fn)
        src = jf.source_for(*args) if hasattr(jf, "source_for") else jf.source
        out += [f"`{fn.__name__}`:", "", "```python", src.rstrip(), "```", ""]
    return out


def main(argv: list[str]) -> int:
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer repetitions (smoke test)")
    ap.add_argument("--reps", type=int, default=30, help="compile repetitions for (a)")
    ap.add_argument("--corpus-reps", type=int, default=5, help="repetitions per corpus program")
    ap.add_argument("--samples", type=int, default=20, help="timing samples per side for (c)")
    ap.add_argument("--min-ms", type=float, default=50.0, help="minimum sample length for (c)")
    ap.add_argument("--no-source", action="store_true", help="omit the generated sources")
    args = ap.parse_args(argv)
    if args.quick:
        args.reps, args.corpus_reps, args.samples, args.min_ms = 5, 1, 4, 20.0
    sys.path.insert(0, HERE)

    report = ["# tapeless compiler-core benchmarks", ""] + machine() + [""]
    timer = CompileTimer()
    lines, _ = section_compile_core(timer, args.reps)
    report += lines
    report += section_corpus(timer, args.corpus_reps)
    lines, _ = section_overhead(args.samples, args.min_ms / 1e3)
    report += lines
    report += section_scalar_gradient(args.samples, args.min_ms / 1e3)
    if not args.no_source:
        report += generated_sources()
    print("\n".join(report))
    return 0


if __name__ == "__main__":
    ensure_env()
    sys.exit(main(sys.argv[1:]))

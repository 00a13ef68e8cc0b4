"""tapeless against hand-written NumPy, HIPS autograd, JAX and PyTorch on the workloads of
WORKLOADS.md (MLP, scalar loop, GMM, LSTM); prints a Markdown report.

    python bench/run.py                        # full run (about 5 minutes)
    python bench/run.py --output BENCHMARKS.md # also write the report to a file
    python bench/run.py --quick                # short samples, small LSTM: a smoke test
    python bench/run.py --large                # add GMM (64, 100) and LSTM l=4, c=4096

See bench/README.md for what each number means. The thread and allocator settings must be
in the environment before NumPy (or JAX, or torch) is imported, so the script re-executes
itself with them when they are missing. Compile latency and resident-memory figures are
measured in fresh subprocesses of this script (`--probe ...`, internal).
"""

from __future__ import annotations

import os
import sys

ENV = {
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "XLA_FLAGS": "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1",
    "MALLOC_MMAP_THRESHOLD_": "67108864",
    "MALLOC_TRIM_THRESHOLD_": "268435456",
}

HERE = os.path.dirname(os.path.abspath(__file__))


def source_revision(src: str) -> str:
    """The git commit of the tapeless source at `src`, with "+ uncommitted changes" and a
    digest of them when the tree differs from the commit."""
    import hashlib
    import subprocess

    def git(*a: str) -> str:
        return subprocess.run(["git", "-C", src, *a], capture_output=True, text=True,
                              timeout=30).stdout.strip()

    try:
        commit = git("rev-parse", "--short", "HEAD")
        diff = git("diff", "HEAD", "--", ".")
    except (OSError, subprocess.SubprocessError):
        commit, diff = "", ""
    if not commit:
        return f"`{src}` (not in a git checkout)"
    dirty = (f" + uncommitted changes to src/ (diff digest "
             f"{hashlib.sha1(diff.encode()).hexdigest()[:10]})" if diff else "")
    return f"commit {commit}{dirty}, from `{src}`"


def ensure_env() -> None:
    """Re-exec this script with ENV set, unless it already is (before importing NumPy).

    Unless --no-snapshot is given, the tapeless package is first copied to a temporary
    directory put first on PYTHONPATH, so that the whole run (and its subprocesses)
    measures one version of the compiler even if its source is edited meanwhile (tapeless
    reads its derivative rules' source files while compiling)."""
    snapshot = "--no-snapshot" not in sys.argv and "--probe" not in sys.argv
    if all(os.environ.get(k) == v for k, v in ENV.items()) and (
            not snapshot or os.environ.get("TAPELESS_BENCH_SNAPSHOT")):
        return
    if "numpy" in sys.modules:
        raise RuntimeError("numpy was imported before the benchmark environment was set")
    env = dict(os.environ, **ENV)
    if snapshot and not os.environ.get("TAPELESS_BENCH_SNAPSHOT"):
        import importlib.util
        import shutil
        import tempfile

        spec = importlib.util.find_spec("tapeless")
        if spec is not None and spec.origin:
            src = os.path.dirname(os.path.abspath(spec.origin))
            tmp = tempfile.mkdtemp(prefix="tapeless-bench-")
            shutil.copytree(src, os.path.join(tmp, "tapeless"),
                            ignore=shutil.ignore_patterns("__pycache__"))
            env["TAPELESS_BENCH_SNAPSHOT"] = tmp
            env["TAPELESS_BENCH_REVISION"] = source_revision(src) + " (copied at start)"
            env["PYTHONPATH"] = os.pathsep.join(p for p in (tmp, env.get("PYTHONPATH")) if p)
    os.execve(sys.executable, [sys.executable, os.path.abspath(__file__), *sys.argv[1:]], env)


if __name__ == "__main__":
    ensure_env()

# From here on NumPy may be imported.
import gc  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402
import traceback  # noqa: E402
from collections.abc import Callable  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402

sys.path.insert(0, HERE)

import handwritten as H  # noqa: E402
import numpy as np  # noqa: E402
import peers as P  # noqa: E402
import workloads as W  # noqa: E402

HAND, TAPELESS, AUTOGRAD, JAX, JAX_EAGER, TORCH = ("hand", "tapeless", "autograd", "jax",
                                                  "jax-eager", "torch")
TOOLS = [HAND, TAPELESS, AUTOGRAD, JAX, JAX_EAGER, TORCH]
PEERS = [AUTOGRAD, JAX, JAX_EAGER, TORCH]
LABEL = {HAND: "NumPy, hand-written", TAPELESS: "tapeless", AUTOGRAD: "HIPS autograd",
         JAX: "JAX (jit)", JAX_EAGER: "JAX (eager)", TORCH: "PyTorch (eager)"}
GRAD_RTOL = 1e-7


# --- the workloads ------------------------------------------------------------------------


@dataclass
class Case:
    key: str
    title: str
    kind: str                       # mlp, scalar, gmm, lstm: selects the peers' versions
    data: Callable[[], tuple]
    hand: Callable
    argnums: int | tuple[int, ...]
    # tapeless versions, tried in order until one compiles and differentiates correctly:
    # (label, function, why this variant exists)
    variants: list[tuple[str, Callable, str]]
    fd: dict = field(default_factory=dict)

    @property
    def fn(self) -> Callable:
        return self.variants[0][1]

    @property
    def nums(self) -> tuple[int, ...]:
        return (self.argnums,) if isinstance(self.argnums, int) else self.argnums


def lstm_variants() -> list[tuple[str, Callable, str]]:
    return [("tapeless", W.lstm_objective, ""),
            ("tapeless, layer loop inlined", W.lstm_objective_flat,
             "lstm_predict's layer loop written inline in lstm_objective's sequence loop "
             "(workloads.lstm_objective_flat)")]


def cases(quick: bool, large: bool) -> list[Case]:
    out = [
        Case("mlp64", "MLP 64×64, batch 32", "mlp", lambda: W.mlp_data(64, 32), H.mlp_grad,
             (0, 1, 2, 3), [("tapeless", W.mlp, "")]),
        Case("mlp1024", "MLP 1024×1024, batch 256", "mlp", lambda: W.mlp_data(1024, 256),
             H.mlp_grad, (0, 1, 2, 3), [("tapeless", W.mlp, "")]),
        Case("scalar", "Scalar loop, 1000 steps", "scalar", lambda: (0.5,),
             H.scalar_loop_grad, 0, [("tapeless", W.scalar_loop, "")],
             fd={"eps": 1e-3, "rtol": 1e-3}),   # the derivative is 2e-10: a large step
    ]
    gmm_sizes = [(2, 5), (10, 25), (64, 10)] + ([(64, 100)] if large else [])
    for d, K in gmm_sizes:
        out.append(Case(f"gmm_{d}_{K}", f"GMM n=1000, d={d}, K={K}", "gmm",
                        lambda d=d, K=K: W.gmm_data(1000, d, K), H.gmm_grad, (0, 1, 2, 3),
                        [("tapeless", W.gmm_objective, "")]))
    lstm_sizes = [(2, 64 if quick else 1024)] + ([(4, 4096)] if large else [])
    for layers, c in lstm_sizes:
        out.append(Case(f"lstm_{layers}_{c}", f"LSTM l={layers}, c={c}, b=14", "lstm",
                        lambda layers=layers, c=c: W.lstm_data(layers, c), H.lstm_grad,
                        (0, 1), lstm_variants()))
    return out


# --- helpers --------------------------------------------------------------------------------


def median(xs: list[float]) -> float:
    s = sorted(xs)
    n = len(s)
    return s[n // 2] if n % 2 else 0.5 * (s[n // 2 - 1] + s[n // 2])


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def as_tuple(r) -> tuple:
    return r if isinstance(r, tuple) else (r,)


def grad_error(got: tuple, ref: tuple) -> float:
    """Worst over the outputs of max|got - ref| / max|ref|."""
    if len(got) != len(ref):
        return math.inf
    worst = 0.0
    for a, b in zip(got, ref, strict=True):
        a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
        if a.shape != b.shape:
            return math.inf
        scale = max(float(np.max(np.abs(b))), 1e-300)
        worst = max(worst, float(np.max(np.abs(a - b))) / scale)
    return worst


def run_n(fn: Callable, n: int) -> float:
    gc.collect()
    t0 = time.perf_counter()
    for _ in range(n):
        fn()
    return time.perf_counter() - t0


def calibrate(fn: Callable, min_sample: float) -> int:
    """Warm-up, then the number of back-to-back calls that last at least `min_sample`."""
    fn()
    fn()
    n = 1
    while True:
        t = run_n(fn, n)
        if t >= min_sample:
            return n
        n = max(2 * n, int(n * 1.2 * min_sample / max(t, 1e-9)) + 1)


def measure_interleaved(fns: dict[str, Callable], min_sample: float,
                        repeats: int) -> dict[str, float]:
    """Median time per call of each function: after a warm-up, `repeats` rounds in which
    every function runs one sample of n back-to-back calls (n chosen per function so that a
    sample lasts at least `min_sample` seconds). Interleaving the samples exposes all the
    functions to the same drift in machine speed, so their ratios are robust."""
    counts = {k: calibrate(f, min_sample) for k, f in fns.items()}
    samples: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for k, f in fns.items():
            samples[k].append(run_n(f, counts[k]) / counts[k])
    return {k: median(v) for k, v in samples.items()}


def fmt_ms(s: float | None) -> str:
    if s is None:
        return "–"
    ms = s * 1e3
    return f"{ms:.3g}" if ms < 100 else f"{ms:.0f}"


def fmt_ratio(x: float | None) -> str:
    return "–" if x is None or not math.isfinite(x) else f"{x:.2f}"


def fmt_bytes(b: float | None) -> str:
    if b is None:
        return "–"
    if b < 1e6:
        return f"{b / 1e3:.1f} kB"
    return f"{b / 1e6:.1f} MB"


def verdict(ok: bool | None) -> str:
    return "–" if ok is None else ("met" if ok else "**MISSED**")


def short(exc: BaseException) -> str:
    msg = f"{type(exc).__name__}: {exc}".strip().splitlines()
    text = " ".join(line.strip() for line in msg if line.strip())
    return text if len(text) < 300 else text[:297] + "..."


# --- the tools ------------------------------------------------------------------------------


def setup_tool(tool: str, case: Case, args: tuple, variant: int = 0):
    """(primal, gradient, to_numpy) for one tool, as in peers.py."""
    if tool == HAND:
        fn = case.fn
        return (lambda: fn(*args)), (lambda: case.hand(*args)), as_tuple
    if tool == TAPELESS:
        import tapeless as tl

        fn = case.variants[variant][1]
        f = tl.jit(fn)
        g = tl.grad(fn, argnums=case.argnums)
        return (lambda: f(*args)), (lambda: g(*args)), as_tuple
    if tool == JAX_EAGER:
        return P.jax_setup(case.kind, args, jit=False)
    setup = {AUTOGRAD: P.autograd_setup, JAX: P.jax_setup, TORCH: P.torch_setup}[tool]
    return setup(case.kind, args)


def available(tool: str) -> str | None:
    """None if the tool can be imported, else why not."""
    mod = {AUTOGRAD: "autograd", JAX: "jax", JAX_EAGER: "jax", TORCH: "torch"}.get(tool)
    if mod is None:
        return None
    try:
        __import__(mod)
    except Exception as exc:  # noqa: BLE001
        return f"not installed ({short(exc)})"
    return None


@dataclass
class Result:
    tool: str
    label: str
    status: str = "ok"               # ok, or why it was skipped
    first: float | None = None       # first gradient call in this process (compiles)
    primal: float | None = None
    grad: float | None = None
    error: float | None = None       # relative error against the hand-written gradient
    mem_trace: float | None = None   # tracemalloc peak, bytes
    mem_rss: float | None = None     # RSS high-water increase in a fresh process, bytes
    mem_xla: float | None = None     # XLA temp + output buffers, bytes
    variant: int = 0
    failures: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.status == "ok"


def tracemalloc_peak(fn: Callable, tries: int = 3) -> float:
    """Peak traced memory of one call of `fn` over what was traced before it (the smallest
    of a few calls, after a warm-up call)."""
    import tracemalloc

    fn()
    best = math.inf
    for _ in range(tries):
        gc.collect()
        tracemalloc.start()
        try:
            base = tracemalloc.get_traced_memory()[0]
            r = fn()
            peak = tracemalloc.get_traced_memory()[1]
            del r
        finally:
            tracemalloc.stop()
        best = min(best, float(peak - base))
    return best


def check_tool(tool: str, case: Case, args: tuple, ref: tuple, opts):
    """Set the tool up and check its gradient; returns (Result, primal, gradient)."""
    res = Result(tool, LABEL[tool])
    why = available(tool)
    if tool == JAX_EAGER and case.kind == "lstm" and args[3].shape[0] > 64:
        # op by op, about 26 ms per character (1.7 s a gradient at c=64, in --quick)
        why = "skipped: about 27 s a gradient at c=1024 (1.7 s at c=64: see --quick)"
    if why:
        res.status = why
        return res, None, None
    nvariants = len(case.variants) if tool == TAPELESS else 1
    for variant in range(nvariants):
        if tool == TAPELESS:
            res.label = case.variants[variant][0]
        res.variant = variant
        try:
            primal, gradient, conv = setup_tool(tool, case, args, variant)
            t0 = time.perf_counter()
            out = gradient()
            res.first = time.perf_counter() - t0
            err = grad_error(conv(as_tuple(out)), ref)
        except Exception as exc:  # noqa: BLE001
            res.failures.append(f"{res.label}: {short(exc)}")
            if opts.verbose:
                traceback.print_exc()
            continue
        if not err <= GRAD_RTOL:
            res.failures.append(f"{res.label}: wrong gradient (relative error {err:.2e} "
                                "against the hand-written one)")
            continue
        res.error = err
        return res, primal, gradient
    res.status = "failed"
    return res, None, None


def bench_case(case: Case, args: tuple, ref: tuple, opts) -> dict[str, Result]:
    results: dict[str, Result] = {}
    fns: dict[str, Callable] = {}
    grads: dict[str, Callable] = {}
    for tool in TOOLS:
        log(f"   {tool}: setting up and checking the gradient")
        res, primal, gradient = check_tool(tool, case, args, ref, opts)
        results[tool] = res
        for f in res.failures:
            log(f"      failed: {f}")
        if res.ok:
            fns[f"{tool}/primal"] = primal
            fns[f"{tool}/grad"] = gradient
            grads[tool] = gradient
    log("   timing (interleaved)")
    times = measure_interleaved(fns, opts.min_sample, opts.repeats)
    for tool, res in results.items():
        if res.ok:
            res.primal, res.grad = times[f"{tool}/primal"], times[f"{tool}/grad"]
            log(f"      {tool}: primal {fmt_ms(res.primal)} ms, gradient {fmt_ms(res.grad)} ms")
    for tool in (HAND, TAPELESS, AUTOGRAD):
        if tool in grads:
            results[tool].mem_trace = tracemalloc_peak(grads[tool])
    if JAX in grads:
        g = grads[JAX]
        try:
            m = g.jitted.lower(*g.jargs).compile().memory_analysis()
            results[JAX].mem_xla = float(m.temp_size_in_bytes + m.output_size_in_bytes)
        except Exception:  # noqa: BLE001
            pass
    return results


# --- probes (fresh subprocesses) ----------------------------------------------------------


def vm_status() -> dict[str, float]:
    out = {}
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(("VmRSS", "VmHWM")):
                k, v = line.split(":", 1)
                out[k] = float(v.split()[0]) * 1024.0
    return out


def reset_high_water_mark() -> float:
    """Collect garbage, reset VmHWM to the current RSS and return the RSS (bytes)."""
    gc.collect()
    with open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")
    return vm_status()["VmRSS"]


def probe(kind: str, tool: str, case_key: str, mode: str, variant: int, opts) -> dict:
    """Runs in a fresh process; returns what is printed as JSON."""
    case = next(c for c in cases(opts.quick, opts.large) if c.key == case_key)
    args = case.data()
    if kind == "compile":
        if tool == TAPELESS:
            import tapeless as tl

            if mode == "warm":
                a = np.ones((3, 3))
                tl.grad(W.warmup_function, argnums=(0, 1))(a, a)
            fn = case.variants[variant][1]
            t0 = time.perf_counter()
            g = tl.grad(fn, argnums=case.argnums)
            g._get(args)
            t1 = time.perf_counter()
            # the resident-memory probe of the first call rides along (see "rss" below)
            before = reset_high_water_mark() if mode == "warm" else 0.0
            t1b = time.perf_counter()
            try:
                r = g(*args)
            except Exception as exc:  # noqa: BLE001
                return {"compile": t1 - t0, "error": short(exc)}
            t2 = time.perf_counter()
            out = {"compile": t1 - t0, "first": t2 - t1b + t1 - t0}
            if mode == "warm":
                out["rss"] = vm_status()["VmHWM"] - before
            del r
            return out
        if tool == JAX:
            import jax
            import jax.numpy as jnp

            jax.config.update("jax_enable_x64", True)
            if mode == "warm":
                a = jnp.ones((3, 3))
                jax.jit(jax.grad(lambda a: jnp.sum(jnp.tanh(a @ a) * jnp.exp(-a))))(a)
                jax.block_until_ready(a)
            _, gradient, _ = P.jax_setup(case.kind, args)
            t0 = time.perf_counter()
            gradient()
            t1 = time.perf_counter()
            return {"first": t1 - t0}
    if kind == "rss":
        # a small computation first, so that one-off initialization is not counted
        a = np.ones((4, 4))
        _ = np.tanh(a @ a)
        if tool == TORCH:
            import torch

            x = torch.ones(4, dtype=torch.float64, requires_grad=True)
            torch.autograd.grad(torch.sum(torch.tanh(x) * x), [x])
        _, gradient, _ = setup_tool(tool, case, args)
        before = reset_high_water_mark()
        r = gradient()
        after = vm_status()["VmHWM"]
        del r
        return {"rss": after - before}
    raise ValueError(kind)


def run_probe(kind: str, tool: str, case: Case, mode: str, variant: int, opts) -> dict:
    cmd = [sys.executable, os.path.abspath(__file__), "--probe", kind, tool, case.key, mode,
           str(variant)]
    if opts.quick:
        cmd.append("--quick")
    if opts.large:
        cmd.append("--large")
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    except subprocess.TimeoutExpired:
        return {"error": "timed out"}
    if p.returncode != 0:
        lines = [ln for ln in p.stderr.strip().splitlines() if ln.strip()]
        return {"error": lines[-1] if lines else f"exit status {p.returncode}"}
    return json.loads(p.stdout.strip().splitlines()[-1])


# --- the report -------------------------------------------------------------------------------


def machine() -> list[str]:
    import datetime
    import importlib.metadata as md
    import platform

    from machine_info import cpu_model, usable_cores

    model = cpu_model()
    ram = "unknown"
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemTotal"):
                    ram = f"{float(line.split()[1]) / 1024 ** 2:.1f} GiB"
    except OSError:
        pass
    usable = usable_cores()
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())

    def version(name: str) -> str:
        try:
            return md.version(name)
        except md.PackageNotFoundError:
            return "not installed"

    vers = ", ".join(f"{n} {version(n)}" for n in
                     ("numpy", "tapeless", "autograd", "jax", "jaxlib", "torch"))
    lines = [
        f"- tapeless: {tapeless_revision()}",
        f"- date: {datetime.datetime.now(datetime.UTC).strftime('%Y-%m-%d %H:%M UTC')}",
        f"- CPU: {model}; {os.cpu_count()} logical cores ({usable} usable); RAM {ram}; "
        f"load average at start {load}",
        f"- {platform.system()} {platform.release()}; Python {platform.python_version()}; "
        f"{vers}",
        "- environment: " + "; ".join(f"`{k}={v}`" for k, v in ENV.items())
        + "; `torch.set_num_threads(1)`; float64 everywhere (`jax_enable_x64`)",
    ]
    if os.getloadavg()[0] > 0.5 * (usable or 1):
        lines.append(f"- **warning: the machine was busy (load {load} on {usable} cores); "
                     "timings are unreliable**")
    return lines


def tapeless_revision() -> str:
    """Which tapeless source was measured."""
    if os.environ.get("TAPELESS_BENCH_REVISION"):
        return os.environ["TAPELESS_BENCH_REVISION"]
    import tapeless

    return source_revision(os.path.dirname(os.path.abspath(tapeless.__file__)))


def ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or b == 0:
        return None
    return a / b


def workload_table(case: Case, results: dict[str, Result], fd_err: float) -> list[str]:
    tl_res = results[TAPELESS]
    out = [f"### {case.title}", "",
           "| tool | primal (ms) | gradient (ms) | gradient ÷ primal | first gradient call (ms) "
           "| tapeless ÷ tool (gradient) | gradient error |",
           "|---|---:|---:|---:|---:|---:|---:|"]
    for tool in TOOLS:
        r = results[tool]
        if not r.ok:
            out.append(f"| {r.label} | {r.status} | | | | | |")
            continue
        err = f"{fd_err:.0e} (vs finite differences)" if tool == HAND else f"{r.error:.0e}"
        rel = ratio(tl_res.grad, r.grad) if tl_res.ok and tool != TAPELESS else None
        out.append(f"| {r.label} | {fmt_ms(r.primal)} | {fmt_ms(r.grad)} | "
                   f"{fmt_ratio(ratio(r.grad, r.primal))} | {fmt_ms(r.first)} | "
                   f"{fmt_ratio(rel)} | {err} |")
    out.append("")
    best = best_peer(results)
    if tl_res.ok:
        to_hand = ratio(tl_res.grad, results[HAND].grad)
        parts = [f"tapeless ÷ hand-written: **{fmt_ratio(to_hand)}**"]
        if best:
            parts.append(f"tapeless ÷ best peer ({results[best].label}): "
                         f"**{fmt_ratio(ratio(tl_res.grad, results[best].grad))}**")
        out += ["; ".join(parts) + ".", ""]
    for r in results.values():
        for f in r.failures:
            out += [f"- failed: {f}"]
    if any(r.failures for r in results.values()):
        out.append("")
    return out


def best_peer(results: dict[str, Result]) -> str | None:
    ok = [t for t in PEERS if results[t].ok]
    return min(ok, key=lambda t: results[t].grad) if ok else None


def main(argv: list[str]) -> int:
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="short samples, small LSTM")
    ap.add_argument("--large", action="store_true", help="add GMM (64,100), LSTM l=4 c=4096")
    ap.add_argument("--output", help="also write the report to this file")
    ap.add_argument("--only", help="comma-separated workload keys (e.g. mlp64,gmm_2_5)")
    ap.add_argument("--no-probes", action="store_true",
                    help="skip the subprocess measurements (compile latency, RSS)")
    ap.add_argument("--verbose", action="store_true", help="print tracebacks of failures")
    ap.add_argument("--no-snapshot", action="store_true",
                    help="import tapeless where it is installed instead of from a copy")
    ap.add_argument("--probe", nargs=5, metavar=("KIND", "TOOL", "CASE", "MODE", "VARIANT"),
                    help=argparse.SUPPRESS)
    opts = ap.parse_args(argv)
    opts.min_sample = 0.01 if opts.quick else 0.05
    opts.repeats = 3 if opts.quick else 7

    if opts.probe:
        kind, tool, key, mode, variant = opts.probe
        print(json.dumps(probe(kind, tool, key, mode, int(variant), opts)))
        return 0

    try:
        import torch

        torch.set_num_threads(1)
        torch.set_num_interop_threads(1)
    except Exception:  # noqa: BLE001
        pass
    try:
        import jax

        jax.config.update("jax_enable_x64", True)
    except Exception:  # noqa: BLE001
        pass

    selected = cases(opts.quick, opts.large)
    if opts.only:
        keys = opts.only.split(",")
        selected = [c for c in selected if c.key in keys]
    header = machine()
    t_start = time.perf_counter()

    all_results: dict[str, dict[str, Result]] = {}
    fd_errs: dict[str, float] = {}
    compile_rows: dict[str, dict[str, dict]] = {}
    for case in selected:
        log(f"== {case.title}")
        args = case.data()
        ref = as_tuple(case.hand(*args))
        fd_errs[case.key] = H.check_against_fd(case.fn, case.hand, args, case.nums, **case.fd)
        results = bench_case(case, args, ref, opts)
        all_results[case.key] = results
        if not opts.no_probes:
            variant = results[TAPELESS].variant
            rows = {}
            for tool, mode in [(TAPELESS, "cold"), (TAPELESS, "warm"), (JAX, "cold"),
                               (JAX, "warm")]:
                if results[tool].ok or (tool == TAPELESS and results[tool].failures):
                    log(f"   compile probe {tool} {mode}")
                    rows[f"{tool}-{mode}"] = run_probe("compile", tool, case, mode, variant,
                                                       opts)
            if results[TAPELESS].ok:
                results[TAPELESS].mem_rss = rows.get(f"{TAPELESS}-warm", {}).get("rss")
            for tool in (HAND, AUTOGRAD, TORCH):
                if results[tool].ok:
                    log(f"   memory probe {tool}")
                    got = run_probe("rss", tool, case, "-", variant, opts)
                    results[tool].mem_rss = got.get("rss")
            compile_rows[case.key] = rows

    # --- assemble the report ---
    out = ["# Benchmarks: tapeless against hand-written NumPy, autograd, JAX and PyTorch", "",
           "Generated by `python bench/run.py` (see bench/README.md for the method). Times are "
           "medians per call; only ratios carry over to other machines.", ""]
    out += ["## Machine", ""] + header + [""]
    out += summary_table(selected, all_results)
    out += targets_table(selected, all_results, compile_rows)
    out += ["## Workloads", ""]
    for case in selected:
        out += workload_table(case, all_results[case.key], fd_errs[case.key])
    if compile_rows:
        out += compile_table(selected, all_results, compile_rows)
    out += memory_table(selected, all_results)
    out += [f"_Total run time: {time.perf_counter() - t_start:.0f} s._", ""]
    text = "\n".join(out)
    snapshot = os.environ.get("TAPELESS_BENCH_SNAPSHOT")
    if snapshot and os.path.basename(snapshot).startswith("tapeless-bench-"):
        import shutil

        shutil.rmtree(snapshot, ignore_errors=True)
    print(text)
    if opts.output:
        with open(opts.output, "w") as fh:
            fh.write(text)
    return 0


def summary_table(selected: list[Case], all_results) -> list[str]:
    out = ["## Summary: gradient time (ms)", "",
           "| workload | " + " | ".join(LABEL[t] for t in TOOLS)
           + " | tapeless ÷ hand-written | tapeless ÷ best peer | tapeless gradient ÷ primal |",
           "|---|" + "---:|" * (len(TOOLS) + 3)]
    for case in selected:
        res = all_results[case.key]
        cells = []
        for t in TOOLS:
            r = res[t]
            cells.append(fmt_ms(r.grad) if r.ok else "failed" if r.status == "failed" else "–")
        tl_res = res[TAPELESS]
        best = best_peer(res)
        to_hand = ratio(tl_res.grad, res[HAND].grad) if tl_res.ok else None
        to_best = ratio(tl_res.grad, res[best].grad) if tl_res.ok and best else None
        own = ratio(tl_res.grad, tl_res.primal) if tl_res.ok else None
        best_name = f" ({res[best].label})" if best and to_best is not None else ""
        note = "" if not tl_res.ok or tl_res.variant == 0 else f" [{tl_res.label}]"
        out.append(f"| {case.title}{note} | " + " | ".join(cells)
                   + f" | {fmt_ratio(to_hand)} | {fmt_ratio(to_best)}{best_name} | "
                   f"{fmt_ratio(own)} |")
    return out + [""]


def targets_table(selected: list[Case], all_results, compile_rows) -> list[str]:
    rows: list[tuple[str, str, str, bool | None]] = []

    def grad_ratio(key: str, other: str) -> float | None:
        res = all_results.get(key)
        if not res or not res[TAPELESS].ok or not res[other].ok:
            return None
        return ratio(res[TAPELESS].grad, res[other].grad)

    def add(workload: str, target: str, value: float | None, limit: float, fmt=fmt_ratio):
        ok = None if value is None else value <= limit
        rows.append((workload, target, fmt(value) if value is not None else "failed", ok))

    for case in selected:
        res = all_results[case.key]
        tl_res = res[TAPELESS]
        name = case.title
        if case.key == "mlp64":
            add(name, "gradient ≤ 1.15× hand-written", grad_ratio(case.key, HAND), 1.15)
        elif case.key == "mlp1024":
            add(name, "gradient ≤ 1.05× hand-written", grad_ratio(case.key, HAND), 1.05)
        elif case.kind == "scalar":
            add(name, "gradient ≤ 1.5× hand-written backward loop",
                grad_ratio(case.key, HAND), 1.5)
        elif case.kind == "gmm":
            own = ratio(tl_res.grad, tl_res.primal) if tl_res.ok else None
            add(name, "gradient ÷ objective ≤ 2.0", own, 2.0)
            add(name, "gradient ≤ 1.2× hand-written", grad_ratio(case.key, HAND), 1.2)
            for peer in (TORCH, AUTOGRAD):
                if res[peer].ok:
                    add(name, f"faster than {LABEL[peer]} (tapeless ÷ it < 1)",
                        grad_ratio(case.key, peer), 1.0)
        elif case.kind == "lstm":
            own = ratio(tl_res.grad, tl_res.primal) if tl_res.ok else None
            label = "" if tl_res.variant == 0 else f" [{tl_res.label}]"
            add(name, "gradient ÷ objective ≤ 3" + label, own, 3.0)
        # compile latency
        crow = compile_rows.get(case.key, {})
        limit = 0.05 if case.kind == "mlp" else 0.2 if case.kind in ("gmm", "lstm") else None
        for mode in ("cold", "warm") if crow else ():  # (none: --no-probes)
            got = crow.get(f"{TAPELESS}-{mode}", {})
            if case.kind == "scalar":
                add(name, f"first gradient call < 10 ms ({mode} process)", got.get("first"),
                    0.010, fmt_ms_unit)
            elif limit is not None:
                add(name, f"compile < {limit * 1e3:.0f} ms ({mode} process)",
                    got.get("compile"), limit, fmt_ms_unit)
            jx = crow.get(f"{JAX}-{mode}", {})
            if "first" in got and "first" in jx:
                add(name, f"first call below JAX jit(grad)'s ({mode}): tapeless ÷ JAX",
                    got["first"] / jx["first"], 1.0)
        if res[HAND].mem_trace and tl_res.mem_trace is not None:
            add(name, "peak memory ≤ 1.2× hand-written (tracemalloc)",
                tl_res.mem_trace / res[HAND].mem_trace, 1.2)
    out = ["## Targets", "", "| workload | target | measured | verdict |", "|---|---|---:|---|"]
    out += [f"| {w} | {t} | {v} | {verdict(ok)} |" for w, t, v, ok in rows]
    met = sum(1 for r in rows if r[3])
    return out + ["", f"{met} of {len(rows)} targets met.", ""]


def fmt_ms_unit(s: float | None) -> str:
    return "–" if s is None else f"{s * 1e3:.1f} ms"


def compile_table(selected: list[Case], all_results, compile_rows) -> list[str]:
    out = ["## Compile latency (fresh processes)", "",
           "tapeless: `tl.grad(f)._get(args)` (compile) and compile plus the first call; "
           "*cold* is the first compilation in a fresh process (it parses the derivative "
           "rules' source), *warm* follows the compilation of another function "
           "(`workloads.warmup_function`). JAX: the first call of `jit(grad(f))` (trace, "
           "XLA compile, run), cold and after another `jit(grad)`. Steady-state gradient "
           "times are in the tables above.", "",
           "| workload | tapeless compile, cold | tapeless first call, cold | tapeless compile, "
           "warm | tapeless first call, warm | JAX first call, cold | JAX first call, warm |",
           "|---|---:|---:|---:|---:|---:|---:|"]
    for case in selected:
        row = compile_rows.get(case.key, {})
        cells = []
        for key, part in [("tapeless-cold", "compile"), ("tapeless-cold", "first"),
                          ("tapeless-warm", "compile"), ("tapeless-warm", "first"),
                          ("jax-cold", "first"), ("jax-warm", "first")]:
            got = row.get(key) or {}
            if part in got:
                cells.append(fmt_ms_unit(got[part]))
            else:
                cells.append("failed" if "error" in got else "–")
        tl_res = all_results[case.key][TAPELESS]
        note = "" if tl_res.variant == 0 else f" [{tl_res.label}]"
        out.append(f"| {case.title}{note} | " + " | ".join(cells) + " |")
    return out + [""]


def memory_table(selected: list[Case], all_results) -> list[str]:
    out = ["## Peak memory of one gradient call", "",
           "*tracemalloc*: peak of the memory traced during the call, after a warm-up call "
           "(NumPy reports its array buffers to tracemalloc; Python objects such as "
           "autograd's graph nodes are counted too), for the NumPy-based tools. *RSS*: "
           "increase of the resident-set high-water mark (`VmHWM`, reset through "
           "`/proc/self/clear_refs`) over the resident set before the first gradient call, in a "
           "fresh process per tool (tapeless compiled before; torch initialized on a tiny "
           "problem): only differences of a few MB and more are meaningful. *XLA*: "
           "temporary plus output buffers of JAX's compiled gradient "
           "(`memory_analysis()`).", "",
           "| workload | " + " | ".join(f"{LABEL[t]}" for t in TOOLS)
           + " | tapeless ÷ hand-written (tracemalloc) |",
           "|---|" + "---|" * (len(TOOLS) + 1)]
    for case in selected:
        res = all_results[case.key]
        cells = []
        for t in TOOLS:
            r = res[t]
            if not r.ok:
                cells.append("–")
                continue
            parts = []
            if r.mem_trace is not None:
                parts.append(f"{fmt_bytes(r.mem_trace)} (tracemalloc)")
            if r.mem_rss is not None:
                parts.append(f"{fmt_bytes(r.mem_rss)} (RSS)")
            if r.mem_xla is not None:
                parts.append(f"{fmt_bytes(r.mem_xla)} (XLA)")
            cells.append("<br>".join(parts) or "–")
        tl_res, hand = res[TAPELESS], res[HAND]
        rel = (ratio(tl_res.mem_trace, hand.mem_trace)
               if tl_res.ok and hand.ok and tl_res.mem_trace is not None else None)
        out.append(f"| {case.title} | " + " | ".join(cells) + f" | {fmt_ratio(rel)} |")
    return out + [""]


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

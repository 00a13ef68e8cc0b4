"""`tl.jit(tl.vmap(f))` of the Newton loops (`vmap_programs`: a data-dependent `while`,
batch 1,000) on the Python and the native backend, next to a Python loop over the batch
calling the compiled unbatched function (`tl.jit(f)`, either backend): issue 14's target
is the loop ÷ the vmapped program >= 20. CPU time (`time.process_time`), interleaved,
best of `REPEAT` samples. `python bench/bench_vmap_native.py`."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from timing import best_times, single_threaded  # noqa: E402

single_threaded()

import numpy as np  # noqa: E402
import vmap_programs as vp  # noqa: E402

import tapeless as tl  # noqa: E402

REPEAT = int(os.environ.get("REPEAT", "30"))


def main() -> None:
    rng = np.random.default_rng(0)
    a = np.abs(rng.normal(size=1000)) * 100 + 0.01
    xs = [float(x) for x in a]
    print(f"load average {os.getloadavg()[0]:.1f}, {os.cpu_count()} cores")
    print("| program, batch 1,000 | tl.jit(tl.vmap(f)) Python | native | "
          "loop of tl.jit(f) Python | loop of tl.jit(f, native) | loop ÷ native vmap "
          "(Python loop, native loop) | Python vmap ÷ native vmap |")
    print("|---|---|---|---|---|---|---|")
    for fn in (vp.newton_sqrt, vp.newton_cbrt):
        vpy, vnat = tl.jit(tl.vmap(fn)), tl.jit(tl.vmap(fn), backend="native")
        jpy, jnat = tl.jit(fn), tl.jit(fn, backend="native")
        expected = np.array([fn(x) for x in xs])
        for out in (vpy(a), vnat(a), [jpy(x) for x in xs], [jnat(x) for x in xs]):
            np.testing.assert_allclose(out, expected, rtol=1e-12)
        fallbacks = [c.fn.fallback for c in vnat._compiled.values()]
        assert fallbacks == [None], fallbacks
        t = best_times([lambda: vpy(a), lambda: vnat(a), lambda: [jpy(x) for x in xs],
                       lambda: [jnat(x) for x in xs]], [10, 50, 1, 1], REPEAT,
                       time.process_time)
        print(f"| {fn.__name__} | {t[0] * 1e6:.0f} µs | {t[1] * 1e6:.1f} µs | "
              f"{t[2] * 1e3:.2f} ms | {t[3] * 1e3:.2f} ms | {t[2] / t[1]:.0f}×, "
              f"{t[3] / t[1]:.0f}× | {t[0] / t[1]:.1f}× |")


if __name__ == "__main__":
    main()

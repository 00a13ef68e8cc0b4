"""`tl.vmap` of an array indexed by an index that differs across the batch (a gather),
and of a `for` over a range whose bounds differ with a `break`: 1,000 elements, least
of 5 calls. (BENCHMARKS.md, "Gathers and `for ... range(n): ... break` under `tl.vmap`".)

    python bench/bench_vmap_gather.py LABEL
"""

import sys
import timeit

import numpy as np

import tapeless as tl


def guarded_read(xs, t):
    i = 0
    while xs[i] < t:
        i += 1
        if i >= len(xs):
            break
    return i

def table_sum(x, n):
    s = 0.0
    for i in range(n):
        s = s + TABLE[i] * x
    return s

TABLE = np.linspace(0.0, 1.0, 50)
rng = np.random.default_rng(0)
xs = np.sort(rng.random(50))
ts = rng.random(1000) * 1.1
ns = rng.integers(0, 50, 1000)
xv = rng.random(1000)
f = tl.vmap(guarded_read, in_axes=(None, 0))
f(xs, ts)
want = np.array([guarded_read(list(xs), float(t)) for t in ts])
assert np.array_equal(f(xs, ts), want)
best = min(timeit.repeat(lambda: f(xs, ts), number=1, repeat=5))
print(f"{sys.argv[1]} guarded_read 1000: {best*1e3:.2f} ms")
try:
    g = tl.vmap(table_sum)
    g(xv, ns)
    best = min(timeit.repeat(lambda: g(xv, ns), number=1, repeat=5))
    print(f"{sys.argv[1]} for i in range(n): s += TABLE[i]*x, 1000: {best*1e3:.2f} ms")
except Exception as e:
    print(sys.argv[1], "table_sum fails:", type(e).__name__, str(e)[:80])

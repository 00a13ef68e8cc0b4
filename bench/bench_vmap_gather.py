"""`tl.vmap` of an array indexed by an index that differs across the batch (a gather),
and of a `for` over a range whose bounds differ with a `break`; per-example gradients
of a loss reading an embedding row per example (the gather's adjoint, a scatter by the
batch's indices) next to a Python loop calling the compiled gradient: 1,000 elements,
least of 5 calls. (BENCHMARKS.md, "Gathers and `for ... range(n): ... break` under `tl.vmap`".)

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


def embedding_loss(E, i, y):
    e = E[i]
    return (np.tanh(e) @ W_OUT - y) ** 2

W_OUT = rng.normal(size=16)
E = rng.normal(size=(200, 16))
idx = rng.integers(0, 200, 1000)
ys = rng.normal(size=1000)
pg = tl.vmap(tl.grad(embedding_loss), in_axes=(None, 0, 0))
one = tl.grad(embedding_loss)
got = pg(E, idx, ys)
loop = np.stack([one(E, int(k), float(y)) for k, y in zip(idx, ys, strict=True)])
assert np.allclose(got, loop, rtol=1e-12, atol=1e-15)
best = min(timeit.repeat(lambda: pg(E, idx, ys), number=1, repeat=5))
best_loop = min(timeit.repeat(lambda: [one(E, int(k), float(y)) for k, y in
                                        zip(idx, ys, strict=True)], number=1, repeat=5))
print(f"{sys.argv[1]} vmap(grad) of an embedding row's loss, 1000: {best*1e3:.2f} ms; "
      f"loop of grad: {best_loop*1e3:.2f} ms ({best_loop / best:.1f}x)")

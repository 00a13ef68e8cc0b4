"""What the benchmark scripts share: one BLAS thread (the process starts again with it
set, before NumPy loads) and the median (or, on a loaded machine, the minimum) of
repeated timings."""

from __future__ import annotations

import os
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

_ENV = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def single_threaded() -> None:
    """Run this script again with one BLAS thread, unless it already has one (call it
    before importing NumPy)."""
    if any(os.environ.get(k) != v for k, v in _ENV.items()):
        os.environ.update(_ENV)
        os.execv(sys.executable, [sys.executable, *sys.argv])


def median_time(fn: Callable[[], Any], repeat: int, number: int) -> float:
    """The median over `repeat` runs of the time of one call, each run `number` calls
    (after one call to warm up)."""
    fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        for _ in range(number):
            fn()
        times.append((time.perf_counter() - start) / number)
    return statistics.median(times)


def best_time(fn: Callable[[], Any], repeat: int, number: int) -> float:
    """The least over `repeat` runs of the time of one call, each run `number` calls
    (after one call to warm up): on a machine other jobs load, the time the code takes
    when it is not interrupted, which the median is not."""
    fn()
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        for _ in range(number):
            fn()
        best = min(best, (time.perf_counter() - start) / number)
    return best


def best_times(fns: list[Callable[[], Any]], numbers: list[int], repeat: int,
               clock: Callable[[], float] = time.perf_counter) -> list[float]:
    """`best_time` of each of `fns` (`numbers[i]` calls a run), their runs interleaved
    round by round, so that a stretch when other jobs load the machine falls on all of
    them alike (`clock`: `time.process_time` for CPU time)."""
    for fn in fns:
        fn()
    best = [float("inf")] * len(fns)
    for _ in range(repeat):
        for i, (fn, number) in enumerate(zip(fns, numbers, strict=True)):
            start = clock()
            for _ in range(number):
                fn()
            best[i] = min(best[i], (clock() - start) / number)
    return best

"""bench/bench_control_memory.py (issue 12's memory report) runs on tiny workloads: its
measurement code, not the numbers (the benchmark itself reports those)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import tapeless as tl

BENCH = Path(__file__).parent.parent / "bench"


@pytest.fixture(scope="module")
def mem() -> Any:
    """The module, loaded under another name; bench/ is on sys.path only while it loads
    (its modules' names would shadow the tests' for every file collected after this)."""
    saved = list(sys.path)
    sys.path.insert(0, str(BENCH))
    try:
        spec = importlib.util.spec_from_file_location(
            "bench_control_memory_under_test", BENCH / "bench_control_memory.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path[:] = saved
    return module


def test_report_runs_on_a_workload_and_short_loops(mem: Any) -> None:
    saved = tl.config.loop_checkpoint, tl.config.loop_memory
    lines = mem.report({"poly"}, (16, 64), with_autograd=False, budgets=(0,))
    assert (tl.config.loop_checkpoint, tl.config.loop_memory) == saved
    text = "\n".join(lines)
    rows = [ln for ln in lines if ln.startswith("| poly |")]
    assert len(rows) == 2 and all("met (≤ 2× hand-written)" in r for r in rows), text
    # the two loop tables: one row per n, each gradient checked against the hand-written
    # (the `while` loop's n steps give or take one)
    assert sum(ln.split(" |")[0] in ("| 16", "| 17", "| 64", "| 65") for ln in lines) == 4
    assert text.count("Growth from n = 16 to 64") == 2


def test_peak_counts_what_a_call_keeps(mem: Any) -> None:
    def keeps(n: int) -> list:
        return [np.ones(1000) for _ in range(n)]

    small, large = mem.peak(keeps, 1), mem.peak(keeps, 10, cold=True)
    assert 8000 <= small < 9000 + 2000 and 80000 <= large < 90000 + 4000


def test_autograd_runs_the_nested_derivative_source(mem: Any) -> None:
    """autograd's gradient of a benchmark's source, its nested `tl.grad` autograd's."""
    pytest.importorskip("autograd")
    got = mem._autograd_grad_of(mem.under_autograd(mem.C.saddle_value), (0, 1))(0.7, 0.4)
    want = tl.grad(mem.C.saddle_value, argnums=(0, 1))(0.7, 0.4)
    np.testing.assert_allclose(got, want, rtol=1e-9)

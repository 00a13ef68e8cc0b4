"""bench/bench_control_peers.py's versions of issue 12's workloads for the peer tools
compute tapeless's gradient: a 4×4 recursive determinant under every installed peer, and
the saddle point's nested derivatives under autograd and PyTorch (where
`torch.autograd.grad` with respect to a value that later values were computed from counts
their paths too: a total derivative where the program asks for a partial one). Peers that
are not installed are skipped. Nothing is timed."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

import tapeless as tl

BENCH = Path(__file__).resolve().parent.parent / "bench" / "bench_control_peers.py"
TOOLS = {"autograd": "autograd", "PyTorch": "torch", "JAX jit": "jax"}


@pytest.fixture(scope="module")
def bench() -> Iterator[ModuleType]:
    name = "_bench_control_peers_under_test"
    spec = importlib.util.spec_from_file_location(name, BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    path = list(sys.path)
    try:
        spec.loader.exec_module(module)
        assert sys.path == path, "the bench module left bench/ on sys.path"
        yield module
    finally:
        sys.modules.pop(name, None)


def peer(bench: ModuleType, tool: str, key: str, args: tuple, argnums: object) -> object:
    pytest.importorskip(TOOLS[tool])
    versions, missing = bench.peer_versions(key, args, argnums, (tool,))
    assert tool in versions, missing
    return versions[tool]


@pytest.mark.parametrize("tool", list(TOOLS))
def test_determinant(bench: ModuleType, tool: str, tmp_path: Path,
                     monkeypatch: pytest.MonkeyPatch) -> None:
    # (JAX's version comes from bench_native.py, whose import wants a native cache dir.)
    monkeypatch.setenv("TAPELESS_CACHE_DIR", str(tmp_path))
    A = np.random.default_rng(3).standard_normal((4, 4))
    want = tl.grad(bench.C.det_laplace)(A)
    np.testing.assert_allclose(want, np.linalg.det(A) * np.linalg.inv(A).T, rtol=1e-10)
    v = peer(bench, tool, "det", (A,), 0)
    assert bench.BC.rel_error(v.to_numpy(v.grad()), (want,)) <= 1e-12


@pytest.mark.parametrize("tool", ["autograd", "PyTorch"])
def test_saddle_partial_derivatives(bench: ModuleType, tool: str) -> None:
    args = bench.C.saddle_data()
    want = tl.grad(bench.C.saddle_value, argnums=(0, 1))(*args)
    v = peer(bench, tool, "saddle", args, (0, 1))
    assert bench.BC.rel_error(v.to_numpy(v.grad()), want) <= 1e-12

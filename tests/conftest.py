"""Test helpers (gradcheck, corpus, error_programs, ...) import by their plain module
names whether or not `tests` is a package."""

import os
import sys
from pathlib import Path

import pytest

# The optimizer checks, after every round, that no node is used outside its scope.
os.environ.setdefault("TAPELESS_CHECK_IR", "1")

_HERE = str(Path(__file__).parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)


@pytest.fixture(params=["on", "off"])
def optimize(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run a test with the optimizer on and off (fresh transforms see the setting: it is
    read when compiling)."""
    if request.param == "off":
        monkeypatch.setenv("TAPELESS_OPTIMIZE", "0")
    else:
        monkeypatch.delenv("TAPELESS_OPTIMIZE", raising=False)
    return request.param

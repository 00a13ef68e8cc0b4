"""Optimization never changes results: a sample of programs, compiled with the first N
optimizer passes for every N, gives the unoptimized results up to reassociation."""

import numpy as np
import pytest

import tapeless as tl
from tapeless.opt import PASS_ORDER
from tests import golden_programs as gp
from tests.corpus import programs as corpus


def _sample():
    cases = [
        (lambda: tl.grad(gp.mlp, argnums=(0, 1, 2, 3)), gp.small_mlp_args()),
        (lambda: tl.grad(gp.scalar_loop), (0.3,)),
        (lambda: tl.grad(gp.branchy, argnums=(0, 1)), (1.5, 0.5)),
        (lambda: tl.grad(gp.branchy, argnums=(0, 1)), (0.2, 0.5)),
        (lambda: tl.grad(gp.newton_sqrt), (3.0,)),
        (lambda: tl.grad(tl.grad(gp.branchy)), (1.5, 0.5)),
    ]
    for _name, fn, arg_sets in corpus.CASES[::12]:
        for a in arg_sets[:1]:
            if not a.kwargs:
                cases.append((lambda fn=fn: tl.jit(fn), a.args))
    return cases


def _close(a, b):
    if isinstance(a, (tuple, list)):
        return type(a) is type(b) and len(a) == len(b) and all(
            _close(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, (float, np.ndarray, np.floating)):
        return np.allclose(a, b, rtol=1e-12, atol=1e-14)
    return a == b


@pytest.mark.parametrize("level", range(1, len(PASS_ORDER) + 1))
def test_every_pass_level_gives_the_unoptimized_results(level, monkeypatch):
    monkeypatch.setenv("TAPELESS_OPTIMIZE", "0")
    expected = []
    for make, args in _sample():
        try:
            expected.append(("ok", make()(*args)))
        except Exception as e:  # noqa: BLE001  (programs that raise must raise the same)
            expected.append(("raised", type(e)))
    monkeypatch.setenv("TAPELESS_OPTIMIZE", str(level))
    for (make, args), (status, value) in zip(_sample(), expected, strict=True):
        try:
            got = ("ok", make()(*args))
        except Exception as e:  # noqa: BLE001
            got = ("raised", type(e))
        assert got[0] == status, (PASS_ORDER[level - 1], args)
        if status == "ok":
            assert _close(got[1], value), (PASS_ORDER[level - 1], args)
        else:
            assert got[1] is value


def test_every_rewrite_and_step_is_reachable_from_tapeless_optimize():
    # The pass order is the order of registration: a rewrite or a step the driver asks
    # for by name that is not in it could never be enabled by TAPELESS_OPTIMIZE=N.
    import re
    from pathlib import Path

    import tapeless.opt as opt
    from tapeless.opt.rules import RULES

    rewrites = {name for rules in RULES.values() for name, _ in rules}
    assert rewrites <= set(PASS_ORDER), rewrites - set(PASS_ORDER)
    asked = set()
    for path in Path(opt.__file__).parent.glob("*.py"):
        asked |= set(re.findall(r"allowed\([a-z_.]+, \"([a-z_]+)\"\)", path.read_text()))
    assert asked, "the driver asks for its steps by name"
    assert asked <= set(PASS_ORDER), asked - set(PASS_ORDER)
    assert len(PASS_ORDER) == len(set(PASS_ORDER))

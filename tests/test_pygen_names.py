"""The code generator's names: temporaries get the first free suffix, as before the
search started at the last suffix given (it was quadratic in the count of temporaries)."""

from __future__ import annotations

import random

from tapeless.api import graph_of
from tapeless.backend.pygen import ModuleEmitter


def _f(x):
    return x * 2.0 + 1.0


def _reference(taken: set[str], base: str) -> str:
    name, k = base, 1
    while name in taken:
        name, k = f"{base}_{k}", k + 1
    taken.add(name)
    return name


def test_fresh_names_are_the_first_free_suffix():
    emitter = ModuleEmitter(graph_of(_f))
    taken = set(emitter.taken)
    rng = random.Random(0)
    bases = ["_t", "x", "x_1", "h", "np", "len", "1a", "a-b"]
    for _ in range(3000):
        if rng.random() < 0.1:
            # A name taken some other way, e.g. a user's variable `x_7` named first.
            extra = f"{rng.choice(bases[:4])}_{rng.randrange(40)}"
            emitter.taken.add(extra)
            taken.add(extra)
        base = rng.choice(bases)
        clean = "".join(c if c.isalnum() or c == "_" else "_" for c in base)
        clean = "_" + clean if clean[0].isdigit() else clean
        assert emitter.fresh(base) == _reference(taken, clean)


def test_a_subscripted_number_compiles_without_a_warning():
    # Derivative code can hold `1.0[:n]` in a branch that never runs (a list's rule given
    # a number's seed); as a literal, Python would warn while compiling the module.
    import warnings

    from tapeless.backend.pygen import compile_graph
    from tapeless.ir.nodes import Constant, Graph
    from tapeless.primitives import PRIMITIVES as P

    g = Graph("g")
    n = g.add_parameter("n")
    cut = g.apply(P["make_slice"], Constant(None), n, Constant(None))
    dead = g.apply(P["getitem"], Constant(1.0), cut)
    g.output = g.apply(P["switch"], g.apply(P["lt"], n, Constant(0)), dead, n)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        compiled = compile_graph(g)
    assert "1.0[" not in compiled.source

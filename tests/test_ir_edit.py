"""The IR's edit API (`tapeless.ir.edit`) is the one way later stages change graphs: each
edit forgets what was computed from the graph, so no stage reads a stale schedule or
stale free variables; outside `ir/`, no code writes a node's inputs, and the rewriting
stages write no graph's output, effects or parameters."""

from __future__ import annotations

import ast
from pathlib import Path

import tapeless
from tapeless.ir.edit import (
    forget_enclosing,
    forget_users,
    keep_users,
    keeping_users,
    missing_users,
    set_effects,
    set_input,
    set_output,
    set_parameters,
    take_edited,
    users,
    users_of,
)
from tapeless.ir.nodes import Constant, Graph, free_variables, graph_nodes, stale_schedules
from tapeless.ir.replace import apply_replacements
from tapeless.primitives import PRIMITIVES as P

SRC = Path(tapeless.__file__).parent


def _writes(path: Path, attrs: set[str]) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        targets = node.targets if isinstance(node, ast.Assign) else \
            [node.target] if isinstance(node, (ast.AugAssign, ast.AnnAssign)) else []
        for t in targets:
            for part in t.elts if isinstance(t, ast.Tuple) else [t]:
                # `x.inputs = ...` or `x.inputs[i] = ...` (not `x.inputs[i].kind = ...`)
                written = part.value if isinstance(part, ast.Subscript) else part
                if isinstance(written, ast.Attribute) and written.attr in attrs:
                    found.append(f"{path.relative_to(SRC)}:{node.lineno}")
    return found


def test_only_the_ir_writes_node_inputs() -> None:
    wrong = [w for p in SRC.rglob("*.py") if p.parent.name != "ir"
             for w in _writes(p, {"inputs"})]
    assert not wrong, wrong


def test_only_the_ir_writes_node_kinds() -> None:
    """A node's recorded kind (`Node.kind`) is set through `ir.edit.set_kind`."""
    wrong = [w for p in SRC.rglob("*.py") if p.parent.name != "ir"
             for w in _writes(p, {"kind"}) if not _is_own_kind(p, w)]
    assert not wrong, wrong


def _is_own_kind(path: Path, where: str) -> bool:
    """`self.kind = ...` in a class of its own (a transform's kind, a `ParamSpec`)."""
    line = path.read_text().splitlines()[int(where.rsplit(":", 1)[1]) - 1]
    return line.strip().startswith("self.kind")


def test_rewriting_stages_change_graphs_through_the_edit_api() -> None:
    wrong = [w for folder in ("opt", "backend") for p in (SRC / folder).glob("*.py")
             for w in _writes(p, {"output", "effects", "parameters", "signature", "inputs"})]
    assert not wrong, wrong


def _closure_over(outer: Graph) -> tuple[Graph, object, object]:
    a = outer.add_parameter("a")
    b = outer.add_parameter("b")
    inner = Graph("inner", outer)
    x = inner.add_parameter("x")
    inner.output = inner.apply(P["add"], x, a)
    outer.output = outer.apply(Constant(inner), b)
    return inner, a, b


def test_an_edit_forgets_free_variables_and_schedules() -> None:
    outer = Graph("outer")
    inner, a, b = _closure_over(outer)
    assert free_variables(inner) == [a]
    set_input(inner.output, 2, b)  # x + b
    assert free_variables(inner) == [b]
    set_output(inner, inner.parameters[0])
    assert free_variables(inner) == []
    y = inner.apply(P["neg"], inner.parameters[0])
    set_effects(inner, [y])
    assert y in graph_nodes(inner)
    forget_enclosing(inner)
    set_parameters(inner, [])
    assert inner.parameters == []


def test_users_index_every_use_and_outputs() -> None:
    outer = Graph("outer")
    inner, a, _ = _closure_over(outer)
    index = users([outer, inner])
    assert [(u, g) for u, g in index[a.id]] == [(inner.output, inner)]
    assert index[inner.output.id] == [(None, inner)]


def test_forget_users_forgets_the_graphs_using_a_changed_closure() -> None:
    # outer: a = neg(p); b = np.exp(p); inner(1.0), where inner: x -> x + a
    outer = Graph("outer")
    p = outer.add_parameter("p")
    a = outer.apply(P["neg"], p)
    b = outer.apply(P["np.exp"], p)
    inner = Graph("inner", outer)
    x = inner.add_parameter("x")
    set_output(inner, inner.apply(P["add"], x, a))
    call = outer.apply(Constant(inner), Constant(1.0))
    set_output(outer, call)
    assert graph_nodes(outer) == [a, call]
    take_edited()
    set_input(inner.output, 2, b)  # inner now reads b: scheduled in outer
    assert take_edited() == {inner.id}
    assert forget_users([outer, inner], {inner.id}) == {inner.id, outer.id}
    assert graph_nodes(outer) == [b, call]
    assert stale_schedules(outer) == []


def test_the_users_index_follows_creation_and_edits() -> None:
    outer = Graph("outer")
    inner, a, b = _closure_over(outer)
    with keep_users([outer, inner]):
        assert users_of(a.id) == [inner.output]
        # A node made in the block is indexed; new inputs move it between its inputs.
        n = outer.apply(P["neg"], a)
        assert set(users_of(a.id)) == {inner.output, n}
        set_input(n, 1, b)
        assert users_of(a.id) == [inner.output]
        assert n in users_of(b.id)
        assert missing_users([outer, inner]) == []
    assert not keeping_users()


def _replacing(indexed: bool) -> None:
    # g(p): a = neg(p); print(a) as an effect; out = a + p. Replace a by exp(p), and the
    # print by its argument (pure: dropped from the effects).
    g = Graph("g")
    p = g.add_parameter("p")
    a = g.apply(P["neg"], p)
    shown = g.apply(P["print"], a)
    out = g.apply(P["add"], a, p)
    set_output(g, out)
    set_effects(g, [shown])
    e = g.apply(P["np.exp"], p)

    def pure(n: object) -> bool:
        return n is not shown

    def run() -> None:
        redirected: set[int] = set()
        apply_replacements(g, {a.id: e, shown.id: a}, {}, {g.id}, pure, redirected)
        assert out.inputs[1] is e and out.id in redirected
        assert g.effects == [] and g.output is out
        assert graph_nodes(g) == [e, out] and stale_schedules(g) == []

    if indexed:
        with keep_users([g]):
            run()
            # (The dropped print's input was pointed at e too: the index may name it.)
            assert out in users_of(e.id)
    else:
        run()


def test_replacing_a_node_points_every_use_at_its_replacement() -> None:
    _replacing(indexed=False)
    _replacing(indexed=True)

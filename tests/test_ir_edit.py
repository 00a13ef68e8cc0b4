"""The IR's edit API (`tapeless.ir.edit`) is the one way later stages change graphs: each
edit forgets what was computed from the graph, so no stage reads a stale schedule or
stale free variables; outside `ir/`, no code writes a node's inputs, and the rewriting
stages write no graph's output, effects or parameters."""

from __future__ import annotations

import ast
from pathlib import Path

import tapeless
from tapeless.ir.edit import (
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
    set_parameters(inner, [])
    assert inner.parameters == []


def _nested(top: Graph) -> tuple[Graph, Graph, object, object]:
    """top(p): a = p * 3.0; mid(p), where mid(y): inner(y), where inner(x): x + y. The
    values of top that inner may be edited to read: p and a (a read by no node of top)."""
    p = top.add_parameter("p")
    a = top.apply(P["mul"], p, Constant(3.0))
    mid = Graph("mid", top)
    y = mid.add_parameter("y")
    inner = Graph("inner", mid)
    x = inner.add_parameter("x")
    set_output(inner, inner.apply(P["add"], x, y))
    set_output(mid, mid.apply(Constant(inner), y))
    set_output(top, top.apply(Constant(mid), p))
    return mid, inner, p, a


def test_an_edit_forgets_the_free_variables_of_the_graphs_enclosing_it() -> None:
    # (set_inputs used to forget only the edited graph's: `mid` kept saying it read
    # nothing of `top`, and `top` did not schedule `a`.)
    top = Graph("top")
    mid, inner, p, a = _nested(top)
    assert free_variables(inner) == [mid.parameters[0]]
    assert free_variables(mid) == [] and graph_nodes(top) == [top.output]
    set_input(inner.output, 2, a)  # inner: x + a, a of top
    assert free_variables(inner) == [a]
    assert free_variables(mid) == [a]
    assert graph_nodes(top) == [a, top.output]
    assert stale_schedules(top) == []
    set_input(inner.output, 2, mid.parameters[0])  # and back: no graph reads a now
    assert free_variables(mid) == [] and graph_nodes(top) == [top.output]
    set_output(inner, inner.apply(P["mul"], inner.parameters[0], p))  # through the output
    assert free_variables(mid) == [p]
    set_effects(inner, [inner.apply(P["neg"], a)])  # and the effects (scheduled first)
    assert free_variables(mid) == [a, p]
    assert a in graph_nodes(top)
    assert stale_schedules(top) == []


def test_an_edit_forgets_the_free_variables_of_a_sibling_calling_the_closure() -> None:
    # top: f(x) = x; g(z) = f(z) (g calls its sibling f, which g does not enclose). f
    # edited to read top's `a`: g reads it too (`tl.grad` of `tl.vmap(tl.jacfwd(f))`
    # copied a sibling by its stale schedule: KeyError 'grad_lambda').
    top = Graph("top")
    p = top.add_parameter("p")
    a = top.apply(P["neg"], p)
    f = Graph("f", top)
    set_output(f, f.add_parameter("x"))
    g = Graph("g", top)
    set_output(g, g.apply(Constant(f), g.add_parameter("z")))
    set_output(top, top.apply(P["make_tuple"], Constant(f), Constant(g)))
    assert free_variables(g) == [] and graph_nodes(top) == [top.output]
    set_output(f, f.apply(P["add"], f.parameters[0], a))
    assert free_variables(g) == [a]
    assert graph_nodes(top) == [a, top.output]
    set_output(f, f.parameters[0])
    assert free_variables(g) == [] and graph_nodes(top) == [top.output]


def test_free_variables_of_a_recursion_asked_from_inside_first() -> None:
    # rec(n): r = n * 2.0; branch(k): body(k) + 0.0, where body(j): rec(j) * r (a node
    # of rec read in a graph nested twice, which calls rec). Asked first for body's free
    # variables, rec's schedule used to be made while body's were being made: branch's
    # came out without r, and rec's schedule too.
    rec = Graph("rec")
    n = rec.add_parameter("n")
    r = rec.apply(P["mul"], n, Constant(2.0))
    branch = Graph("branch", rec)
    body = Graph("body", branch)
    j = body.add_parameter("j")
    set_output(body, body.apply(P["mul"], body.apply(Constant(rec), j), r))
    k = branch.add_parameter("k")
    set_output(branch, branch.apply(P["add"], branch.apply(Constant(body), k), Constant(0.0)))
    set_output(rec, rec.apply(Constant(branch), n))
    assert free_variables(body) == [r]
    assert free_variables(branch) == [r]
    assert graph_nodes(rec) == [r, rec.output]
    assert stale_schedules(rec) == []


def test_a_program_edited_to_read_an_outer_value_compiles_and_runs() -> None:
    # End to end: the generated code of `top` after the edit defines `a` and passes it
    # to the closures (the stale schedule of `top` left `a` undefined: NameError).
    from tapeless.backend.pygen import compile_graph

    top = Graph("top")
    mid, inner, _, a = _nested(top)
    assert compile_graph(top).fn(2.0) == 4.0  # 2 + 2
    set_input(inner.output, 2, a)
    assert compile_graph(top).fn(2.0) == 8.0  # 2 + 2 * 3


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


def _reference_graphs_inside(g: Graph, also: set[int] | None = None) -> list[Graph]:
    """`clone.graphs_inside` the plain way: every candidate's free variables tested again
    until nothing is added, then the blocks of every graph inside."""
    from tapeless.ir.clone import _blocks
    from tapeless.ir.nodes import reachable_graphs

    candidates = [h for h in reachable_graphs(g) if h is not g]
    inside = {g.id} | (also or set())
    by_id = {h.id: h for h in candidates}
    changed = True
    while changed:
        changed = False
        for h in candidates:
            if h.id not in inside and any(fv.graph is not None and fv.graph.id in inside
                                          for fv in free_variables(h)):
                inside.add(h.id)
                changed = True
        for gid in list(inside):
            owner = by_id.get(gid, g if gid == g.id else None)
            for block in _blocks(owner) if owner is not None else ():
                if block.id not in inside and block is not g:
                    inside.add(block.id)
                    changed = True
    return [h for h in candidates if h.id in inside and h.id not in (also or set())]


def _scaled_closures(x: float) -> float:
    def outer(y: float) -> float:
        def inner(z: float) -> float:
            return z * y + x
        return inner(y) if y > 0.0 else inner(-y) * 2.0
    return outer(x * x) + outer(x)


def test_graphs_inside_is_the_least_set_of_nested_graphs(monkeypatch) -> None:
    # Inlining copies a callee with the graphs nested in it: those reading its nodes
    # (through other nested graphs too) and its blocks. Found by a worklist, each
    # candidate's free variables read once: the set the plain fixed point finds.
    import tapeless as tl
    from tapeless.ir import clone

    fast = clone.graphs_inside
    checked: list[int] = []

    def both(g: Graph, also: set[int] | None = None) -> list[Graph]:
        got = fast(g, also)
        assert [h.id for h in got] == [h.id for h in _reference_graphs_inside(g, also)]
        checked.append(len(got))
        return got

    monkeypatch.setattr(clone, "graphs_inside", both)
    f = tl.grad(tl.grad(_scaled_closures))
    assert f(0.7) == tl.grad(tl.grad(_scaled_closures, argnums=0))(0.7)
    assert checked and any(checked)


def test_inlined_copies_are_nodes_with_their_uses_indexed() -> None:
    # (The copies are made without Apply's constructor: the same fields, fresh ids in
    # order, and their uses in the users index.)
    from tapeless.ir.clone import inline_body
    from tapeless.ir.nodes import Apply, serial_mark

    callee = Graph("callee", None, None)
    a = callee.add_parameter("a")
    t = callee.apply(Constant(P["mul"]), a, a, name="t")
    t.kind = None
    callee.output = callee.apply(Constant(P["add"]), t, Constant(1.0))
    target = Graph("target", None, None)
    x = target.add_parameter("x")
    with keep_users([target]):
        mark = serial_mark()
        out, effects = inline_body(callee, target, [x])
        set_output(target, out)
        body = graph_nodes(target)
        assert not missing_users([target])
        assert [n.id for n in users_of(x.id)] == [body[0].id]
    assert effects == []
    assert all(type(n) is Apply and n.graph is target and n.id > mark for n in body)
    assert [n.name for n in body] == ["t", ""]
    assert [n.id for n in body] == sorted(n.id for n in body)
    assert body[0].inputs[1:] == [x, x] and body[1].inputs[1] is body[0]

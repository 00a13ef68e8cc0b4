"""The graph IR: a function is a `Graph`; its body is a DAG of `Apply`, `Parameter`
and `Constant` nodes. A graph used as a value is a closure when it references nodes
owned by an enclosing graph (its free variables)."""

from __future__ import annotations

import itertools
import weakref
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeGuard

from .primitive import Primitive

if TYPE_CHECKING:  # (for annotations only: the IR does not import the optimizer)
    from ..opt.kinds import Kind

_serial = itertools.count()


@dataclass(frozen=True)
class Location:
    """Where a node or graph comes from in the user's source."""

    filename: str
    line: int
    col: int
    source_line: str = ""

    def __str__(self) -> str:
        return f"{self.filename}:{self.line}:{self.col + 1}"


class Node:
    __slots__ = ("graph", "loc", "id", "name", "kind")

    def __init__(self, graph: Graph | None, loc: Location | None = None, name: str = ""):
        self.graph = graph
        self.loc = loc
        self.id = next(_serial)
        self.name = name
        # What is known of the value's type (see tapeless.opt.kinds), or None.
        self.kind: Kind | None = None


class Parameter(Node):
    __slots__ = ()

    def __repr__(self) -> str:
        return f"%{self.name or 'p'}{self.id}"


class Constant(Node):
    __slots__ = ("value",)

    def __init__(self, value: Any, loc: Location | None = None):
        # (`Node.__init__(self, None, loc)`, inline: constants and applications are made
        # by the ten thousand in a compile.)
        self.graph = None
        self.loc = loc
        self.id = next(_serial)
        self.name = ""
        self.kind = None
        self.value = value

    def __repr__(self) -> str:
        return f"Constant({self.value!r})"


class Apply(Node):
    """`inputs[0]` is the callee, the rest are positional arguments."""

    __slots__ = ("inputs",)
    graph: Graph  # an Apply always belongs to a graph

    def __init__(self, graph: Graph, inputs: list[Node], loc: Location | None = None,
                 name: str = ""):
        # (`Node.__init__(self, graph, loc, name)`, inline, as for constants.)
        self.graph = graph
        self.loc = loc
        self.id = next(_serial)
        self.name = name
        self.kind = None
        self.inputs = inputs
        if USERS is not None:
            note_uses(self, inputs)

    def __repr__(self) -> str:
        return f"%{self.name or 'v'}{self.id}"


# Who uses each node, by node id (the users by their id), while an index is kept (see
# `tapeless.ir.edit.keep_users`): node creation and every edit of inputs update it. It
# may list users that are no longer reachable from any graph's output (dead code).
USERS: dict[int, dict[int, Apply]] | None = None


# The graphs made while the users index is kept (see `tapeless.ir.edit.keep_users` and
# `take_made`): with the graphs reachable before, every graph whose cached schedule an
# edit can have made stale.
MADE: list[Graph] | None = None


# Graph id -> the nodes made or given inputs that use the graph as a constant, for each
# such index kept (see `tapeless.ir.edit.note_graph_uses`; only with the users index):
# an optimizer run inside another's round (a transform compiled by a rule) adds to the
# indexes of both.
GRAPH_USES: list[dict[int, list[Apply]]] = []


def note_uses(node: Apply, inputs: list[Node]) -> None:
    """Record in the users index that `node` uses `inputs`."""
    assert USERS is not None
    for i in inputs:
        found = USERS.get(i.id)
        if found is None:
            USERS[i.id] = {node.id: node}
        else:
            found[node.id] = node
    if GRAPH_USES:
        for i in inputs:
            if type(i) is Constant and type(i.value) is Graph:  # (is_constant_graph)
                for index in GRAPH_USES:
                    found_uses = index.get(i.value.id)
                    if found_uses is None:
                        index[i.value.id] = [node]
                    else:
                        found_uses.append(node)


def forget_uses(node: Apply, inputs: list[Node]) -> None:
    """Record in the users index that `node` no longer uses `inputs`."""
    assert USERS is not None
    for i in inputs:
        found = USERS.get(i.id)
        if found is not None:
            found.pop(node.id, None)


@dataclass(frozen=True, eq=False)
class TransformSpec:
    """What a graph stands for until the AD stage builds its body: `tl.grad(target,
    argnums, has_aux)` (kind "grad") or `tl.value_and_grad(...)` ("value_and_grad")
    called inside compiled code, whose arguments come from the code around it."""

    kind: str
    target: Graph
    argnums: Any
    has_aux: bool


@dataclass(frozen=True)
class CustomRule:
    """The derivative rules a user gave a function (`tl.custom_jvp`, `tl.custom_vjp`):
    `kind` "jvp" (with `rule(*nondiff, primals, tangents) -> (out, tangent)`) or "vjp"
    (with `fwd(*args) -> (out, residuals)` and `bwd(*nondiff, residuals, cotangent) ->
    cotangents`); `nondiff` the positions of the arguments without derivatives. AD uses
    them instead of the function's body (`fun`), in every mode and order. Kind
    "checkpoint" (`tl.checkpoint`): reverse mode runs `fun`'s J again in the backward
    pass instead of saving its values."""

    kind: str
    fun: Graph
    rule: Graph | None = None
    fwd: Graph | None = None
    bwd: Graph | None = None
    nondiff: tuple[int, ...] = ()


# The graphs standing for a transform whose body is not built yet (a weak set: so that
# building them can skip walking a program that has none).
PENDING_TRANSFORMS: weakref.WeakSet[Graph] = weakref.WeakSet()


class Graph:
    """A function. `parent` is the lexically enclosing graph (None at top level)."""

    def __init__(self, name: str, parent: Graph | None = None, loc: Location | None = None):
        self.name = name
        self.parent = parent
        self.loc = loc
        self.parameters: list[Parameter] = []
        self.output: Node | None = None
        # Nodes evaluated for their side effects (print, assert, calls that may print),
        # in program order; they are kept even when their value is unused.
        self.effects: list[Node] = []
        self.id = next(_serial)
        # A flag for graphs whose last parameter collects extra positional arguments.
        self.vararg = False
        # Made by differentiation (or a derivative rule), not from the user's code: a
        # function value it calls is a J-callable (see `tapeless.ad.reverse`).
        self.derived = False
        # A transform of another graph, whose body the AD stage builds (then None).
        self.transform: TransformSpec | None = None
        # The front end's parameter specs of a user function (`frontend.scopes.ParamSpec`:
        # kind "pos", "vararg" or "kwonly", and a default node), one per parameter: how
        # Python binds a call through a value to them. None for other graphs.
        self.signature: list[Any] | None = None
        # A loop body made by differentiation: "forward" (pushes the values its
        # backward loop needs onto a stack) or "backward" (pops them).
        self.loop_role: str | None = None
        # The class a J-callable stands for (a class passed as a value), for isinstance.
        self.stands_for: type | None = None
        # For a function value made by differentiation: ("J", base) or ("F", base), the
        # transform and the graph (or primitive) it was applied to, so that the function
        # can be derived again with another transform innermost (`tapeless.dynamic`).
        self.derivative_of: tuple[str, Any] | None = None
        # The user's derivative rules for the function this graph calls (see CustomRule).
        self.custom: CustomRule | None = None
        # J of a `tl.checkpoint`ed function, which the backward pass calls to recompute
        # it: never inlined, so the call stays where the backward pass reaches it (inlined,
        # the schedule could run it early and hold its saved values as long as saving them
        # in the forward pass would).
        self.recomputed = False
        self._fv_cache: list[Node] | None = None
        self._nodes_cache: list[Apply] | None = None
        self._uses_cache: list[Graph] | None = None
        # The graphs whose cached schedule (and so free variables) read this graph's free
        # variables since they were last forgotten, by id (weakly: a copy thrown away
        # must not live as long as the graph it used): `invalidate` forgets theirs too.
        self._readers: dict[int, weakref.ref[Graph]] = {}
        if MADE is not None:
            MADE.append(self)

    def add_parameter(self, name: str, loc: Location | None = None) -> Parameter:
        p = Parameter(self, loc, name)
        self.parameters.append(p)
        return p

    def apply(self, *inputs: Any, loc: Location | None = None, name: str = "") -> Apply:
        """Create an Apply node in this graph; non-Node inputs become Constants."""
        nodes = [i if isinstance(i, Node) else Constant(i) for i in inputs]
        return Apply(self, nodes, loc, name)

    def __repr__(self) -> str:
        return f"<Graph {self.name}>"

    def copy_attributes(self, source: Graph) -> None:
        """Take `source`'s declared attributes (all but its body, name and scope): what
        a copy of a graph must keep."""
        self.take_signature(source)
        self.derived = source.derived
        self.loop_role = source.loop_role
        self.stands_for = source.stands_for
        self.derivative_of = source.derivative_of
        self.custom = source.custom
        self.recomputed = source.recomputed

    def take_signature(self, source: Graph) -> None:
        """Take `source`'s signature (its parameters' kinds and defaults, and whether
        the last collects `*args`): a graph that stands in for `source` in a call."""
        self.vararg = source.vararg
        self.signature = source.signature

    def invalidate(self) -> None:
        """Forget what was computed from this graph's body (after changing it), and, since
        its free variables may have changed, what the graphs that read them computed (a
        closure's users: the graphs enclosing it, a sibling calling it), transitively.
        Each cache registers what it reads (`_read_free_variables`) and is forgotten at
        most once per computation, so the walk stops at graphs already forgotten."""
        self._fv_cache = None
        self._nodes_cache = None
        self._uses_cache = None
        if not self._readers:
            return
        todo = [self]
        while todo:
            g = todo.pop()
            readers = g._readers
            if not readers:
                continue
            g._readers = {}
            for ref in readers.values():
                r = ref()
                if r is not None and (r._nodes_cache is not None or r._fv_cache is not None
                                      or r._readers):
                    r._fv_cache = None
                    r._nodes_cache = None
                    r._uses_cache = None
                    todo.append(r)


def serial_mark() -> int:
    """A number below the id of every node made from now on (ids only grow)."""
    return next(_serial)


def prim_of(node: Node) -> Primitive | None:
    """The primitive `node` applies (a constant callee), else None."""
    # (Exact type tests: none of these classes has subclasses, and this runs for every
    # node and rule.)
    if type(node) is Apply and type(c := node.inputs[0]) is Constant and \
            type(c.value) is Primitive:
        return c.value
    return None


def is_constant_graph(node: Node | None) -> TypeGuard[Constant]:
    """Whether `node` is a constant whose value is a graph (then `node.value` is one)."""
    # Exact type tests (neither class has subclasses): the optimizer asks this a lot.
    return type(node) is Constant and type(node.value) is Graph


def graph_nodes(g: Graph) -> list[Apply]:
    """The Apply nodes owned by `g` that are reachable from its output or effects,
    in a valid evaluation order (inputs first, effects in program order). Cached until
    `g.invalidate()`."""
    if g._nodes_cache is None:
        g._nodes_cache = _schedule(g)
    return g._nodes_cache


def _schedule(g: Graph) -> list[Apply]:
    order: list[Apply] = []
    seen: set[Apply] = set()
    roots = list(g.effects) + ([g.output] if g.output is not None else [])
    if is_constant_graph(g.output):  # a closure returned as is needs its free variables
        roots += [fv for fv in _read_free_variables(g.output.value, g) if fv.graph is g]
    for root in roots:
        if type(root) is not Apply or root.graph is not g or root in seen:
            continue
        seen.add(root)
        # A depth-first walk, inputs first: each node's dependencies are computed once
        # (not once per visit of the node), and the walk resumes each node's iterator
        # where it left off. (Exact type tests: Apply has no subclasses.)
        path: list[Apply] = [root]
        pending = [iter(_deps(root, g))]
        while pending:
            for dep in pending[-1]:
                if type(dep) is Apply and dep.graph is g and dep not in seen:
                    seen.add(dep)
                    path.append(dep)
                    pending.append(iter(_deps(dep, g)))
                    break
            else:
                pending.pop()
                order.append(path.pop())
    return order


def _deps(node: Apply, g: Graph) -> list[Node]:
    """Inputs of `node`, plus, for closures it uses, their free variables owned by `g`."""
    inputs = node.inputs
    for i in inputs:
        if type(i) is Constant and type(i.value) is Graph:
            break
    else:
        return inputs
    deps: list[Node] = []
    for inp in inputs:
        if type(inp) is Constant and type(inp.value) is Graph:
            deps.extend([fv for fv in _read_free_variables(inp.value, g) if fv.graph is g])
        deps.append(inp)
    return deps


def _read_free_variables(h: Graph, reader: Graph) -> list[Node]:
    """`free_variables(h)`, read for `reader`'s schedule (and so its free variables):
    noted, so that a change of `h`'s forgets what `reader` computed from them. None
    where `h` encloses `reader` (or is it: a recursive call), as in `free_variables`."""
    if is_inside(reader, h):
        return []
    readers = h._readers
    if reader.id not in readers:
        readers[reader.id] = weakref.ref(reader)
    return free_variables(h)


# The graphs whose free variables are being computed and not yet final (Tarjan's stack
# of `free_variables`' walk over the graphs that read each other's free variables: the
# closures a graph's nodes use, and those their free variables come through), with the
# walk's index of each, and each one's current, provisional, answer; the lowest index
# each active computation has read, innermost last.
_FV_STACK: list[Graph] = []
_FV_INDEX: dict[int, int] = {}
_FV_PROVISIONAL: dict[int, list[Node]] = {}
_FV_LOW: list[int] = []


def free_variables(g: Graph) -> list[Node]:
    """Nodes owned by graphs other than `g` and its descendants that `g` (or a graph
    nested in it) uses, in first-use order. Cached until `g.invalidate()` (of `g`, or of
    a graph whose free variables its schedule read). A graph enclosing `g` that `g`
    calls (recursion) adds none: they are in scope, and so the answer does not depend on
    which graph of the cycle was asked first. Closures that call each other (mutually
    recursive siblings) each need the others' free variables: a cycle's answers are
    found together, as the least fixed point over the cycle (`_fv_cycle`), the same
    whichever graph of it was asked first."""
    cached = g._fv_cache
    if cached is not None:
        return cached
    index = _FV_INDEX.get(g.id)
    if index is not None:  # being computed: a cycle; its answer so far
        if _FV_LOW and index < _FV_LOW[-1]:
            _FV_LOW[-1] = index
        return _FV_PROVISIONAL[g.id]
    index = len(_FV_STACK)
    depth = len(_FV_LOW)
    _FV_STACK.append(g)
    _FV_INDEX[g.id] = index
    _FV_PROVISIONAL[g.id] = []
    _FV_LOW.append(index)
    try:
        _FV_PROVISIONAL[g.id] = _compute_free_variables(g)
        low = _FV_LOW.pop()
        if low == index and len(_FV_STACK) > index + 1:
            low = _fv_cycle(index)
        if low == index:  # (the first graph of a cycle, or a graph in none): final
            _finish(index, keep=True)
        elif low < _FV_LOW[-1]:
            _FV_LOW[-1] = low
    except BaseException:
        del _FV_LOW[depth:]
        if len(_FV_STACK) > index:
            _finish(index, keep=False)
        raise
    return g._fv_cache if g._fv_cache is not None else _FV_PROVISIONAL[g.id]


def _fv_cycle(index: int) -> int:
    """The free variables of the graphs on the stack from `index` on, which read each
    other's (a cycle of closures calling each other, whose answers so far are
    provisional): each found again, with its schedule, from the others' latest, until
    none changes (the sets only grow: the least fixed point). They start from nothing
    and go in the order they were made, so that the answer does not depend on which
    graph was asked first. Returns the lowest stack index read (below `index` where the
    cycle is part of a larger one, found by a graph first seen here)."""
    _FV_LOW.append(index)
    try:
        members: list[Graph] = []
        rounds = 0
        while True:
            if len(_FV_STACK) - index != len(members):  # (at first, or a graph joined)
                members = sorted(_FV_STACK[index:], key=lambda h: h.id)
                for h in members:
                    _FV_PROVISIONAL[h.id] = []
                rounds = 0
            changed = False
            for h in members:
                h._nodes_cache = None  # (computed from the answers so far)
                h._uses_cache = None
                found = _compute_free_variables(h)
                if found != _FV_PROVISIONAL[h.id]:
                    _FV_PROVISIONAL[h.id] = found
                    changed = True
            rounds += 1
            if len(_FV_STACK) - index != len(members):
                continue
            if not changed:
                break
            if rounds > 4 * len(members) + 16:  # (the sets are final: only the order moves)
                for h in members:
                    _FV_PROVISIONAL[h.id] = sorted(_FV_PROVISIONAL[h.id], key=lambda n: n.id)
                break
    finally:
        low = _FV_LOW.pop()
    return low


def _finish(index: int, keep: bool) -> None:
    """Take the graphs from `index` on off the stack, their answers final (`keep`) or
    thrown away (an error)."""
    for h in _FV_STACK[index:]:
        del _FV_INDEX[h.id]
        found = _FV_PROVISIONAL.pop(h.id)
        if keep:
            h._fv_cache = found
        else:
            h._nodes_cache = None
            h._uses_cache = None
    del _FV_STACK[index:]


def _compute_free_variables(g: Graph) -> list[Node]:
    """`free_variables(g)` from its schedule and its closures' free variables."""
    result: dict[int, Node] = {}
    # (Exact type tests: none of these classes has subclasses.)
    for node in graph_nodes(g):
        for inp in node.inputs:
            t = type(inp)
            if t is Apply or t is Parameter:
                owner = inp.graph
                if owner is not g and not is_inside(owner, g):
                    result.setdefault(inp.id, inp)
            elif type(inp) is Constant and type(inp.value) is Graph and \
                    not is_inside(g, inp.value):
                for fv in free_variables(inp.value):
                    if fv.graph is not g and not is_inside(fv.graph, g):
                        result.setdefault(fv.id, fv)
    out = g.output
    if isinstance(out, (Apply, Parameter)) and out.graph is not g and not is_inside(out.graph, g):
        result.setdefault(out.id, out)
    if is_constant_graph(out) and not is_inside(g, out.value):
        for fv in free_variables(out.value):
            if fv.graph is not g and not is_inside(fv.graph, g):
                result.setdefault(fv.id, fv)
    return list(result.values())


def is_inside(inner: Graph | None, outer: Graph) -> bool:
    while inner is not None:
        if inner is outer:
            return True
        inner = inner.parent
    return False


def used_graphs(g: Graph) -> list[Graph]:
    """The graphs `g`'s nodes and output use as constants, in order of use (repeats
    included). Cached until `g.invalidate()`."""
    if g._uses_cache is None:
        found = [inp.value for node in graph_nodes(g)
                 for inp in node.inputs
                 if type(inp) is Constant and type(inp.value) is Graph]
        if g.output is not None and is_constant_graph(g.output):
            found.append(g.output.value)
        g._uses_cache = found
    return g._uses_cache


def reachable_graphs(root: Graph) -> list[Graph]:
    """Every graph reachable from `root` through graph constants, `root` first."""
    seen: dict[int, Graph] = {}
    todo = [root]
    while todo:
        g = todo.pop()
        if g.id in seen:
            continue
        seen[g.id] = g
        todo.extend(used_graphs(g))
    return list(seen.values())


def scope_errors(root: Graph) -> list[str]:
    """Nodes that the top-level graph `root` uses but no graph it reaches owns (a
    miscompile, e.g. a copy still reading a node of the graph it was copied from: the
    generated code would read a variable of no enclosing function). The test suite
    checks this after every optimizer round (TAPELESS_CHECK_IR=1)."""
    return [f"{fv!r} of {fv.graph!r}" for fv in free_variables(root)]


def stale_schedules(root: Graph) -> list[str]:
    """The graphs reachable from `root` whose cached schedule or free variables differ
    from what computing them afresh gives (a change that `forget_users` missed). The
    test suite checks this after every optimizer round (TAPELESS_CHECK_IR=1)."""
    graphs = reachable_graphs(root)
    kept = {g.id: ([n.id for n in g._nodes_cache] if g._nodes_cache is not None else None,
                   [n.id for n in g._fv_cache] if g._fv_cache is not None else None)
            for g in graphs}
    for g in graphs:
        g.invalidate()
    errors = []
    for g in graphs:
        nodes, fvs = kept[g.id]
        if (nodes is not None and nodes != [n.id for n in graph_nodes(g)]) or \
                (fvs is not None and fvs != [n.id for n in free_variables(g)]):
            errors.append(f"{g!r}: cached schedule or free variables are stale")
    for g in graphs:  # (as it was: what was not computed is not, so the check changes nothing)
        if kept[g.id] == (None, None):
            g.invalidate()
    return errors

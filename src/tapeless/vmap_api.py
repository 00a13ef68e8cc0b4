"""`tl.vmap`: a function written for one example, run on a batch (JAX's semantics for
`in_axes`, `out_axes` and `axis_size`), by the V transform (`tapeless.ad.batch`).

The batched function is itself a graph (`vmap_graph`): it moves each mapped axis first,
calls the V transform of the function, and moves the batch axis of the results where
`out_axes` says. So `tl.vmap` composes like the other transforms: `tl.grad` of it,
`tl.jit` of it, `tl.vmap` of it, and calls of it inside compiled code."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, cast

import numpy as np

from . import api
from .ad import batch
from .ad.batch import VmapError, vmap_graph
from .ad.reverse import AS_PARSED, EACH_ELEMENT
from .api import (
    BOUND_TYPES,
    Transformed,
    _api,
    building,
    building_kinds,
    draws_or_prints,
    graph_of,
)
from .backend import Compiled
from .frontend.parser import RESOLVER
from .ir import Graph
from .ir.edit import set_kind
from .ir.nodes import Apply, Constant, Node
from .ir.primitive import Primitive
from .primitives.batch_rules import RAGGED, RaggedBatch
from .runtime import ZERO, tree_leaves, tree_unflatten
from .vmap_axes import AxesMismatch, call_axes, generic_axes, is_sequence, params_of

# (what kind inference says of an original node: its number of axes, its number of items)
Facts = Callable[[Node], int | None]


def _as_example(k: Any) -> Any:
    """The kind of one example's argument whose kind as an element of a batch is `k`:
    an element with no axes is a number (`_kind_of_example`: a NumPy scalar's `item()`)."""
    from .opt.kinds import ArrayKind

    if type(k) is ArrayKind and k.shape == () and k.dtype != "?":
        return _kind_of_example(np.zeros((), k.dtype)[()])
    return k


def _kind_of_example(e: Any) -> Any:
    """The kind of one example's argument (a NumPy scalar here is a number of its kind)."""
    from .opt.kinds import value_kind

    return value_kind(e.item() if isinstance(e, np.generic) else e)


def _with_kinds(fg: Graph, kinds: list[Any], optimized: bool = True
                ) -> tuple[Graph, Facts, Facts]:
    """A copy of `fg` whose parameters have the kinds of one example's arguments,
    optimized for them, and what kind inference says of its nodes' numbers of axes and
    of the numbers of items of its tuples (so that the V transform writes batched code
    whose shapes are known). `optimized=False`: the copy as
    parsed (its own `tl.vmap` calls batched for the kinds, as parsed too), for reverse
    mode to differentiate (`reverse.AS_PARSED`): kinds give the numbers of axes all the
    same, so no batching rule decides them at run time."""
    from .ad.api_graphs import expand_transforms
    from .api import optimization_passes
    from .ir.clone import copy_module, is_recursive
    from .opt import optimize
    from .opt.kinds import FLOAT, INT, SCALAR, TupleKind, kind, ndim_of
    from .opt.loop_facts import LoopFacts

    # (a `tl.vmap` inside f, batched for the shapes its arguments have in one example;
    # not batched without them first where each can be)
    batched = _batch_for_kinds(expand_transforms(fg, defer_vmap=True), tuple(kinds), True,
                               optimized)
    if batched is None:
        batched = _batch_for_kinds(expand_transforms(fg), tuple(kinds), False, optimized)
        assert batched is not None
    copy = copy_module(batched)
    if not is_recursive(copy):
        for p, k in zip(copy.parameters, kinds, strict=True):
            set_kind(p, k)
    # The program for one example, optimized first (its derivative code inlined and its
    # plumbing gone): the V transform batches what one example runs.
    passes = optimization_passes()
    if optimized and (passes is None or passes):
        optimize(copy, passes)
    facts = LoopFacts(copy)

    def example_ndim(node: Node) -> int | None:
        k = kind(node, facts)
        if k in (FLOAT, INT, SCALAR):
            return 0
        return ndim_of(k)

    def example_items(node: Node) -> int | None:
        k = kind(node, facts)
        return len(k.items) if isinstance(k, TupleKind) else None

    return copy, example_ndim, example_items


def _element_kind(k: Any, axis: Any) -> Any:
    """The kind of one element of a value of kind `k` mapped over `axis` (as `in_axes`
    gives it: an int for every leaf, None for none, a tuple or list item by item), or
    `_UNKNOWN` where the kind does not say it (a leaf of unknown kind, a number)."""
    from .opt.kinds import ArrayKind, ListKind, TupleKind, array, list_of, tuple_of

    if axis is None:
        return k
    if isinstance(axis, (tuple, list)):
        if not isinstance(k, TupleKind) or len(k.items) < len(axis):
            return _UNKNOWN
        items = [_element_kind(item, a) for item, a in
                 zip(k.items, [*axis, *[None] * (len(k.items) - len(axis))], strict=True)]
        return _UNKNOWN if _UNKNOWN in items else tuple_of(items)
    if not isinstance(axis, int):
        return _UNKNOWN
    if isinstance(k, ArrayKind):
        if not -len(k.shape) <= axis < len(k.shape):
            return _UNKNOWN
        shape = list(k.shape)
        del shape[axis]
        return array(k.dtype, tuple(shape))
    if isinstance(k, TupleKind):
        items = [_element_kind(item, axis) for item in k.items]
        return _UNKNOWN if _UNKNOWN in items else tuple_of(items)
    if isinstance(k, ListKind) and k.element is not None:
        element = _element_kind(k.element, axis)
        return _UNKNOWN if element is _UNKNOWN else list_of(element)
    return _UNKNOWN


_UNKNOWN = object()


def _mapped_lengths(k: Any, axis: Any) -> list[int]:
    """The lengths of the mapped axes of the leaves of a value of kind `k` (one whose
    `_element_kind` is known)."""
    from .opt.kinds import ArrayKind, ListKind, TupleKind

    if axis is None:
        return []
    if isinstance(axis, (tuple, list)):
        items = k.items if isinstance(k, TupleKind) else ()
        return [n for item, a in zip(items, axis, strict=False)
                for n in _mapped_lengths(item, a)]
    if isinstance(k, ArrayKind):
        return [k.shape[axis]]
    if isinstance(k, TupleKind):
        return [n for item in k.items for n in _mapped_lengths(item, axis)]
    return _mapped_lengths(k.element, axis) if isinstance(k, ListKind) else []


def _batch_for_kinds(root: Graph, kinds: tuple, deferred: bool = False,
                     optimized: bool = True) -> Graph | None:
    """`root` with each `tl.vmap` called inside it batched again for the shapes its
    arguments have when `root`'s arguments have these kinds (a copy; `root` where there
    is none, or where no call's argument kinds are known).

    Inside compiled code, `tl.vmap(f)` is batched when the program is parsed, before any
    shape is known: its batching rules decide at run time (`matmul_batched`, `lift`, the
    type tests of the plumbing of a `tl.grad` inside f), and a derivative of the program
    differentiates those decisions too. A compiled version is built for arguments of
    known kinds: where that tells the kinds of a `tl.vmap` call's arguments, f is batched
    as a `tl.vmap` called with arguments is (`Vmapped.build_graph_for`): optimized for
    one element's kinds first, its batched code written for their numbers of axes.

    `deferred`: `root`'s own `tl.vmap` calls are not built yet (`expand_transforms` with
    `defer_vmap`); returns the copy where each is batched for the kinds, else None
    (then the caller builds them and asks again). A
    function that reads values of the code around it (a closure) is batched as one that
    takes them as arguments, unmapped (`_closed`): their kinds are known there too."""
    from .ad.api_graphs import JVP_OF_VMAP, VMAP_STAND_INS, expand_transforms
    from .ir.clone import copy_module, is_recursive
    from .ir.edit import set_inputs
    from .ir.nodes import (
        PENDING_TRANSFORMS,
        Constant,
        free_variables,
        graph_nodes,
        is_constant_graph,
        reachable_graphs,
    )
    from .opt.kinds import kind
    from .opt.loop_facts import LoopFacts

    unchanged = None if deferred else root
    if not VMAP_STAND_INS and not (deferred and PENDING_TRANSFORMS):
        return unchanged  # (no program has one: nothing to walk)
    # (each with what it stands for; those not built yet, with `deferred`, by their spec)
    specs = {h.id: h.transform if h.transform is not None else VMAP_STAND_INS[h]
             for h in reachable_graphs(root) if h in VMAP_STAND_INS or
             (h.transform is not None and h.transform.kind == "vmap")}
    specs.update((h.id, JVP_OF_VMAP[h]) for h in reachable_graphs(root) if h in JVP_OF_VMAP)
    stand_ins = [h for h in reachable_graphs(root) if h.id in specs]
    if not stand_ins or is_recursive(root) or not any(k is not None for k in kinds):
        return unchanged
    gmap: dict[int, Graph] = {}
    nmap: dict[int, Node] = {}
    copy = copy_module(root, gmap, nmap)
    for p, k in zip(copy.parameters, kinds, strict=False):
        set_kind(p, k)
    facts = LoopFacts(copy)
    copies = {gmap[h.id].id: h for h in stand_ins}
    calls: dict[int, list[Apply]] = {}
    passed: set[int] = set()  # (stand-ins used as values, not only called)
    for g in reachable_graphs(copy):
        for node in graph_nodes(g):
            for i, x in enumerate(node.inputs):
                if is_constant_graph(x) and x.value.id in copies:
                    if i == 0:
                        calls.setdefault(x.value.id, []).append(node)
                    else:
                        passed.add(x.value.id)
    changed = False
    for hid, sites in calls.items():
        spec = specs[copies[hid].id]
        target = spec.target
        if hid in passed or target.vararg:
            continue
        if spec.kind == "jvp":
            jvp = _jvp_for_kinds(target, sites, facts, nmap)
            if jvp is not None:
                made, outer_nodes = jvp
                n = len(target.parameters)
                zeros = [Constant(ZERO)] * len(outer_nodes)
                for site in sites:
                    # (the values of the code around it, as arguments: zero tangents)
                    set_inputs(site, [Constant(made, site.inputs[0].loc), *outer_nodes,
                                      *site.inputs[1:1 + n], *zeros, *site.inputs[1 + n:]])
                changed = True
            continue
        # (the values of the code around it that the function reads, in the copy: passed
        # as unmapped arguments, where each has a kind; its transforms built first, but
        # for its own `tl.vmap` calls: what they read is known then)
        free = free_variables(expand_transforms(target, defer_vmap=True))
        outer = [nmap.get(fv.id) for fv in free]
        outer_kinds = [kind(o, facts) if o is not None else None for o in outer]
        if any(k is None for k in outer_kinds) or _reads_through_closures(target, free):
            continue
        in_axes, out_axes, axis_size = spec.argnums
        n = len(target.parameters)
        axes = [in_axes] * n if isinstance(in_axes, int) or in_axes is None \
            else list(in_axes) + [None] * (n - len(in_axes))
        found = {tuple(_element_kind(kind(a, facts), ax) for a, ax in
                       zip(site.inputs[1:], axes, strict=False)) for site in sites}
        if len(found) != 1:
            continue
        elements = next(iter(found))
        if len(elements) != n or _UNKNOWN in elements or \
                not any(e is not None for e in elements):
            continue
        sizes = {length for site in sites
                 for a, ax in zip(site.inputs[1:], axes, strict=False)
                 for length in _mapped_lengths(kind(a, facts), ax)}
        if axis_size is not None:
            sizes.add(axis_size)
        if len(sizes) != 1:
            continue  # (mapped axes of different lengths: refused where it runs)
        if free:
            # (the transforms inside built first: the copy takes their bodies)
            target = _closed(expand_transforms(target), free)
            elements = (*outer_kinds, *elements)
            axes = [None] * len(free) + axes
        fg, example_ndim, example_items = _with_kinds(target, list(elements), optimized)
        # (the batch's size, known from the arguments' shapes: every shape of the
        # batched code is known)
        size = sizes.pop()
        batched = vmap_graph(fg, axes, out_axes, size, target.name, example_ndim,
                             example_items=example_items)
        if optimized:
            AS_PARSED[batched] = _as_parsed(target, axes, out_axes, size, list(elements))
        EACH_ELEMENT[batched] = _each_element(target, axes, out_axes, size)
        for site in sites:
            set_inputs(site, [Constant(batched, site.inputs[0].loc),
                              *cast("list[Node]", outer), *site.inputs[1:]])
        changed = True
    for p in copy.parameters:
        set_kind(p, None)
    if deferred:
        # (a call not batched for the kinds reaches the empty copy of its stand-in)
        empty = {gmap[h.id].id for h in stand_ins if h.transform is not None}
        if not changed or any(g.id in empty for g in reachable_graphs(copy)):
            return None
    return copy if changed else root


api.BATCH_FOR_KINDS = _batch_for_kinds


def _jvp_for_kinds(target: Graph, sites: list[Apply], facts: Any, nmap: dict[int, Node]
                   ) -> tuple[Graph, list[Node]] | None:
    """The jvp of `target` (a function that calls `tl.vmap`, called through a `tl.jvp`
    stand-in at `sites`, in the copy `_batch_for_kinds` makes) with those calls batched
    for the kinds of its primals there: F of code whose shapes are known, not of the
    batching rules' run-time decisions, which the optimizer then cannot fold
    (`tl.jacfwd(tl.jacrev(f))` inside compiled code, a `tl.vmap` of a `tl.jvp` of a
    `tl.vmap`: 36,000 lines and 40 s of compile before, 53 lines and half a second now).
    A `target` that reads values of the code around it (a closure) is taken as a
    function of those values first (`_closed`), their tangents zero: returns the jvp and
    those values in the copy (`nmap`: the copy's node of each original's), to pass
    before the primals. None where such a value or a primal has no known kind (or
    primals' kinds differ between sites), or forward mode refuses the batched code (a
    step of the optimizer without a forward rule)."""
    from .ad.api_graphs import VMAP_STAND_INS, jvp_graph
    from .ad.forward import FTransform, OptimizedCodeRefused
    from .ir.nodes import free_variables
    from .opt.kinds import kind

    n = len(target.parameters)
    if any(len(site.inputs) != 1 + 2 * n for site in sites):
        return None
    found = {tuple(kind(a, facts) for a in site.inputs[1:1 + n]) for site in sites}
    if len(found) != 1:
        return None
    kinds = next(iter(found))
    if target in VMAP_STAND_INS:
        # (`tl.jacfwd(tl.vmap(f))`: the jvp of a function that calls the `tl.vmap`)
        target = _calling(target)
    free = free_variables(target)
    outer = [nmap.get(fv.id) for fv in free]
    if free:
        if any(o is None for o in outer) or _reads_through_closures(target, free):
            return None
        kinds = (*[kind(o, facts) for o in outer if o is not None], *kinds)
        target = _closed(target, free)
    if any(k is None for k in kinds):
        return None
    for optimized in (True, False):
        batched = _batch_for_kinds(target, kinds, optimized=optimized)
        if batched is None or batched is target:
            return None
        try:
            return jvp_graph(batched, FTransform()), cast("list[Node]", outer)
        except OptimizedCodeRefused:
            continue
    return None


def _calling(h: Graph) -> Graph:
    """A function of `h`'s parameters that calls `h` (a stand-in, which
    `_batch_for_kinds` batches where it is called)."""
    g = Graph(h.name, None, h.loc)
    g.derived = True
    params = [g.add_parameter(p.name, p.loc) for p in h.parameters]
    g.output = g.apply(Constant(h, h.loc), *params, loc=h.loc)
    g.effects = [g.output]
    return g


def _reads_through_closures(target: Graph, free: list[Node]) -> bool:
    """Whether `target` calls a function of the code around it that reads values of
    that code besides `free` (`model` in `tl.vmap(lambda c: tl.grad(lambda u: model(u)
    ...))`, `model` reading `w`): `_closed` cannot pass those, and the copy would read
    them out of their scope. Such a call keeps the run-time rules."""
    from .ir.nodes import free_variables, is_inside, reachable_graphs

    ids = {fv.id for fv in free}
    graphs = reachable_graphs(target)
    reached = {h.id for h in graphs}
    return any(fv.id not in ids and (fv.graph is None or fv.graph.id not in reached)
               for h in graphs if not is_inside(h, target) for fv in free_variables(h))


def _as_parsed(target: Graph, axes: list[Any], out_axes: Any, size: int,
               elements: list[Any]) -> Callable[[], Graph]:
    """What reverse mode differentiates instead of `target` batched as optimized for one
    element's kinds `elements` (`reverse.AS_PARSED`): the same optimized program with
    the optimizer's own steps written as the differentiable code they stand for
    (`_differentiable_steps`), batched as before; where one has no such meaning,
    `target` batched as parsed (its own `tl.vmap` calls batched for their kinds, as
    parsed too). Batched as parsed, `tl.vmap(tl.hessian(f))` was 12,000 graphs (15,000
    with the inner `tl.vmap` batched without kinds) that J took minutes to
    differentiate; as optimized, a few hundred."""
    def build() -> Graph:
        fg, example_ndim, example_items = _with_kinds(target, elements)
        if not _differentiable_steps(fg):
            fg, example_ndim, example_items = _with_kinds(target, elements, optimized=False)
        return vmap_graph(fg, axes, out_axes, size, target.name, example_ndim,
                          example_items=example_items, prepare=False)
    return build


def _each_element(target: Graph, axes: list[Any], out_axes: Any, size: int
                  ) -> Callable[[], Graph]:
    """How to call `target` as parsed on each element of the batch and stack the results
    (`reverse.EACH_ELEMENT`: a gradient whose batched loops came out ragged)."""
    def build() -> Graph:
        from .ad.api_graphs import expand_transforms

        return vmap_graph(expand_transforms(target), axes, out_axes, size, target.name,
                          prepare=False, each=True)
    return build


def _differentiable_steps(root: Graph) -> bool:
    """Write the optimizer's own steps in `root` and the graphs it reaches (in place;
    `Primitive.after_ad`, which have no reverse rule) as the code they stand for: `own(x)`
    and `dense_sens(d)` are their argument (`gadd(x, ZERO)`), `gadd_owned(a, b)` is
    `gadd(a, b)`, `scatter_onto(acc, x, indices, ds)` (and `_known`) is
    `gadd(scatter_sens(x, indices, ds), acc)`. False where another such step is left
    (then `root` is not for reverse mode)."""
    from .ir.edit import set_inputs
    from .ir.nodes import Constant, graph_nodes, prim_of, reachable_graphs
    from .primitives import PRIMITIVES as P

    graphs = reachable_graphs(root)
    for g in graphs:
        for node in graph_nodes(g):
            prim = prim_of(node)
            if prim is None or not prim.after_ad or prim.differentiable:
                continue
            assert isinstance(node, Apply)
            args = node.inputs[1:]
            if prim.name in ("own", "dense_sens"):
                set_inputs(node, [Constant(P["gadd"]), args[0], Constant(ZERO)])
            elif prim.name == "gadd_owned":
                set_inputs(node, [Constant(P["gadd"]), *args])
            elif prim.name in ("scatter_onto", "scatter_onto_known"):
                pieces = g.apply(P["scatter_sens"], *args[1:], loc=node.loc)
                set_inputs(node, [Constant(P["gadd"]), pieces, args[0]])
    for g in graphs:
        g.invalidate()
    return not any(
        isinstance(x, Constant) and isinstance(x.value, Primitive) and x.value.after_ad
        and not x.value.differentiable
        for g in reachable_graphs(root) for node in graph_nodes(g) for x in node.inputs)


def _closed(target: Graph, free: list[Node]) -> Graph:
    """`target` as a function of the values `free` of the code around it that it reads,
    then of its own parameters (a copy; those values are its first parameters).

    The copies of the `tl.vmap` and `tl.jvp` stand-ins inside it stand for what the
    originals do (`VMAP_STAND_INS`, `JVP_OF_VMAP`), the functions they transform copied
    with the values `free` read from the new parameters: so that `_batch_for_kinds`
    batches them for kinds in the copy too (`tl.jacfwd(tl.jacrev(lambda v: ... w ...))`,
    whose outer `tl.vmap` batches a closure over `x` that calls the jvp of the jacrev)."""
    closed = Graph(target.name, None, target.loc)
    closed.derived = target.derived
    taken = [closed.add_parameter(fv.name or "free", fv.loc) for fv in free]
    params = [closed.add_parameter(p.name, p.loc) for p in target.parameters]
    _copy_into(target, closed, params, {fv.id: p for fv, p in zip(free, taken, strict=True)})
    return closed


def _copy_into(target: Graph, into: Graph, params: Sequence[Node],
               substitute: dict[int, Node]) -> None:
    """Copy `target`'s body into `into` (`inline_body`), its free variables in
    `substitute` replaced, the copies of its stand-ins standing for what theirs do,
    their functions copied where they read a value replaced."""
    from .ad.api_graphs import JVP_OF_VMAP, VMAP_STAND_INS
    from .ir.clone import inline_body
    from .ir.nodes import TransformSpec, free_variables, reachable_graphs

    copies: dict[int, Graph] = {}
    nodes = dict(substitute)
    into.output, into.effects = inline_body(target, into, params, substitute,
                                            copies=copies, node_copies=nodes)
    for table in (VMAP_STAND_INS, JVP_OF_VMAP):
        for h in reachable_graphs(target):
            spec = table.get(h)
            copy = copies.get(h.id)
            if spec is None or copy is None or copy is h:
                continue
            fn = spec.target
            if any(fv.id in nodes for fv in free_variables(fn)):
                # (a function reading values of `target`, or values replaced: a copy
                # nested where the stand-in's copy is, reading their copies)
                fn = Graph(spec.target.name, copy.parent, spec.target.loc)
                fn.copy_attributes(spec.target)
                _copy_into(spec.target, fn, [fn.add_parameter(p.name, p.loc)
                                             for p in spec.target.parameters], nodes)
            table[copy] = TransformSpec(spec.kind, fn, spec.argnums, spec.has_aux)


def _example(arg: Any, axis: Any) -> Any:
    """Element 0 of an argument along its mapped axis (what one example looks like)."""
    from .runtime import tree_unflatten

    if axis is None:
        return arg
    if isinstance(axis, int):
        leaves = tree_leaves(arg)
        if not all(np.ndim(leaf) > 0 for leaf in leaves):
            return arg
        return tree_unflatten(arg, [_first_along(np.asarray(leaf), axis) for leaf in leaves])
    if isinstance(axis, (tuple, list)) and isinstance(arg, (tuple, list)):
        parts = [_example(a, x) for a, x in zip(arg, axis, strict=False)]
        return type(arg)(parts) if type(arg) in (tuple, list) else type(arg)(*parts)
    return arg


def _first_along(leaf: np.ndarray, axis: int) -> Any:
    """Element 0 along `axis`; of an empty batch, zeros of an element's shape and type
    (only its kind is used)."""
    if leaf.shape[axis] == 0:
        return np.zeros(np.delete(np.array(leaf.shape), axis), leaf.dtype)[()]
    return np.take(leaf, 0, axis=axis)


def per_example_gradient_graph(fg: Graph, argnums: int | tuple[int, ...], in_axes: list[Any],
                                out_axes: Any, axis_size: int | None) -> Graph:
    """`vmap(grad(f, argnums), in_axes)` as the gradient of a batched function: each
    differentiated argument is given one copy per element (broadcast where it is not
    mapped), and the gradient of `sum(vmap(f)(...))` with respect to the copies is each
    element's gradient. (Used where `f`'s derivative code cannot be batched itself.)"""
    from .ad.api_graphs import expand_transforms, grad_graph
    from .ad.batch import helper_call
    from .ir.nodes import Constant
    from .primitives import PRIMITIVES as P

    nums = (argnums,) if isinstance(argnums, int) else tuple(argnums)
    n = len(fg.parameters)
    nums = tuple(a % n for a in nums)
    copies = [0 if i in nums else a for i, a in enumerate(in_axes)]
    summed = Graph(f"batched_{fg.name}", None, fg.loc)
    ps = [summed.add_parameter(p.name, p.loc) for p in fg.parameters]
    # (Batched as parsed, its transforms expanded: the program optimized first, with the
    # steps for a final program, gave wrong second derivatives once differentiated again
    # (a loop over layers whose loss takes a gradient:
    # tests/test_vmap_per_example_second_order.py); the whole program is optimized once
    # built.)
    expand_transforms(fg)
    batched = vmap_graph(fg, copies, 0, axis_size, fg.name, prepare=False)
    call = summed.apply(Constant(batched), *ps, loc=fg.loc)
    summed.effects = [call]
    summed.output = summed.apply(P["np.sum"], call, Constant(None), Constant(None),
                                 Constant(False))
    grads = grad_graph(summed, argnums, False, False)
    w = Graph(f"per_example_grad_{fg.name}", None, fg.loc)
    wp = [w.add_parameter(p.name, p.loc) for p in fg.parameters]
    size: Node | None = Constant(axis_size) if axis_size is not None else None
    for p, a in zip(wp, in_axes, strict=True):
        if isinstance(a, int) and size is None:
            size = helper_call("size_of", w, [p, Constant(a)])
    if size is None:
        raise VmapError("vmap: no argument is mapped; give axis_size")
    args: list[Node] = []
    for i, (p, a) in enumerate(zip(wp, in_axes, strict=True)):
        if i not in nums:
            args.append(p)
        elif a is None:
            args.append(helper_call("broadcast", w, [size, p]))
        elif isinstance(a, int):
            args.append(helper_call("move_in", w, [p, Constant(a)]))
        else:
            raise VmapError("vmap of a gradient: a differentiated argument's in_axes must "
                            "be an int or None")
    out = w.apply(Constant(grads), *args, loc=fg.loc)
    w.effects = [out]
    if isinstance(out_axes, int):
        w.output = helper_call("move_out", w, [out, Constant(out_axes)])
    else:
        raise VmapError("vmap of a gradient: out_axes must be an int")
    return w


def _prepared(fg: Graph) -> Graph:
    """A copy of `fg` optimized as it is (no argument kinds): what the V transform
    batches for a `tl.vmap` inside compiled code. A closure is batched as it is: the
    optimizer rewrites whole programs, and the values it reads belong to the code
    around it (which is optimized with the batched code, once that is built)."""
    from .ad.api_graphs import expand_transforms
    from .api import optimization_passes
    from .ir.clone import copy_module
    from .ir.nodes import free_variables
    from .opt import optimize

    expand_transforms(fg)  # (a `tl.grad` inside the function mapped: built first)
    passes = optimization_passes()
    if (passes is not None and not passes) or free_variables(fg):
        return fg
    copy = copy_module(fg)
    optimize(copy, passes)
    return copy


batch.PREPARE = _prepared


class Vmapped(Transformed):
    """`tl.vmap(f)`: `f` mapped over a batch axis of its arguments."""

    kind = "vmap"
    # (a vmap object made for one kind of call, `for_call`: `in_axes` has one entry per
    # parameter)
    _per_parameter = False

    def __init__(self, fun: Callable[..., Any], in_axes: Any = 0, out_axes: Any = 0,
                 axis_size: int | None = None, backend: str | None = None):
        super().__init__(fun, backend)
        # (the vmap object each kind of call runs: `for_call`)
        self._calls: dict[Any, Transformed] = {}
        self.in_axes = in_axes
        self.out_axes = out_axes
        self.axis_size = axis_size

    def _axes(self, n: int) -> list[Any]:
        """`_axes_of(n)`, computed once per number of arguments (every call checks its
        arguments against them)."""
        cache = self.__dict__.setdefault("_axes_cache", {})
        if n not in cache:
            cache[n] = self._axes_of(n)
        return list(cache[n])

    def _axes_of(self, n: int) -> list[Any]:
        """One axis per parameter of the function (as calls bind them: `*args` packed
        into one tuple) for the call it is built for where no call is known
        (`vmap_axes.generic_call`: the parameters without a default passed
        positionally, or as many as a tuple `in_axes` has entries); a call passing
        other arguments runs a vmap object of its own (`for_call`)."""
        if self._per_parameter:  # (a call's: its axes, one per parameter)
            axes = list(self.in_axes)
            return axes[:n] + [None] * (n - len(axes))
        params = self._params()
        if len(params) != n:  # (a transform's graph: one entry per parameter)
            if not is_sequence(self.in_axes):
                return [self.in_axes] * n
            return list(self.in_axes) + [None] * (n - len(self.in_axes))
        try:
            return generic_axes(params, self.in_axes, self._name())
        except AxesMismatch as exc:
            raise VmapError(str(exc), _caller_location()) from None

    def _name(self) -> str:
        return str(getattr(self.__tapeless_wrapped__, "__name__", "the function"))

    def _params(self) -> list[Any]:
        """The function's parameters, as `vmap_axes` reads them (found once)."""
        if "_param_list" not in self.__dict__:
            self.__dict__["_param_list"] = params_of(self.__tapeless_wrapped__)
        return cast("list[Any]", self.__dict__["_param_list"])

    def for_call(self, args: tuple, kwargs: dict) -> Transformed:
        """The vmap object that runs a call passing these arguments (JAX's rules,
        `vmap_axes.call_axes`: its axes depend on how many positional arguments the call
        passes and which by keyword): this one where they are the axes it is built for
        (`_axes_of`), else one of this call's, made once per kind of call. A located
        `VmapError` where a tuple `in_axes` has not one entry per positional argument."""
        # (by the number of positional arguments, and the keywords where there are some)
        shape: Any = (len(args), tuple(kwargs)) if kwargs else len(args)
        hit = self._calls.get(shape)
        if hit is None:
            hit = self._calls[shape] = self._made_for_call(args, kwargs)
        return hit

    def _made_for_call(self, args: tuple, kwargs: dict) -> Transformed:
        """`for_call`, found for a kind of call (this object where its axes are the
        call's, or where it is made for one kind of call or reads its axes its own way:
        `HessianColumns`)."""
        if self._per_parameter or type(self)._axes is not Vmapped._axes:
            return self
        params = self._params()
        try:
            axes = call_axes(params, self.in_axes, len(args), kwargs, self._name())
        except AxesMismatch as exc:
            raise VmapError(str(exc), _caller_location()) from None
        # (`tl.vmap(tl.vmap(f))`, `tl.vmap(tl.jit(tl.vmap(f)))`: the function mapped is
        # called with the arguments passed as this call passes them)
        fun = self.fun.for_call(args, kwargs) if isinstance(self.fun, Transformed) \
            else self.fun
        if fun is self.fun and axes == self._axes(len(params)):
            return self
        made = Vmapped(fun, tuple(axes), self.out_axes, self.axis_size, self.backend)
        made._per_parameter = True
        return made

    def build_graph(self) -> Graph:
        return self._vmapped(graph_of(self.fun))

    def _get(self, args: tuple = ()) -> Any:
        # (What one example looks like: the batched code is written for its shapes.)
        self._examples = [_example(a, x) for a, x in
                          zip(args, self._axes(len(args)), strict=False)] if args else None
        try:
            return super()._get(args)
        finally:
            self._examples = None

    def build_graph_for(self, key: tuple) -> Graph:
        examples = getattr(self, "_examples", None)
        if examples is not None:
            elements: list[Any] | None = [_kind_of_example(e) for e in examples]
            size = self.axis_size
        else:
            # (`tl.jit(tl.vmap(f))`, `tl.grad(tl.vmap(f))`: built for the kinds of the
            # arguments it is compiled for, as `tl.vmap(f)` called alone is for one
            # example's, not as generic code that tests kinds and shapes at run time)
            elements, size = self._elements(building_kinds(key))
        with building(None, ()):  # (f's graph, as for a call of `tl.vmap(f)` alone)
            return self._batched_graph(key, examples, elements, size)

    def graph_for_kinds(self, kinds: tuple) -> Graph:
        """The batched graph for arguments of these kinds (where they say one element's
        kinds, else the generic `graph`): what `tl.vmap(tl.vmap(f))` batches."""
        elements, size = self._elements(kinds)
        if elements is None or self.binds_functions:
            return self.graph
        self._validate()
        with RESOLVER.recording() as deps, building(None, ()):
            graph = self._batched_graph(None, None, elements, size)
        self._used(deps)
        return graph

    def _elements(self, kinds: tuple | None) -> tuple[list[Any] | None, int | None]:
        """The kinds of one element of arguments of kinds `kinds` and the batch's size
        (the size None where the arguments do not say it); `(None, None)` where their
        kinds do not say one element's (a subclass that batches its own way: none)."""
        if kinds is None or type(self)._vmapped is not Vmapped._vmapped:
            return None, None
        axes = self._axes(len(kinds))
        elements = [_as_example(_element_kind(k, ax)) for k, ax in zip(kinds, axes, strict=True)]
        if _UNKNOWN in elements:
            return None, None
        sizes = {n for k, ax in zip(kinds, axes, strict=True) for n in _mapped_lengths(k, ax)}
        if self.axis_size is not None:
            sizes.add(self.axis_size)
        return elements, sizes.pop() if len(sizes) == 1 else self.axis_size

    def _batched_graph(self, key: tuple | None, examples: list[Any] | None,
                       elements: list[Any] | None, size: int | None) -> Graph:
        """`build_graph_for`, given one element's example values or kinds (None: the
        generic graph)."""
        if self.binds_functions:  # (`vmap(grad(f))`: the gradient for these arguments)
            assert isinstance(self.fun, Transformed) and key is not None
            fg = self.fun.graph_for(key)
        elif elements is not None and type(self.fun) is Vmapped:
            fg = self.fun.graph_for_kinds(tuple(elements))  # (`tl.vmap(tl.vmap(f))`)
        else:
            # (Called with arguments, the function's own `tl.vmap` calls are left to
            # `_with_kinds`, which batches each for one example's kinds: never batched
            # without them first, the work a first call would do and throw away.)
            fg = graph_of(self.fun, defer_vmap=elements is not None)
        try:
            if examples is not None or elements is None:
                return self._vmapped(fg, examples, derivative=self._reverse_mode())
            return self._vmapped_for(fg, elements, size, derivative=self._reverse_mode())
        except VmapError as exc:
            # Derivative code under a condition that differs across the batch (a loop
            # to a per-element tolerance): the gradient of the batched function instead.
            from .grad_api import GradFunction

            if "derivative code" not in str(exc) or not isinstance(self.fun, GradFunction) \
                    or self.fun.has_aux or self.fun.with_value:
                raise
            return per_example_gradient_graph(graph_of(self.fun.fun), self.fun.argnums,
                                              self._axes(len(fg.parameters)), self.out_axes,
                                              self.axis_size)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        target = self.for_call(args, kwargs)
        if target is not self:
            return target(*args, **kwargs)
        if self.__dict__.get("_each_outer"):
            return self._each_element(self.bind(args, kwargs))
        try:
            return super().__call__(*args, **kwargs)
        except VmapError as exc:
            # `tl.vmap(tl.vmap(tl.grad(f)))` where f's trip counts differ across the
            # batch: the inner vmap differentiates its batched function instead of
            # batching f's derivative code (`_batched_graph`), whose stacks this one
            # cannot batch again; it runs on each element of this batch, as a loop.
            inner = self.fun
            while isinstance(inner, Transformed):
                inner = inner.fun
            if "derivative code" not in str(exc) or not isinstance(self.fun, Vmapped) \
                    or draws_or_prints(graph_of(inner)):
                raise
            self.__dict__["_each_outer"] = True
            return self._each_element(self.bind(args, kwargs))
        except RaggedBatch as exc:
            # A value whose shape differs across the batch (a loop over layers of
            # different widths that some elements leave early): what a loop over the
            # batch computes, each element by the function's compiled code, unless the
            # batched code's effects (draws, prints) already ran for part of it.
            self._refuse_effects(exc)
            return self._each_element(self.bind(args, kwargs))

    def each_element(self, key: tuple, args: tuple) -> Compiled | None:
        """The per-element fallback as compiled code (`tl.jit` of this vmap object,
        whose batched code met a `RaggedBatch`): `_each_element`."""
        self._refuse_effects(RaggedBatch())
        return Compiled(lambda *a: self._each_element(a), "", "", {})

    def stand_in_options(self) -> tuple[Callable[..., Any], tuple] | None:
        """This object called inside compiled code as `tl.vmap(fun, in_axes, out_axes,
        axis_size)` written there would be (the function and those options), where it
        maps a plain Python function (the backend is the compiled code's); None
        otherwise (its graph is called as it is)."""
        import types

        if type(self) is not Vmapped or self._per_parameter or \
                not isinstance(self.fun, types.FunctionType):
            return None
        # (the axes of each call there as of a call here: `vmap_axes`, by the front end)
        return self.fun, (self.in_axes, self.out_axes, self.axis_size)

    def each_element_graph(self, args: tuple) -> Graph | None:
        """The program that calls the function on each element of `args` and stacks
        the results (what reverse mode differentiates where the batched code met a
        `RaggedBatch`: `tl.vjp` of this vmap object); None where the function draws
        random numbers or prints."""
        from .ad.api_graphs import expand_transforms

        if self._has_effects() or self._reverse_mode():
            return None
        axes = self._axes(len(args))
        target = graph_of(self.fun)
        return vmap_graph(expand_transforms(target), axes, self.out_axes,
                          self._batch_size(args, axes), target.name, prepare=False, each=True)

    def _refuse_effects(self, exc: RaggedBatch) -> None:
        """A located error where the function draws random numbers or prints: the
        batched code did some of that before it met `exc`."""
        if self._has_effects():
            raise VmapError(f"{exc}; the function draws random numbers or prints, "
                            "which the batched code did before it found this, so it "
                            "cannot run again per element: loop over the batch "
                            "instead") from exc

    def _has_effects(self) -> bool:
        """Whether the function mapped draws random numbers or prints (found once)."""
        if "_effects" not in self.__dict__:
            fun = self.fun.fun if self._reverse_mode() else self.fun  # type: ignore[attr-defined]
            self.__dict__["_effects"] = draws_or_prints(graph_of(fun))
        return bool(self.__dict__["_effects"])

    def _each_element(self, args: tuple) -> Any:
        """`f` on each element, results stacked along `out_axes` (what a loop over the
        batch computes): the per-element fallback of a batch that one batched array
        cannot hold (`RaggedBatch`)."""
        from .primitives.batch_rules import stack

        axes = self._axes(len(args))
        size = self._batch_size(args, axes)
        fn = self.fun if isinstance(self.fun, Transformed) else \
            self.__dict__.setdefault("_element_fn", api.jit(self.fun, self.backend))
        outs = [fn(*[_element_of(a, axis, i) for a, axis in zip(args, axes, strict=True)])
                for i in range(size)]
        if not outs:
            raise VmapError("vmap over an empty batch: " + RAGGED)
        return _stacked_out(outs, self.out_axes, stack)

    def _batch_size(self, args: tuple, axes: list[Any]) -> int:
        """The batch's size: `axis_size`, else the length of the first mapped axis."""
        if self.axis_size is not None:
            return self.axis_size
        sizes = (np.shape(leaf)[ax] for a, axis in zip(args, axes, strict=True)
                 for value, ax in _mapped_pairs(a, axis) for leaf in tree_leaves(value))
        return next(sizes, 0)  # (nothing mapped: an empty batch, refused by the caller)

    def _reverse_mode(self) -> bool:
        """Whether the function mapped is reverse-mode derivative code (`vmap(grad(f))`,
        `vmap(value_and_grad(f))`)."""
        from .grad_api import GradFunction

        return isinstance(self.fun, GradFunction)

    def _vmapped(self, fg: Graph, examples: list[Any] | None = None,
                 derivative: bool = False) -> Graph:
        elements = None if examples is None else [_kind_of_example(e) for e in examples]
        return self._vmapped_for(fg, elements, self.axis_size, derivative)

    def _vmapped_for(self, fg: Graph, elements: list[Any] | None, size: int | None,
                     derivative: bool = False) -> Graph:
        """`fg` batched: optimized for one element's kinds `elements` first, its batched
        code written for their numbers of axes (generic code where they are None)."""
        example_ndim = example_items = None
        if elements is not None:
            fg, example_ndim, example_items = _with_kinds(fg, elements)
        return vmap_graph(fg, self._axes(len(fg.parameters)), self.out_axes, size, fg.name,
                          example_ndim, derivative=derivative, example_items=example_items)

    def check_arguments(self, args: tuple) -> None:
        """The mapped axes must exist and have one length."""
        sizes = set()
        for i, (a, axis) in enumerate(zip(args, self._axes(len(args)), strict=True)):
            pairs = [(a, axis)] if not isinstance(axis, (tuple, list)) else \
                list(zip(a, axis, strict=False))
            for value, ax in pairs:
                if not isinstance(ax, int):
                    continue
                for leaf in tree_leaves(value):
                    nd = np.ndim(leaf)
                    if not -nd <= ax < nd:
                        raise VmapError(f"vmap: argument {i} has no axis {ax} to map over "
                                        f"(its shape is {np.shape(leaf)}); give it in_axes "
                                        "None or an array with that axis")
                    sizes.add(np.shape(leaf)[ax])
        if self.axis_size is not None:
            sizes.add(self.axis_size)
        if len(sizes) > 1:
            raise VmapError(f"vmap: the mapped axes have different lengths: {sorted(sizes)}")

    def check_each_call(self, key: tuple) -> bool:
        """The mapped axes are checked on every call unless the arguments' signatures
        hold every leaf's shape (arrays, numbers, and tuples, lists, dicts and records
        of them), which decides the check for all calls with this key."""
        return not all(_shapes_known(s) for s in key)


def _mapped_pairs(a: Any, axis: Any) -> list[tuple[Any, int]]:
    """The parts of an argument and their mapped axes (none for `None`)."""
    if isinstance(axis, (tuple, list)):
        return [pair for value, ax in zip(a, axis, strict=False)
                for pair in _mapped_pairs(value, ax)]
    return [(a, axis)] if isinstance(axis, int) else []


def _element_of(a: Any, axis: Any, i: int) -> Any:
    """Element `i` of an argument mapped over `axis` (as `in_axes` gives it)."""
    if axis is None:
        return a
    if isinstance(axis, (tuple, list)):
        items = [_element_of(v, ax, i) for v, ax in
                 zip(a, [*axis, *[None] * (len(a) - len(axis))], strict=True)]
        return tuple(items) if isinstance(a, tuple) else items
    return tree_unflatten(a, [np.moveaxis(leaf, axis, 0)[i] for leaf in tree_leaves(a)])


def _stacked_out(outs: list[Any], out_axes: Any, stack: Callable[[list[Any]], Any]) -> Any:
    """Per-element results as one batched result, its batch axis at `out_axes`."""
    if out_axes is None:
        return outs[0]
    if isinstance(out_axes, (tuple, list)):
        items = [_stacked_out([o[j] for o in outs], ax, stack)
                 for j, ax in enumerate(out_axes)]
        return tuple(items) if isinstance(outs[0], tuple) else items
    return tree_unflatten(outs[0], [np.moveaxis(leaf, 0, out_axes)
                                    for leaf in tree_leaves(stack(outs))])


def _caller_location() -> Any:
    """Where the user's code called into tapeless (the innermost frame outside the
    package): where an error about the call is located."""
    import linecache
    import sys

    from .ir.clone import in_package
    from .ir.nodes import Location

    frame = sys._getframe(1)
    while frame is not None and in_package(frame.f_code.co_filename):
        frame = frame.f_back  # type: ignore[assignment]
    if frame is None:
        return None
    line = frame.f_lineno
    return Location(frame.f_code.co_filename, line, 0,
                    linecache.getline(frame.f_code.co_filename, line))


def _shapes_known(sig: Any) -> bool:
    """Whether an argument's signature (`tapeless.api._signature`) holds the shape of
    each of its leaves."""
    from .api import LIST_OF

    if sig is float or sig is int:
        return True
    if not (isinstance(sig, tuple) and len(sig) == 2):
        return False
    head, rest = sig
    if isinstance(head, tuple) and isinstance(rest, str):  # (an array: shape, dtype)
        return True
    if head == LIST_OF:
        return _shapes_known(rest)
    if head is dict and isinstance(rest, tuple):
        return all(isinstance(kv, tuple) and len(kv) == 2 and _shapes_known(kv[1])
                   for kv in rest)
    if isinstance(head, type) and isinstance(rest, tuple):  # (a tuple, list or record)
        return all(_shapes_known(s) for s in rest)
    return False


BOUND_TYPES.add(Vmapped)


@_api
def vmap(fun: Callable[..., Any], in_axes: Any = 0, out_axes: Any = 0,
         axis_size: int | None = None, backend: str | None = None) -> Vmapped:
    """`fun` mapped over an axis of its arguments: `vmap(f)(xs)[i] == f(xs[i])`.

    `in_axes`: the axis of each positional argument to map over, as JAX reads it (an int
    for every positional argument the call passes, or one entry per positional argument
    passed: an int, None for an argument passed whole to every element, or a tuple or
    list matching a tuple or list argument); an argument passed by keyword is mapped
    over its axis 0, and a parameter not passed takes its default, the same for every
    element (`tapeless.vmap_axes`); `out_axes`: where the batch axis
    goes in the results; `axis_size`: the batch's length where no argument is mapped.
    Python control flow on values that differ across the batch runs per element (see
    `tapeless.ad.batch`). `backend`: as for `tl.jit`."""
    return Vmapped(fun, in_axes, out_axes, axis_size, backend)

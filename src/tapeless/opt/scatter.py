"""Sensitivities of element reads added onto a value made elsewhere, kept sparse.

A recursion that reads a few elements of an array per call (`walk(A, i)` reading
`A[i, i]`, a determinant by Laplace expansion reading `A[row, c]`) gets, in each call's
backpropagator, `gadd(scatter_sens(A, indices, ds), d_A)`, with `d_A` what the recursive
call's backpropagator gave back. Built as written, that is two sparse sensitivities
(`tapeless.sparse_sens`) made and joined per call. `scatter_onto(d_A, A, indices, ds)` is
the same sum as one call that appends the pieces to `d_A`'s (a new handle: `d_A` itself
is left as it is, so nothing needs to prove that no one else holds it).

Sums into loop state are left to `loops.accumulate_in_place` (in place, where the loop
owns the accumulator) and to the native backend's lowering of them.
"""

from __future__ import annotations

from ..ir.edit import set_inputs, users
from ..ir.nodes import Apply, Constant, Graph, Node, Parameter, graph_nodes, reachable_graphs
from ..primitives import PRIMITIVES
from .kinds import INT, is_f8, items_of, kind, sequence_items, shape_of
from .loop_facts import LoopFacts, is_call_of

P = PRIMITIVES


def scatter_onto(root: Graph) -> int:
    """Rewrite each `gadd(scatter_sens(x, indices, ds), acc)` (either order; or one piece,
    `getitem_sens(d, x, i)`), where nothing else reads the scattered sensitivity and `acc`
    is not loop state, as `scatter_onto(acc, x, indices, ds)`. Returns how many."""
    graphs = reachable_graphs(root)
    facts: LoopFacts | None = None
    use = users(graphs)
    rewritten = 0
    for g in graphs:
        for add in graph_nodes(g):
            if not is_call_of(add, "gadd"):
                continue
            a, b = add.inputs[1:]
            for scattered, acc in ((a, b), (b, a)):
                if scattered is acc or not isinstance(scattered, Apply) or \
                        [u for u, _ in use.get(scattered.id, [])] != [add]:
                    continue
                if is_call_of(scattered, "scatter_sens"):
                    x, indices, ds = scattered.inputs[1:]
                elif is_call_of(scattered, "getitem_sens"):
                    d, x, i = scattered.inputs[1:]
                    indices, ds = g.apply(P["make_tuple"], i), g.apply(P["make_tuple"], d)
                else:
                    continue
                if isinstance(acc, Parameter):
                    facts = facts or LoopFacts(root, graphs)
                    if acc.id in facts.state_of:
                        break  # (an accumulator: see loops.accumulate_in_place)
                facts = facts or LoopFacts(root, graphs)
                helper = "scatter_onto_known" if _element_reads(x, indices, facts) else \
                    "scatter_onto"
                set_inputs(add, [Constant(P[helper]), acc, x, indices, ds])
                rewritten += 1
                break
    return rewritten



def _element_reads(x: Node, indices: Node, facts: LoopFacts) -> bool:
    """Whether kinds prove `x` a float64 array and each index an int or a tuple of ints
    (no more than x's axes): what `scatter_onto_known` does not test again."""
    kx = kind(x, facts)
    shape = shape_of(kx)
    items = sequence_items(indices, facts)
    if not is_f8(kx) or not shape or items is None:
        return False
    for i in items:
        ki = kind(i, facts)
        at = (ki,) if ki is INT else items_of(ki)
        if at is None or not 0 < len(at) <= len(shape) or any(k is not INT for k in at):
            return False
    return True

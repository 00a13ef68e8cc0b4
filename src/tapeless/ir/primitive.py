"""The `Primitive` record: everything the compiler knows about an operation it does not
look inside, in one place. The front end binds calls to its signature; AD reads its
rules; the optimizer and kind inference read its declared properties (never lists of
names); each backend keeps its own table of how to spell it."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any


class Primitive:
    """An operation, registered once (`tapeless.primitives.registry.register`).

    `signature` binds call-site arguments (positional and keyword) to the primitive's
    parameters; a `*name` parameter is passed as one tuple. How a backend spells a call
    is the backend's (`tapeless.backend.spelling` for the Python backend).

    Rules (filled in by the rules modules; a differentiable primitive without a reverse
    rule fails the registry's tests):
      reverse_rule: a function in the supported subset taking the primitive's parameters
        and returning (value, backpropagator);
      jvp_rule: the forward rule (`tapeless.ad.forward`): a function in the supported
        subset taking the primitive's parameters and returning (value, one map per
        parameter from its tangent to the result's, or None), or, where `jvp_joint`,
        taking the parameters then their tangents and returning (value, tangent);
      linear: the positions of the parameters in which the primitive is linear (jointly):
        its forward rule is the primitive applied to their tangents;
      jvp_from_reverse: a one-parameter primitive whose Jacobian is diagonal (elementwise,
        or on numbers), so its reverse rule's backpropagator maps tangents too;
      jvp_by_transposition: its forward rule is its reverse rule transposed (the
        backpropagator is linear in the cotangent: J t = grad_c <back(c), t>), for
        primitives whose forward rule is not written out;
      batch_rule: the batching rule (a slot for `vmap`);
      abstract_eval: the result's kind from the arguments' kinds and input nodes, where
        a declared property below does not already say it;
      infer_kind: the result's kind where it takes more than the arguments' kinds (the
        items of a display, sizes computed from constants): called by kind inference
        with the node, the loop facts, the search depth and the assumptions, before the
        arguments' kinds; None leaves it to the rules on the arguments' kinds.

    Declared properties (what AD, kind inference and the optimizer ask):
      effect: kept for its side effects, never removed or shared;
      statement: emitted as a statement, not an expression;
      differentiable: has a derivative (else its sensitivities are zero);
      variadic: its trailing arguments are separate inputs, which its rule receives
        packed as one `*args` tuple;
      elementwise: applied element by element, broadcasting its array arguments; with
        comparison, its result is boolean;
      number_op: an operator that gives a Python number for Python numbers;
      reduction: "sum", "mean", "max", "min" or "prod" for a reduction of its first
        argument over `axis` (its second parameter), with `keepdims` its last;
      shaped_like: the argument whose shape the result takes (sensitivity plumbing:
        `unbroadcast(d, x)` has x's shape);
      selects: its result is one of its inputs or a part of one (an item, an attribute,
        a branch), so it may be whatever was put in (a function, a class);
      equality: an identity or equality test, which may compare classes;
      ignores_values: what it computes from an array depends on its type, its length or
        its identity, never on the values it holds (a tuple holds it by reference), so
        it may be folded on an array constant whose values change after compiling;
      reshapes: its result holds its first argument's elements in the same order, in
        another shape;
      result_kind: the kind of every result, where it is fixed, by name ("float",
        "int": `tapeless.opt.kinds` reads it as FLOAT or INT);
      numeric: its result is a number or an array (never a container or a zero);
      never_zero: its result is never the symbolic zero (numeric results never are);
      fresh: its result is a new array, never an input or a view of one;
      pure: its result depends on its inputs alone (calls with the same inputs may be
        shared);
      foldable: computed at compile time when its inputs are constants;
      zero_preserving: its result is the symbolic zero exactly when its first input is
        (sensitivity plumbing);
      accepts_zero: its reverse rule takes a symbolic zero sensitivity as it is;
      sparse_result: its result may be a sparse sensitivity (`tapeless.sparse_sens`),
        which a caller must not receive as it is;
      passes_on: hands a value it receives to whoever may call it (a call, a container);
      cheap: one correctly rounded arithmetic operation, computed again rather than
        saved for a backward loop;
      loop: a loop (emitted as a Python loop statement);
      blocks: the positions of the arguments that are graphs run in place (branches,
        loop bodies);
      after_ad: made only by the optimizer, after differentiation (so not
        differentiable in reverse mode); forward mode over optimized code
        (`tapeless.fwd_api`: the jvp of a gradient optimized first) applies its `linear`
        declaration, and refuses it where it has none."""

    def __init__(self, name: str, impl: Callable[..., Any] | None, spec: str, *,
                 effect: bool = False, statement: bool = False,
                 differentiable: bool = True, variadic: bool = False,
                 elementwise: bool = False, comparison: bool = False,
                 number_op: bool = False, reduction: str | None = None,
                 result_kind: str | None = None, numeric: bool = False,
                 never_zero: bool = False, fresh: bool = False, pure: bool = False,
                 foldable: bool = False,
                 zero_preserving: bool = False, accepts_zero: bool = False,
                 passes_on: bool = False, cheap: bool = False, loop: bool = False,
                 blocks: tuple[int, ...] = (), alias: str | None = None,
                 shaped_like: int | None = None, selects: bool = False,
                 equality: bool = False, reshapes: bool = False,
                 ignores_values: bool = False, sparse_result: bool = False,
                 after_ad: bool = False):
        self.name = name
        self.impl = impl
        self.spec = spec
        self.signature = inspect.signature(eval(f"lambda {spec}: None")) if spec else \
            inspect.Signature()
        self.effect = effect
        self.statement = statement
        self.differentiable = differentiable
        self.variadic = variadic
        self.elementwise = elementwise or comparison
        self.comparison = comparison
        self.number_op = number_op
        self.reduction = reduction
        self.result_kind = result_kind
        self.numeric = numeric or result_kind is not None
        self.never_zero = never_zero or self.numeric
        self.fresh = fresh
        self.pure = pure
        self.foldable = foldable
        self.zero_preserving = zero_preserving
        self.accepts_zero = accepts_zero
        self.passes_on = passes_on
        self.cheap = cheap
        self.loop = loop
        self.blocks = blocks
        self.shaped_like = shaped_like
        self.selects = selects
        self.equality = equality
        self.reshapes = reshapes
        self.ignores_values = ignores_values
        self.sparse_result = sparse_result
        self.after_ad = after_ad
        # A method's derivative is that of the primitive named here (`x.sum()` is
        # `np.sum(x)`'s).
        self.alias = alias
        self.reverse_rule: Callable[..., Any] | None = None
        self.jvp_rule: Callable[..., Any] | None = None
        self.jvp_joint = False
        self.linear: tuple[int, ...] = ()
        self.jvp_from_reverse = False
        self.jvp_by_transposition = False
        self.batch_rule: Callable[..., Any] | None = None
        self.abstract_eval: Callable[..., Any] | None = None
        self.infer_kind: Callable[..., Any] | None = None

    @property
    def param_names(self) -> list[str]:
        return list(self.signature.parameters)

    @property
    def vararg_index(self) -> int | None:
        for i, p in enumerate(self.signature.parameters.values()):
            if p.kind is inspect.Parameter.VAR_POSITIONAL:
                return i
        return None

    def default(self, index: int) -> Any:
        p = list(self.signature.parameters.values())[index]
        return p.default

    def __repr__(self) -> str:
        return f"<primitive {self.name}>"

    def __call__(self, *args: Any) -> Any:
        """Run the primitive with its parameters in order (varargs as one tuple)."""
        assert self.impl is not None, self.name
        return self.impl(*args)


# The one primitive the IR itself relies on: a call through a value passes `*args`
# packed into a tuple (`tapeless.ir.clone.rebind_value_call`). `tapeless.primitives.core`
# registers it with the others.
MAKE_TUPLE = Primitive("make_tuple", lambda *xs: xs, "*xs", variadic=True,
                       never_zero=True, pure=True, foldable=True, accepts_zero=True,
                       passes_on=True, ignores_values=True)

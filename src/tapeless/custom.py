"""User-defined derivative rules: `tl.custom_jvp` and `tl.custom_vjp` (JAX's decorator API).

A rule written once serves every mode and order: forward mode uses a `custom_jvp` rule
as given and transposes a `custom_vjp`'s backward function; reverse mode uses a
`custom_vjp`'s pair as given and transposes a `custom_jvp` rule; higher orders
differentiate the rules themselves, which are compiled like any tapeless program (see
`tapeless.ad.custom`)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from .api import BOUND_TYPES
from .errors import CompileError
from .frontend.parser import RESOLVER, parse
from .ir.nodes import Constant, CustomRule, Graph


class _Custom:
    """A function with derivative rules. Called from Python, it runs the function; called
    in compiled code (or transformed), it is a graph whose derivatives are the rules'."""

    # (How the front end and the API know one.)
    __tapeless_custom__ = True
    kind = ""

    def __init__(self, fun: Callable[..., Any], nondiff_argnums: tuple[int, ...] = ()):
        self.fun = fun
        self.nondiff_argnums = tuple(nondiff_argnums)
        # (The names of the function; the Python function underneath, for signatures.)
        functools.update_wrapper(self, fun, updated=())
        self.__tapeless_wrapped__ = fun
        self._graph: Graph | None = None
        self._parsed_for: tuple[Graph, ...] = ()
        self._ruled = False  # (whether `_graph.custom` was made: it may be None)
        self._finish: Callable[[], None] | None = None  # (the step that makes it)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.fun(*args, **kwargs)

    def _missing(self) -> str:
        raise NotImplementedError

    def _parsed(self) -> tuple[Graph, ...]:
        """The graphs of the function and of its rules, as they stand now."""
        return (parse(self.fun),)

    def _rule(self, fun: Graph) -> CustomRule | None:
        raise NotImplementedError

    def custom_graph(self) -> Graph:
        """The graph standing for the function: it calls the function's graph, and
        carries the rules (`Graph.custom`) that AD uses instead of its body."""
        missing = self._missing()
        if missing:
            raise CompileError(f"{self.fun.__qualname__} is a tl.{self.kind} function without "
                               f"its rule: call {self.fun.__name__}.{missing}(...) before "
                               "compiling code that calls it")
        # (Parsed each time, so that the code calling this records what it read: a global
        # the function or a rule reads rebound, they are parsed again, and so is this.)
        # A graph whose rules were left to make once the parse around it finished, by a
        # parse that then failed, has none: made again. (Graphs compare by identity.)
        parsed = self._parsed()
        if self._graph is None or parsed != self._parsed_for or \
                not (self._ruled or self._finish in RESOLVER.finishing):
            self._parsed_for = parsed
            self._ruled = False
            fun = parsed[0]
            g = Graph(fun.name, None, fun.loc)
            params = [g.add_parameter(p.name, p.loc) for p in fun.parameters]
            g.take_signature(fun)
            if fun.vararg or any(s.kind != "pos" for s in fun.signature or ()):
                raise CompileError(f"tl.{self.kind} of {self.fun.__qualname__}: a function "
                                   "with *args or keyword-only parameters is not supported; "
                                   "take a tuple instead")
            for i in self.nondiff_argnums:
                if not 0 <= i < len(params):
                    raise CompileError(f"tl.{self.kind} of {self.fun.__qualname__}: "
                                       f"nondiff_argnums={self.nondiff_argnums!r} is out of "
                                       f"range for {len(params)} parameters")
            g.output = g.apply(Constant(fun), *params, loc=fun.loc)
            g.effects = [g.output]
            self._graph = g

            def finish() -> None:
                # (The rules read `fun`'s body, which may be half built here: the function
                # reaches itself through this one while it is compiled.)
                try:
                    g.custom = self._rule(fun)
                    self._ruled = self._ruled or self._graph is g
                except BaseException:
                    if self._graph is g:
                        self._graph = None
                    raise

            self._finish = finish
            RESOLVER.once_built(finish)
        return self._graph


class custom_jvp(_Custom):  # noqa: N801 (JAX's name)
    """A function whose forward-mode derivative is given by a rule:

        @tl.custom_jvp
        def f(x): ...

        @f.defjvp
        def f_jvp(primals, tangents):
            x, = primals
            t, = tangents
            return f(x), t * slope(x)

    With `nondiff_argnums`, those arguments are passed to the rule first, and left out of
    `primals` and `tangents`. Reverse mode transposes the rule's tangent map."""

    kind = "custom_jvp"

    def __init__(self, fun: Callable[..., Any], nondiff_argnums: tuple[int, ...] = ()):
        super().__init__(fun, nondiff_argnums)
        self.jvp: Callable[..., Any] | None = None

    def defjvp(self, jvp: Callable[..., Any]) -> Callable[..., Any]:
        self.jvp = jvp
        self._graph = None
        return jvp

    def _missing(self) -> str:
        return "defjvp" if self.jvp is None else ""

    def _parsed(self) -> tuple[Graph, ...]:
        assert self.jvp is not None
        return parse(self.fun), parse(self.jvp)

    def _rule(self, fun: Graph) -> CustomRule:
        assert self.jvp is not None
        return CustomRule("jvp", fun, rule=parse(self.jvp), nondiff=self.nondiff_argnums)


class custom_vjp(_Custom):  # noqa: N801 (JAX's name)
    """A function whose reverse-mode derivative is given by a pair of functions:

        @tl.custom_vjp
        def f(x): ...

        def f_fwd(x):
            return f(x), residuals

        def f_bwd(residuals, g):
            return (cotangent_of_x,)

        f.defvjp(f_fwd, f_bwd)

    `bwd` returns one cotangent per argument (None for zero); with `nondiff_argnums`,
    those arguments are passed to `bwd` first and get no cotangent. Forward mode
    transposes `bwd` (JAX refuses forward mode of a custom_vjp function)."""

    kind = "custom_vjp"

    def __init__(self, fun: Callable[..., Any], nondiff_argnums: tuple[int, ...] = ()):
        super().__init__(fun, nondiff_argnums)
        self.fwd: Callable[..., Any] | None = None
        self.bwd: Callable[..., Any] | None = None

    def defvjp(self, fwd: Callable[..., Any], bwd: Callable[..., Any]) -> None:
        self.fwd, self.bwd = fwd, bwd
        self._graph = None

    def _missing(self) -> str:
        return "defvjp" if self.fwd is None or self.bwd is None else ""

    def _parsed(self) -> tuple[Graph, ...]:
        assert self.fwd is not None and self.bwd is not None
        return parse(self.fun), parse(self.fwd), parse(self.bwd)

    def _rule(self, fun: Graph) -> CustomRule:
        assert self.fwd is not None and self.bwd is not None
        return CustomRule("vjp", fun, fwd=parse(self.fwd), bwd=parse(self.bwd),
                          nondiff=self.nondiff_argnums)


class CheckpointPolicy:
    """What a `tl.checkpoint` saves for the backward pass (`tl.checkpoint_policies`):
    `saveable(primitive, inputs)` says whether a value the checkpointed function's body
    computes is saved; None saves nothing (everything recomputed)."""

    def __init__(self, name: str, saveable: Callable[[Any, list[Any]], bool] | None,
                 everything: bool = False) -> None:
        self.name = name
        self.saveable = saveable
        self.everything = everything

    def __repr__(self) -> str:
        return f"tl.checkpoint_policies.{self.name}"


# The products (JAX's `dots_saveable`: matmul, dot, einsum and their kin).
DOTS = frozenset({"matmul", "np.matmul", "np.dot", "np.einsum", "np.tensordot", "np.inner",
                  "np.vdot", "np.outer"})


def _is_dot(prim: Any, inputs: list[Any]) -> bool:
    return prim.name in DOTS or prim.alias in DOTS


class checkpoint_policies:  # noqa: N801 (JAX's name)
    """JAX's checkpoint policies: `nothing_saveable` (the default: recompute everything),
    `everything_saveable` (save as usual: no checkpoint), `dots_saveable` (save the
    results of matrix products, recompute the rest) and `save_only_these_names(*names)`
    (save the values marked with `tl.checkpoint_name(x, name)` under those names)."""

    nothing_saveable = CheckpointPolicy("nothing_saveable", None)
    everything_saveable = CheckpointPolicy("everything_saveable", None, everything=True)
    dots_saveable = CheckpointPolicy("dots_saveable", _is_dot)

    @staticmethod
    def save_only_these_names(*names: str) -> CheckpointPolicy:
        from .ir.nodes import Constant

        wanted = frozenset(names)

        def named(prim: Any, inputs: list[Any]) -> bool:
            return prim.name == "checkpoint_name" and isinstance(inputs[1], Constant) and \
                inputs[1].value in wanted

        return CheckpointPolicy(f"save_only_these_names{tuple(names)!r}", named)


class checkpoint(_Custom):  # noqa: N801 (JAX's name)
    """`tl.checkpoint(f)` (`jax.checkpoint`): reverse mode does not save `f`'s
    intermediate values for the backward pass; it saves `f`'s arguments and runs `f`
    again (differentiated) when the backward pass reaches it: less memory, one more
    forward pass. `policy` (`tl.checkpoint_policies`) says what may be saved:
    `nothing_saveable` (or None, the default), `everything_saveable` (or
    "everything": no checkpoint), `dots_saveable`, `save_only_these_names(*names)`. A
    policy sees the primitives of `f`'s own body, not those inside its loops, branches
    or the functions it calls (recomputed). Forward mode saves nothing anyway.

    A checkpointed function must not print or draw random numbers (running it again
    would repeat them): it is refused with a located error."""

    kind = "checkpoint"

    def __init__(self, fun: Callable[..., Any],
                 policy: str | CheckpointPolicy | None = None) -> None:
        super().__init__(fun, ())
        if policy is None or policy == "nothing":
            policy = checkpoint_policies.nothing_saveable
        elif policy == "everything":
            policy = checkpoint_policies.everything_saveable
        if not isinstance(policy, CheckpointPolicy):
            raise CompileError(f"tl.checkpoint: unknown policy {policy!r}; use one of "
                               "tl.checkpoint_policies (nothing_saveable, the default, "
                               "everything_saveable, dots_saveable, "
                               "save_only_these_names(*names))")
        self.policy = policy

    def _missing(self) -> str:
        return ""

    def _rule(self, fun: Graph) -> CustomRule | None:
        from .ad.checkpoint import saving_graphs
        from .ir.nodes import graph_nodes, prim_of, reachable_graphs

        if self.policy.everything:
            return None
        for h in reachable_graphs(fun):
            for n in graph_nodes(h):
                p = prim_of(n)
                if p is not None and p.effect and not p.statement and not p.loop and \
                        p.name not in ("call_value", "call_star"):
                    raise CompileError(f"{n.loc}: tl.checkpoint of {self.fun.__qualname__}: "
                                       f"it calls {p.name}, which the backward pass would "
                                       "run again; move it out of the checkpointed function")
        if self.policy.saveable is not None:
            parts = saving_graphs(fun, self.policy.saveable)
            if parts is not None:
                return CustomRule("checkpoint", fun, fwd=parts[0], bwd=parts[1])
        return CustomRule("checkpoint", fun)


# Passed to a transformed function, a function with rules is bound by identity, like a
# Python function (`tapeless.api.BOUND_TYPES`): derivative code calls its rules.
BOUND_TYPES.update({custom_jvp, custom_vjp, checkpoint})

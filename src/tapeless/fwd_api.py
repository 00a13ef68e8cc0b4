"""Forward mode and the derivative API built on it and on reverse mode: `jvp`, `jacfwd`,
`jacrev`, `hessian`, `stop_gradient` (JAX's names and signatures)."""

from __future__ import annotations

import gc
import math
import os
from collections.abc import Callable
from typing import Any, cast

import numpy as np

from .ad.api_graphs import VMAP_STAND_INS, expand_transforms, jvp_graph
from .ad.batch import VmapError
from .ad.forward import FTransform, OptimizedCodeRefused
from .api import (
    Compiled,
    Transformed,
    _api,
    _signature,
    building,
    building_kinds,
    check_backend,
    each_element_copy,
    for_positional,
    graph_of,
    load,
    optimization_passes,
    positional_arguments,
    python_function,
)
from .errors import GradError
from .frontend.parser import RESOLVER
from .grad_api import GradFunction, _integer_leaf, _shows_no_integer
from .ir.clone import copy_module, is_recursive
from .ir.edit import set_kind
from .ir.nodes import Graph, free_variables, reachable_graphs
from .opt import optimize
from .opt.kinds import value_kind
from .runtime import stop_gradient, tree_leaves, tree_unflatten

__all__ = ["hessian", "jacfwd", "jacrev", "jvp", "linearize", "stop_gradient"]


class JvpFunction(Transformed):
    """`(*primals, *tangents) -> (value, tangent)` of a function, compiled per argument
    signature (what `jvp` calls)."""

    kind = "jvp"

    def __init__(self, fun: Callable[..., Any], backend: str | None = None):
        super().__init__(fun, backend)
        # The argument signatures whose tangents were checked (see `jvp`).
        self.checked: set[tuple] = set()
        # (A function passed as an argument is data here: F calls only functions it
        # compiled, and refuses others where they are called.)
        self.binds_functions = False

    def build_graph(self) -> Graph:
        return self.finish(jvp_graph(graph_of(self.fun)))

    def finish(self, g: Graph) -> Graph:
        """The graph compiled from the jvp's graph `g` (all of it, here)."""
        return g

    def bind(self, args: tuple, kwargs: dict) -> tuple:
        return args

    def for_call(self, args: tuple, kwargs: dict) -> Transformed:
        return self  # (its arguments are the primals bound, then their tangents)

    def each_element(self, key: tuple, args: tuple) -> Compiled | None:
        """The jvp of the function with each `tl.vmap` inside calling its function on
        each element (`Transformed.each_element`, as `jit` does); None where it draws
        random numbers or prints."""
        if type(self) is not JvpFunction:
            return None
        if key not in self._each:
            fun = self.fun
            # (a vmap object's per-element program, for its batch's size; else each
            # `tl.vmap` inside the function calls its function on each element)
            each = cast(Any, fun).each_element_graph(args[:len(args) // 2]) \
                if isinstance(fun, Transformed) and fun.kind == "vmap" else \
                each_element_copy(expand_transforms(graph_of(fun)))
            self._each[key] = None if each is None else load(
                self.finish(jvp_graph(each, FTransform())),
                tuple(value_kind(a) for a in args), self.backend)
        return self._each[key]

    def build_graph_for(self, key: tuple) -> Graph:
        kinds = building_kinds(key)
        if kinds is not None:
            made = self.of_optimized_gradient(key, kinds)
            if made is not None:
                return made
        return super().build_graph_for(key)

    def of_optimized_gradient(self, key: tuple, kinds: tuple) -> Graph | None:
        """Forward over reverse (the jvp of `tl.grad(f)`: a Hessian-vector product, a
        Hessian's columns) for arguments of signatures `key` and kinds `kinds`: F of the
        gradient's graph as the optimizer leaves it for the primals' kinds (its
        rounds, without the final steps), not of the gradient as differentiated. The
        reverse rules' generic code (tests of types, helpers, symbolic zeros) is folded
        once, in the gradient, where F of it would double it and the optimizer fold
        both halves: about a quarter of the compile time. None where it does not
        apply: not a gradient, arguments whose kinds do not say their structure, user
        derivative rules (which the optimizer may inline, and F must see), a `tl.vmap`
        inside, or a step of the optimizer that forward mode cannot differentiate
        (`OptimizedCodeRefused`). (A recursive gradient is optimized without the
        arguments' kinds, as `load` does.) `TAPELESS_JVP_OF_OPTIMIZED=0` turns it
        off."""
        fun = self.fun
        passes = optimization_passes()
        n = len(key) // 2
        if not isinstance(fun, GradFunction) or (passes is not None and not passes) or \
                os.environ.get("TAPELESS_JVP_OF_OPTIMIZED") == "0" or len(key) != 2 * n or \
                not all(_complete(k) or k is int for k in key[:n]):
            return None
        grad = fun.graph_for(key[:n])
        expand_transforms(grad)
        graphs = reachable_graphs(grad)
        if len(grad.parameters) != n or any(
                h.custom is not None or h in VMAP_STAND_INS for h in graphs):
            return None
        grad = copy_module(grad)
        if not is_recursive(grad):
            for p, k in zip(grad.parameters, kinds[:n], strict=True):
                set_kind(p, k)
        optimize(grad, passes, final=False)
        try:
            out = jvp_graph(grad, FTransform())
        except OptimizedCodeRefused:
            return None
        if not _nested_in_owners(out):
            return None
        return self.finish(out)


_JVP: dict[tuple[int, str, str], tuple[Any, JvpFunction]] = {}
_JVP_MAX = 256


def _jvp_function(fun: Callable[..., Any], backend: str = "python") -> JvpFunction:
    """The compiled jvp of `fun` (one per function, backend, and optimizer setting, which
    is read when compiling)."""
    key = (id(fun), os.environ.get("TAPELESS_OPTIMIZE", ""), backend)
    hit = _JVP.get(key)
    if hit is None or hit[0] is not fun:
        if len(_JVP) >= _JVP_MAX:  # (a new lambda on every call would only fill it)
            _JVP.pop(next(iter(_JVP)))
        hit = _JVP[key] = (fun, JvpFunction(fun, backend))
    return hit[1]


def _describe(x: Any) -> str:
    if isinstance(x, np.ndarray):
        return f"an array of shape {x.shape} and dtype {x.dtype}"
    return f"{type(x).__name__}"


def _check_tangent(name: str, i: int, primal: Any, tangent: Any) -> None:
    """Refuse a tangent whose structure or shapes differ from its primal's, and a primal
    with an integer leaf, saying which argument and what to pass."""
    found = _integer_leaf(primal)
    if found is not None and any(np.any(np.asarray(v) != 0) for v in tree_leaves(tangent)):
        raise GradError(f"jvp of {name}: primal {i} is (or contains) {found}; only "
                        "floating-point values have nonzero tangents (pass a float, e.g. "
                        "3.0, or a zero tangent for the integer)")
    p_leaves, t_leaves = tree_leaves(primal), tree_leaves(tangent)
    if len(p_leaves) != len(t_leaves) or \
            tree_unflatten(primal, list(range(len(p_leaves)))) != \
            tree_unflatten(tangent, list(range(len(t_leaves)))):
        raise GradError(f"jvp of {name}: tangent {i} does not have the structure of primal "
                        f"{i} ({type(primal).__name__} of {len(p_leaves)} leaves, tangent "
                        f"{type(tangent).__name__} of {len(t_leaves)}); pass tangents "
                        "shaped like the primals")
    for p, t in zip(p_leaves, t_leaves, strict=True):
        if not isinstance(p, (float, int, np.ndarray, np.generic)):
            # (An object that is not a container: its attributes are not a tree.)
            if t is None or (isinstance(t, (float, int)) and t == 0):
                continue
            raise GradError(f"jvp of {name}: primal {i} holds {type(p).__name__} object, "
                            "whose tangent can only be zero (pass 0.0); make its class a "
                            "dataclass to give its fields tangents")
        if not isinstance(t, (float, int, np.ndarray, np.generic)):
            raise GradError(f"jvp of {name}: a leaf of tangent {i} is {_describe(t)}; a "
                            "tangent's leaves are floats and arrays")
        if np.shape(p) != np.shape(t):
            raise GradError(f"jvp of {name}: a leaf of tangent {i} is {_describe(t)}, where "
                            f"its primal is {_describe(p)}; a tangent has its primal's shape")


@_api
def jvp(fun: Callable[..., Any], primals: tuple | list,
        tangents: tuple | list, backend: str | None = None) -> tuple[Any, Any]:
    """`(fun(*primals), J tangents)`: the value and the Jacobian-vector product, by forward
    mode (no backward pass, no saved values). `primals` and `tangents` are tuples of the
    same structure; each tangent has its primal's structure and shapes. `backend` is as
    in `jit`."""
    fun = for_positional(fun, primals)
    jf = _jvp_function(fun, check_backend(backend))
    if type(primals) is tuple and type(tangents) is tuple and jf._simple and \
            len(primals) == len(tangents) == jf._nparams:
        # (Checked once per signature: one that describes every leaf's type and shape.)
        both = primals + tangents
        if tuple(map(_signature, both)) in jf.checked:
            fast: tuple[Any, Any] = jf(*both)
            return fast
    name = python_function(fun).__qualname__
    if not isinstance(primals, (tuple, list)) or not isinstance(tangents, (tuple, list)):
        raise GradError(f"jvp of {name}: primals and tangents must be tuples (or lists) of "
                        "the arguments, e.g. tl.jvp(f, (x,), (v,))")
    if len(primals) != len(tangents):
        raise GradError(f"jvp of {name}: {len(primals)} primals but {len(tangents)} "
                        "tangents; pass one tangent per primal")
    for i, (p, t) in enumerate(zip(primals, tangents, strict=True)):
        _check_tangent(name, i, p, t)
    f = python_function(fun)
    args = positional_arguments(f, tuple(primals), {})
    targs = _bind_tangents(f, tuple(tangents), args)
    result: tuple[Any, Any] = jf(*args, *targs)
    key = tuple(map(_signature, (*args, *targs)))
    if all(_complete(k) for k in key) and all(_shows_no_integer(k) for k in key[:len(args)]):
        jf.checked.add(key)
    return result


def _complete(sig: Any) -> bool:
    """Whether a signature (`tapeless.api._signature`) gives the type and shape of every
    leaf of its value, and the length of every container: values of one complete
    signature have one tree structure and shapes, which `_check_tangent` checks."""
    if sig is float:
        return True
    if type(sig) is not tuple or len(sig) != 2:
        return False
    head, rest = sig
    if type(head) is tuple and type(rest) is str:  # an array: (shape, dtype)
        return True
    if head is dict:
        return all(_complete(s) for _, s in rest)
    if isinstance(head, type) and type(rest) is tuple:  # a tuple, list or record
        return all(_complete(s) for s in rest)
    return False


@_api
def linearize(fun: Callable[..., Any], *primals: Any,
              backend: str | None = None) -> tuple[Any, Callable[..., Any]]:
    """`(fun(*primals), f_jvp)` where `f_jvp(*tangents)` is the Jacobian-vector product at
    `primals` (JAX's `linearize`). The primal computation runs once, here: `f_jvp` runs
    the tangent part of the forward-mode program (`tapeless.ad.linearize`), reading the
    values it needs (the residuals) from this call. Inside a loop that carries tangents
    (and in a recursive call) the primal work is recomputed on each `f_jvp` call, not
    saved per iteration; a `print` there prints again."""
    fun = for_positional(fun, primals)
    jf = _jvp_function(fun, check_backend(backend))
    name = python_function(fun).__qualname__
    zeros = tuple(_zero_tangent(p) for p in primals)
    f = python_function(fun)
    args = positional_arguments(f, tuple(primals), {})
    zargs = _bind_tangents(f, zeros, args)
    signature = tuple(map(_signature, (*args, *zargs)))
    parts = _linearized(jf, args, zargs, signature)
    value, residuals = parts.primal.fn(*args, *zargs)
    tangent_part = parts.tangent_for(args, zargs, residuals)
    n = len(primals)

    def f_jvp(*tangents: Any) -> Any:
        if len(tangents) != n:
            raise GradError(f"linearize of {name}: f_jvp takes {n} tangents (one per "
                            f"primal), not {len(tangents)}")
        for i, (p, t) in enumerate(zip(primals, tangents, strict=True)):
            _check_tangent(name, i, p, t)
        targs = _bind_tangents(f, tangents, args)
        if tuple(map(_signature, targs)) != signature[len(args):]:
            # (Tangents of other types than the zeros the parts were made for: jvp.)
            return jvp(fun, primals, tangents, backend)[1]
        return tangent_part.fn(*args, *targs, *residuals)

    return value, f_jvp


def _nested_in_owners(root: Graph) -> bool:
    """Whether each graph `root` reaches nests (`Graph.parent`) in the graphs that own
    the values it reads from outside: what the generated code's closures need. F nests
    a closure in the F of its primal's parent; in optimized code, a closure copied with
    its callee can keep the parent it was copied from (the code still runs: its reads
    are passed in), and F would put its F where those reads are not defined."""
    for h in reachable_graphs(root):
        enclosing = set()
        p = h.parent
        while p is not None:
            enclosing.add(p.id)
            p = p.parent
        if any(fv.graph is not None and fv.graph.id not in enclosing
               for fv in free_variables(h)):
            return False
    return True


class _Linearized:
    """The compiled parts of a linearized function for one argument signature: the
    primal part, and the tangent part, compiled per signature of the residuals."""

    def __init__(self, jf: JvpFunction, graph: Graph, kinds: tuple) -> None:
        from .ad.linearize import split

        self.backend = jf.backend
        self.parts = split(graph)
        self.kinds = kinds
        self.primal = load(self.parts.primal, kinds, self.backend)
        self.tangents: dict[tuple, Any] = {}

    def tangent_for(self, args: list[Any], targs: list[Any], residuals: tuple) -> Any:
        key = tuple(map(_signature, residuals))
        compiled = self.tangents.get(key)
        if compiled is None:
            kinds = self.kinds + tuple(value_kind(r) for r in residuals)
            compiled = self.tangents[key] = load(self.parts.tangent, kinds, self.backend)
        return compiled


def _linearized(jf: JvpFunction, args: list[Any], zargs: list[Any],
                signature: tuple) -> _Linearized:
    """The parts for arguments of `signature`, compiled once (kept with jf's compiled
    code, so that a rebound global drops them too)."""
    jf._validate()
    key = ("linearize", *signature)
    hit = jf._compiled.get(key)
    if hit is None:
        graph = jf.graph_for(signature)
        expand_transforms(graph)
        graph = copy_module(graph)
        kinds = tuple(value_kind(a) for a in (*args, *zargs))
        passes = optimization_passes()
        if passes is None or passes:
            if not is_recursive(graph):
                for p, k in zip(graph.parameters, kinds, strict=False):
                    set_kind(p, k)
            optimize(graph, passes)
        # (A linearization is kept in the function's cache of compiled code, under a
        # key of its own: the cache's declared type is the compiled code's.)
        hit = jf._compiled[key] = _Linearized(jf, graph, kinds)  # type: ignore[assignment]
    assert isinstance(hit, _Linearized)
    return hit


def _bind_tangents(f: Callable[..., Any], tangents: tuple, args: list[Any]) -> list[Any]:
    """The tangents bound to `f`'s parameters like the primals (`args`, bound by
    `positional_arguments`): `*args` packed into one tuple, and a zero tangent for each
    parameter left to its default."""
    import inspect

    sig = inspect.signature(f)
    bound = sig.bind(*tangents).arguments
    out = []
    names = [n for n, p in sig.parameters.items() if p.kind is not p.VAR_KEYWORD]
    for name, a in zip(names, args, strict=True):
        out.append(bound[name] if name in bound else _zero_tangent(a))
    return out


def _argnums(argnums: int | tuple[int, ...], n: int, kind: str) -> tuple[int, ...]:
    nums = (argnums,) if isinstance(argnums, int) else tuple(argnums)
    for a in nums:
        if not isinstance(a, int) or not -n <= a < n:
            raise GradError(f"{kind}: argnums={argnums!r} is out of range for {n} arguments")
    return nums


def _basis(x: Any) -> list[Any]:
    """One tangent per element of the leaves of `x`: each a tree like `x` that is 1 in
    that element and 0 elsewhere."""
    leaves = tree_leaves(x)
    out = []
    for k, leaf in enumerate(leaves):
        for j in range(int(np.size(leaf))):
            parts: list[Any] = [np.zeros(np.shape(lf)) if isinstance(lf, np.ndarray)
                                else 0.0 for lf in leaves]
            if isinstance(leaf, np.ndarray):
                e = np.zeros(leaf.size)
                e[j] = 1.0
                parts[k] = e.reshape(leaf.shape)
            else:
                parts[k] = 1.0
            out.append(tree_unflatten(x, parts))
    return out


def _assemble(columns: list[Any], out: Any, x: Any, rows: bool) -> Any:
    """The Jacobian of `out` (a tree) with respect to `x` (a tree), shaped like JAX's: a
    tree like `out` of trees like `x`, each leaf of shape out_leaf.shape + x_leaf.shape.
    `columns` holds one tree like `out` per element of `x` (forward mode), or, with
    `rows`, one tree like `x` per element of `out` (reverse mode)."""
    out_leaves, x_leaves = tree_leaves(out), tree_leaves(x)
    sizes_x = [int(np.size(v)) for v in x_leaves]
    sizes_o = [int(np.size(v)) for v in out_leaves]
    # A dense matrix (all of out) x (all of x), filled from the columns or rows.
    m = np.zeros((sum(sizes_o), sum(sizes_x)))
    for j, c in enumerate(columns):
        flat = np.concatenate([np.ravel(np.asarray(v, dtype=float)) for v in tree_leaves(c)]) \
            if tree_leaves(c) else np.zeros(0)
        if rows:
            m[j, :] = flat
        else:
            m[:, j] = flat
    blocks = []
    r0 = 0
    for o, so in zip(out_leaves, sizes_o, strict=True):
        c0 = 0
        per_x = []
        for v, sx in zip(x_leaves, sizes_x, strict=True):
            block = m[r0:r0 + so, c0:c0 + sx].reshape(np.shape(o) + np.shape(v))
            per_x.append(float(block) if block.ndim == 0 else block)
            c0 += sx
        blocks.append(tree_unflatten(x, per_x))
        r0 += so
    return tree_unflatten(out, blocks)


def _split_aux(value: Any, has_aux: bool, kind: str) -> tuple[Any, Any]:
    if not has_aux:
        return value, None
    if not (isinstance(value, tuple) and len(value) == 2):
        raise GradError(f"{kind} with has_aux=True: the function must return a pair "
                        "(output, aux)")
    return value[0], value[1]


@_api
def jacfwd(fun: Callable[..., Any], argnums: int | tuple[int, ...] = 0,
           has_aux: bool = False, backend: str | None = None) -> Callable[..., Any]:
    """The Jacobian of `fun` with respect to argument(s) `argnums`, by forward mode: one
    `jvp` per input element. For an output of shape S and an input of shape T, the
    Jacobian has shape S + T (trees of them for trees, as JAX builds them)."""

    def jacobian(*args: Any) -> Any:
        nums = _argnums(argnums, len(args), "jacfwd")
        results = []
        value = None
        for a in nums:
            cols = []
            for e in _basis(args[a]):
                tangents = tuple(e if i == a % len(args) else _zero_tangent(x)
                                 for i, x in enumerate(args))
                value, t = jvp(fun, args, tangents, backend)
                out, _ = _split_aux(t, has_aux, "jacfwd")
                cols.append(out)
            if value is None:
                value = fun(*args)
            out_v, _ = _split_aux(value, has_aux, "jacfwd")
            results.append(_assemble(cols, out_v, args[a], rows=False))
        jac = results[0] if isinstance(argnums, int) else tuple(results)
        if has_aux:
            return jac, _split_aux(value, True, "jacfwd")[1]
        return jac

    jacobian.__name__ = f"jacfwd_{getattr(fun, '__name__', 'f')}"
    _compilable(jacobian, "jacfwd", fun, argnums, has_aux)
    return jacobian


def _compilable(made: Callable[..., Any], kind: str, fun: Callable[..., Any], argnums: Any,
                has_aux: bool) -> None:
    """Let compiled code call `made` (a global `h = tl.hessian(f)`): the front end
    compiles the function `frontend/jacobians.compiled_jacobian` writes for it, made once."""
    from .frontend.jacobians import compiled_jacobian

    cache: list[Any] = []

    def compiled() -> Callable[..., Any] | None:
        if not cache:
            cache.append(compiled_jacobian(kind, fun, argnums, has_aux))
        return cast(Callable[..., Any] | None, cache[0])

    cast(Any, made).__tapeless_jacobian__ = compiled


def _zero_tangent(x: Any) -> Any:
    leaves = tree_leaves(x)
    return tree_unflatten(x, [np.zeros(np.shape(v)) if isinstance(v, np.ndarray) else 0.0
                              for v in leaves])


@_api
def jacrev(fun: Callable[..., Any], argnums: int | tuple[int, ...] = 0,
           has_aux: bool = False, backend: str | None = None) -> Callable[..., Any]:
    """The Jacobian of `fun` with respect to argument(s) `argnums`, by reverse mode: one
    backward pass per output element (shaped as `jacfwd`'s)."""
    from .grad_api import vjp

    def jacobian(*args: Any) -> Any:
        nums = _argnums(argnums, len(args), "jacrev")
        value, back = vjp(fun, *args, backend=backend)
        out, aux = _split_aux(value, has_aux, "jacrev")
        results: list[list[Any]] = [[] for _ in nums]
        for e in _basis(out):
            ct = (e, None) if has_aux else e
            sens = back(ct)
            for k, a in enumerate(nums):
                results[k].append(sens[a % len(args)])
        jacs = [_assemble(rows, out, args[a], rows=True) for rows, a in zip(
            results, nums, strict=True)]
        jac = jacs[0] if isinstance(argnums, int) else tuple(jacs)
        return (jac, aux) if has_aux else jac

    jacobian.__name__ = f"jacrev_{getattr(fun, '__name__', 'f')}"
    _compilable(jacobian, "jacrev", fun, argnums, has_aux)
    return jacobian


@_api
def hessian(fun: Callable[..., Any], argnums: int | tuple[int, ...] = 0,
            has_aux: bool = False, backend: str | None = None) -> Callable[..., Any]:
    """The Hessian of the scalar function `fun`: forward mode over its compiled gradient
    (`jacfwd(grad(fun))`), of shape T + T for an input of shape T.

    All the columns are computed in one pass: `tl.vmap` of the tangent part of the
    `jvp` of the gradient, one tangent per input element (the identity), the primal
    values computed once for every column. The first call for an argument signature
    runs that tangent part once per column instead, compiled for one column; the
    batched program, made on the second call, batches the same optimized program (so
    the optimizing is done once). Where the program cannot be batched (`tl.vmap`
    refuses it), column by column always; where an input holds something other than
    float arrays and numbers, one `jvp` per column (the same result)."""
    g = GradFunction(fun, argnums, has_aux, with_value=False, backend=backend)
    columns: Callable[..., Any] = jacfwd(g, argnums, has_aux, backend)
    batched = _BatchedHessian(g, argnums, has_aux, backend)

    def hess(*args: Any) -> Any:
        result = batched(args)
        if result is _NOT_BATCHED:
            return columns(*args)
        return result

    hess.__name__ = f"hessian_{getattr(fun, '__name__', 'f')}"
    _compilable(hess, "hessian", fun, argnums, has_aux)
    cast(Any, hess).batched = batched  # (for tests and benchmarks: the batched pass)
    return hess


_NOT_BATCHED = object()


class _BatchedHessian:
    """`hessian`'s columns in one batched pass: `vmap` of the tangent part of
    `jvp(grad f)` over the tangents (compiled once per number of arguments, then per
    argument signature as `tl.vmap` compiles). The first call for an argument signature
    runs the tangent part once per column instead (`first_call_columns`), compiled for
    one column's arguments; the second call batches that same optimized program (most
    of the compile time is optimizing it, done once for both: `_TangentFunction.
    optimized_for`). What a call needs besides the arguments (the identity's rows as
    tangents, where each column goes) is made once per argument signature (`_Plan`).
    `refused` holds the numbers of arguments whose program `tl.vmap` refused (those run
    column by column), `last` says which way the latest call went."""

    first_call_columns = True
    enabled = True  # (False: column by column always, to compare)

    def __init__(self, g: GradFunction, argnums: int | tuple[int, ...], has_aux: bool,
                 backend: str | None) -> None:
        self.g = g
        self.argnums = argnums
        self.has_aux = has_aux
        self.backend = backend
        self.tangent = _TangentFunction(g, check_backend(backend))
        self.mapped: dict[int, Any] = {}
        self.refused: dict[int, str] = {}
        self.seen: set[tuple] = set()
        self.plans: dict[tuple, _Plan] = {}
        self.last = ""

    def _mapped(self, n: int, nums: tuple[int, ...]) -> Any:
        hit = self.mapped.get(n)
        if hit is None:
            axes = (None,) * n + tuple(0 if i in nums else None for i in range(n))
            hit = self.mapped[n] = _columns(self.tangent, axes, self.backend)
        return hit

    def _plan(self, args: tuple, key: tuple) -> _Plan | None:
        """What calls with arguments like these need, or None where they run one `jvp`
        per column."""
        n = len(args)
        nums = tuple(a % n for a in _argnums(self.argnums, n, "hessian"))
        if len(set(nums)) != len(nums):
            return None
        leaves = [tree_leaves(args[a]) for a in nums]
        if not all(_float_leaf(v) for ls in leaves for v in ls):
            return None  # (the columns' path says what is wrong, or handles it)
        if sum(int(np.size(v)) for ls in leaves for v in ls) == 0:
            return None
        plan = _Plan(self._mapped(n, nums), args, nums, leaves, self.argnums)
        # (Kept where the signatures give every leaf's type and shape, so that arguments
        # of one key have the plan's structure; an int's tangent is always 0.0.)
        if all(_complete(k) or k is int for k in key):
            self.plans[key] = plan
        return plan

    def __call__(self, args: tuple) -> Any:
        n = len(args)
        self.last = "columns"
        if not self.enabled:
            return _NOT_BATCHED
        key = tuple(map(_signature, args))
        plan = self.plans.get(key)
        if plan is None:
            plan = self._plan(args, key)
            if plan is None:
                return _NOT_BATCHED
        if n in self.refused or (self.first_call_columns and key not in self.seen):
            self.seen.add(key)
            out = plan.by_columns(self.tangent, args, self.has_aux)
        else:
            try:
                out = plan.mapped(*args, *plan.tangents)
                self.last = "batched"
            except VmapError as exc:
                self.refused[n] = str(exc)
                out = plan.by_columns(self.tangent, args, self.has_aux)
            except ValueError as exc:
                # (What the batched code finds only when it runs: branches that give
                # values of different structures for different columns, per-element
                # results of different shapes. Not an error of the function's: the
                # columns' way.)
                if not str(exc).startswith("vmap"):
                    raise
                self.refused[n] = str(exc).splitlines()[0]
                out = plan.by_columns(self.tangent, args, self.has_aux)
        h = plan.assemble(out[0] if self.has_aux else out)
        if self.has_aux:
            return h, self.g(*args)[1]
        return h


class _Plan:
    """For `_BatchedHessian`, arguments of one signature: the tangents (one per element of
    the inputs differentiated, all of them stacked: the rows of the identity, laid out as
    the inputs' leaves; zeros for the other arguments), made once and read-only, and how
    the batched result's rows become the Hessian's blocks."""

    def __init__(self, mapped: Any, args: tuple, nums: tuple[int, ...],
                 leaves: list[list[Any]], argnums: int | tuple[int, ...]) -> None:
        self.mapped = mapped
        self.args = args
        self.nums = nums
        self.leaves = leaves
        self.argnums = argnums
        sizes = [[int(np.size(v)) for v in ls] for ls in leaves]
        self.total = total = sum(sum(s) for s in sizes)
        tangents: list[Any] = [_zero_tangent(x) for x in args]
        start = 0
        self.offsets = []
        for a, ls, ss in zip(nums, leaves, sizes, strict=True):
            parts = []
            self.offsets.append(start)
            for v, size in zip(ls, ss, strict=True):
                basis = np.zeros((total, size))
                basis[start:start + size] = np.eye(size)
                parts.append(basis.reshape((total,) + np.shape(v)))
                start += size
            tangents[a] = tree_unflatten(args[a], parts)
        for leaf in tree_leaves(tangents):
            if isinstance(leaf, np.ndarray):
                leaf.flags.writeable = False  # (shared by the calls: never written)
        self.tangents = tuple(tangents)
        # One argument, one array (`hessian(f)(x)`): the Hessian is the rows' transpose.
        self.one_array = len(nums) == 1 and len(leaves[0]) == 1 and \
            isinstance(args[nums[0]], np.ndarray) and isinstance(argnums, int)

    def by_columns(self, tangent: _TangentFunction, args: tuple, has_aux: bool) -> Any:
        """What the batched program gives (with `has_aux`, its gradient's part, in a
        pair), computed one column at a time: the tangent part run on each row of the
        tangents, the results stacked."""
        fn = tangent.columns_for(args, self.row(0)).fn
        outs = [fn(*args, *self.row(j)) for j in range(self.total)]
        if has_aux:
            outs = [o[0] for o in outs]
        first = tree_leaves(outs[0])
        stacked = [np.stack([np.asarray(leaves[i]) for leaves in map(tree_leaves, outs)])
                   for i in range(len(first))]
        out = tree_unflatten(outs[0], stacked)
        return (out, None) if has_aux else out

    def row(self, j: int) -> tuple:
        """Row j of the tangents (those of one column), each leaf element j of its
        batch (a float where that is a number), as `tl.vmap` gives one example."""
        out = list(self.tangents)
        for a in self.nums:
            t = self.tangents[a]
            parts = [leaf[j] for leaf in tree_leaves(t)]
            out[a] = parts[0].item() if isinstance(t, np.ndarray) and t.ndim == 1 else \
                tree_unflatten(t, parts)
        return tuple(out)

    def assemble(self, out: Any) -> Any:
        """The Hessian's blocks from the batched gradient's tangent `out`: column j of
        the Hessian is row j of each batched leaf."""
        if self.one_array and type(out) is np.ndarray:
            shape = out.shape[1:]
            if shape and out.shape[0] == math.prod(shape):
                return out.reshape(out.shape[0], -1).T.reshape(shape + shape)
        results = []
        for a, ls, start in zip(self.nums, self.leaves, self.offsets, strict=True):
            blocks = []
            for o in tree_leaves(out):
                row = np.asarray(o)
                per_x = []
                c0 = start
                for v in ls:
                    sx = int(np.size(v))
                    so = row[0].size
                    block = row[c0:c0 + sx].reshape(sx, so).T.reshape(
                        np.shape(row)[1:] + np.shape(v))
                    per_x.append(float(block) if block.ndim == 0 else block)
                    c0 += sx
                blocks.append(tree_unflatten(self.args[a], per_x))
            results.append(tree_unflatten(out, blocks))
        return results[0] if isinstance(self.argnums, int) else tuple(results)


class _TangentFunction(JvpFunction):
    """The tangent part of `jvp` of a function: `(*primals, *tangents) -> tangent`. What
    `hessian` maps over its tangents: the gradient itself, the same for every column,
    is neither returned nor copied once per column."""

    def finish(self, g: Graph) -> Graph:
        from .ir.edit import set_output
        from .primitives import PRIMITIVES

        set_output(g, g.apply(PRIMITIVES["tuple_getitem"], g.output, 1, name="tangent"))
        return g

    def optimized_for(self, args: tuple) -> Graph:
        """The program for arguments like `args` (one column's), optimized for their
        kinds, once: what `hessian` runs column by column on its first call and batches
        on the next (optimizing it is most of either's compile time). Kept with the
        compiled code, so that a rebound global drops it too."""
        self._validate()
        signature = tuple(map(_signature, args))
        key = ("optimized", *signature)
        hit = self._compiled.get(key)
        if hit is None:
            # (The cyclic garbage collector paused while compiling, as `Transformed._get`
            # does: the IR's many objects would be scanned again and again for nothing.)
            paused = gc.isenabled()
            gc.disable()
            try:
                with building(signature, tuple(value_kind(a) for a in args)):
                    graph = self.graph_for(signature)
                expand_transforms(graph)
                graph = copy_module(graph)
                passes = optimization_passes()
                if passes is None or passes:
                    if not is_recursive(graph):
                        for p, a in zip(graph.parameters, args, strict=False):
                            set_kind(p, value_kind(a))
                    optimize(graph, passes)
            finally:
                if paused:
                    gc.enable()
            hit = self._compiled[key] = graph  # type: ignore[assignment]
        assert isinstance(hit, Graph)
        return hit

    def columns_for(self, args: tuple, tangents: tuple) -> Any:
        """The compiled program for one column's arguments like these."""
        both = (*args, *tangents)
        key = ("columns", *map(_signature, both))
        hit = self._compiled.get(key)
        if hit is None:
            graph = self.optimized_for(both)
            paused = gc.isenabled()
            gc.disable()
            try:
                hit = self._compiled[key] = load(graph, tuple(value_kind(a) for a in both),
                                                 self.backend)
            finally:
                if paused:
                    gc.enable()
        return hit


def _columns(jf: JvpFunction, in_axes: tuple, backend: str | None) -> Any:
    """`tl.vmap` of the compiled jvp `jf` (its parameters: the primals, then their
    tangents) with these `in_axes`."""
    from .vmap_api import Vmapped

    class HessianColumns(Vmapped):
        def bind(self, args: tuple, kwargs: dict) -> tuple:
            return args

        def _vmapped(self, fg: Graph, examples: list[Any] | None = None,
                     derivative: bool = False) -> Graph:
            if examples is None or not isinstance(jf, _TangentFunction):
                return super()._vmapped(fg, examples, derivative)
            # One column's program, as its first call optimized it, batched.
            from .ad.batch import vmap_graph
            from .opt.kinds import FLOAT, INT, SCALAR, kind, ndim_of
            from .opt.loop_facts import LoopFacts

            one = tuple(e.item() if isinstance(e, np.generic) else e for e in examples)
            graph = copy_module(jf.optimized_for(one))
            if not is_recursive(graph):
                for p, e in zip(graph.parameters, one, strict=False):
                    set_kind(p, value_kind(e))  # (what its kinds say of the shapes)
            facts = LoopFacts(graph)

            def example_ndim(node: Any) -> int | None:
                k = kind(node, facts)
                return 0 if k in (FLOAT, INT, SCALAR) else ndim_of(k)

            return vmap_graph(graph, self._axes(len(graph.parameters)), self.out_axes,
                              self.axis_size, graph.name, example_ndim,
                              derivative=derivative)

        def build_graph_for(self, key: tuple) -> Graph:
            examples = getattr(self, "_examples", None)
            if examples is None or not isinstance(jf, _TangentFunction):
                return super().build_graph_for(key)
            # (The program batched is the one the first call optimized: the jvp's graph
            # as differentiated, which `graph_of(jf)` would build, is not needed.)
            graph = self._vmapped(cast(Graph, None), examples)
            RESOLVER.note(*jf._deps)
            return graph

        def _axes(self, n: int) -> list[Any]:
            return list(self.in_axes)

        def check_each_call(self, key: tuple) -> bool:
            return False  # (the tangents are made here, their batch axes of one length)

    return HessianColumns(jf, in_axes, 0, None, backend)


def _float_leaf(v: Any) -> bool:
    if isinstance(v, float):
        return True
    return isinstance(v, np.ndarray) and v.dtype == np.float64

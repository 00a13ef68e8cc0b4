"""`tl.jacfwd`, `tl.jacrev` and `tl.hessian` inside compiled code, written with the
transforms compiled code already has (`tl.jvp`, `tl.grad`, `tl.vmap`):

    jacfwd(f, a)(*xs)  = the jvps of f along each element of xs[a], batched by vmap;
    jacrev(f, a)(*xs)  = the gradients of <f(*xs), c> for each element c of the output
                         (batched by vmap);
    hessian(f, a)      = jacfwd(grad(f, a), a), as JAX defines it.

The expression is written once as Python text (`jacobian_expression`) and compiled two
ways: inside a function, as a lambda compiled where the call is, with its helper names
bound to nodes (`ExpressionMixin._jacobian_call`: the function may be a closure there);
for a global `h = tl.hessian(f)` called in compiled code, as a function of its own,
compiled like any Python function (`compiled_jacobian`). Supported: `argnums` an int,
no `has_aux`, the differentiated argument and the output arrays or numbers (the
Jacobian has shape `shape(output) + shape(input)`, as outside compiled code).

`tl.vjp(f, *primals)` inside compiled code is written the same way (`vjp_expression`):
the output and a pullback `c -> grad(<f(*primals), c>)` over every primal, which runs f
again (as `vjp` with the native backend does)."""

from __future__ import annotations

import inspect
import linecache
import sys
from collections.abc import Callable
from typing import Any

import numpy as np

KINDS = ("jacfwd", "jacrev", "hessian")


def basis(x: Any) -> Any:
    """The unit tangents of x's elements, stacked: shape (size,) + shape(x)."""
    n = np.size(x)
    return np.reshape(np.eye(n), (n,) + np.shape(x))


def columns_to_jacobian(cols: Any, x: Any) -> Any:
    """Forward mode's columns, shape (size(x),) + shape(out), as the Jacobian,
    shape(out) + shape(x)."""
    return np.reshape(np.moveaxis(cols, 0, -1), np.shape(cols)[1:] + np.shape(x))


def rows_to_jacobian(rows: Any, y: Any, x: Any) -> Any:
    """Reverse mode's rows, shape (size(y),) + shape(x), as the Jacobian."""
    return np.reshape(rows, np.shape(y) + np.shape(x))


def empty_jacobian(y: Any, x: Any) -> Any:
    """The Jacobian of `y` in an `x` of no elements: zeros, shape(y) + shape(x) (vmap over
    no tangents would not know the output's shape)."""
    return np.zeros(np.shape(y) + np.shape(x))


def jacobian_expression(kind: str, n: int, a: int) -> str:
    """The Jacobian of `__tl_F` (n parameters) in its argument `a`, as a lambda of the
    n arguments. The names `__tl_*` are bound by the caller: the function, `tl.jvp`,
    `tl.grad`, `tl.vmap`, `np.zeros_like`, `np.sum` and the helpers above."""
    ps = [f"__tl_p{i}" for i in range(n)]
    args = ", ".join(ps)
    f = "__tl_F" if kind != "hessian" else f"__tl_grad(__tl_F, {a})"
    if kind == "jacrev":
        out = f"__tl_F({args})"
        dot = f"lambda {args}, __tl_c: __tl_sum(__tl_F({args}) * __tl_c)"
        rows = f"__tl_vmap(lambda __tl_c: __tl_grad({dot}, {a})({args}, __tl_c))"
        return (f"lambda {args}: (lambda __tl_y: __tl_empty(__tl_y, {ps[a]}) if "
                f"__tl_size(__tl_y) == 0 else __tl_rows(({rows})(__tl_basis(__tl_y)), "
                f"__tl_y, {ps[a]}))({out})")
    tangents = ", ".join("__tl_t" if i == a else f"__tl_zeros({p})" for i, p in enumerate(ps))
    cols = f"__tl_vmap(lambda __tl_t: __tl_jvp({f}, ({args},), ({tangents},))[1])"
    out = ps[a] if kind == "hessian" else f"__tl_F({args})"
    return (f"lambda {args}: __tl_empty({out}, {ps[a]}) if __tl_size({ps[a]}) == 0 else "
            f"__tl_cols(({cols})(__tl_basis({ps[a]})), {ps[a]})")


def vjp_expression(n: int) -> str:
    """`tl.vjp(__tl_F, *primals)` (n primals) as a lambda of the primals: the output and
    a function of the cotangent c giving the gradients of <F(*primals), c>, a tuple with
    one entry per primal (the function runs again in the pullback)."""
    ps = [f"__tl_p{i}" for i in range(n)]
    args = ", ".join(ps)
    dot = f"lambda {args}, __tl_c: __tl_sum(__tl_F({args}) * __tl_c)"
    argnums = "(" + "".join(f"{i}, " for i in range(n)) + ")"
    return (f"lambda {args}: (__tl_F({args}), "
            f"lambda __tl_c: __tl_grad({dot}, {argnums})({args}, __tl_c))")


def names(fun: Any) -> dict[str, Any]:
    """The values of the names the expression reads, `fun` for `__tl_F`."""
    # (The transforms, from the package the user called them through: the front end
    # sits below the API modules and does not import them.)
    tl = sys.modules["tapeless"]
    return {"__tl_F": fun, "__tl_jvp": tl.jvp, "__tl_grad": tl.grad, "__tl_vmap": tl.vmap,
            "__tl_zeros": np.zeros_like, "__tl_sum": np.sum,
            "__tl_basis": basis, "__tl_cols": columns_to_jacobian,
            "__tl_rows": rows_to_jacobian, "__tl_empty": empty_jacobian,
            "__tl_size": np.size}


def compiled_jacobian(kind: str, fun: Callable[..., Any], argnums: Any,
                      has_aux: bool) -> Callable[..., Any] | None:
    """A Python function computing `kind(fun, argnums)` that the front end compiles (for a
    global made by `tl.jacfwd`, `tl.jacrev` or `tl.hessian`, called in compiled code);
    None where that is not supported (argnums not an int, has_aux, a function whose
    parameters are not n plain positional ones)."""
    if not isinstance(argnums, int) or has_aux:
        return None
    # (of a Jacobian, `tl.jacfwd(tl.jacrev(f))`: the parameters of the one compiled code
    # calls, not the `*args` of the Python computing it outside)
    inner = getattr(fun, "__tapeless_jacobian__", None)
    try:
        sig = inspect.signature(fun if inner is None or inner() is None else inner())
    except (TypeError, ValueError):
        return None
    params = list(sig.parameters.values())
    if any(p.kind not in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) or
           p.default is not p.empty for p in params) or not -len(params) <= argnums < len(params):
        return None
    n = len(params)
    name = f"{kind}_{getattr(fun, '__name__', 'f')}"
    if not name.isidentifier():
        name = kind
    source = f"def {name}({', '.join(f'__tl_p{i}' for i in range(n))}):\n" \
             f"    return ({jacobian_expression(kind, n, argnums % n)})" \
             f"({', '.join(f'__tl_p{i}' for i in range(n))})\n"
    filename = f"<tapeless {kind} of {getattr(fun, '__qualname__', name)}>"
    lines = source.splitlines(keepends=True)
    linecache.cache[filename] = (len(source), None, lines, filename)
    namespace = names(fun)
    # (Compiled and guarded as the user's code: the function's module, not tapeless's.)
    namespace["__name__"] = getattr(fun, "__module__", None) or "__main__"
    exec(compile(source, filename, "exec"), namespace)
    made: Callable[..., Any] = namespace[name]
    return made

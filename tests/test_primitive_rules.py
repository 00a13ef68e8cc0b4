"""Every differentiable primitive's reverse rule, checked against finite differences.

Generated from the registry: for each primitive in `PRIMITIVES` with
`differentiable=True` (NumPy and math functions, operators, builtins, structural
primitives, array methods and the AD helpers of `ad_ops.py`), `SAMPLES` gives argument
generators (several shapes, broadcasting, size-1 axes, each inside the function's
domain) and which arguments are differentiable. For each sample the test writes a small
module calling the primitive and

- first order: `tl.grad` of `<ct, prim(args)>` (a random cotangent `ct`) against the
  4-point central difference of the compiled forward along a random direction;
- second order: `tl.grad` of `<u, grad(<ct, prim(args)>)>` (the inner `tl.grad` taken
  inside compiled code, so the rule's backpropagator is itself differentiated), with
  respect to the primitive's arguments and the cotangent, against finite differences
  of the first-order gradient.

A differentiable primitive without a rule or without a `SAMPLES` entry is a failing
test: add samples when you add a primitive."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from gradcheck import (
    Pair,
    Point,
    Scaler,
    assert_same_structure,
    check_directional,
    is_dataclass_value,
    is_float_leaf,
    load_source,
    random_cotangent,
    random_like,
    vdot,
)

import tapeless as tl
from tapeless.primitives import PRIMITIVES

Gen = np.random.Generator


@dataclass
class Sample:
    """One way of calling a primitive.

    make: the call's positional arguments (a `*args` parameter's elements spread out);
    diff: which of them are differentiated;
    call: the call as source over a0, a1, ... (default: the primitive object itself
      called with every argument, which binds exactly like the IR does);
    extra: module-level source the call needs (helper functions);
    second: whether to check the second derivative too (default: for the first sample
      of each primitive only);
    xfail, xfail2: a known bug outside the rules (first / second order), as a strict
      xfail with its reason;
    fxfail, fxfail2: the same for the forward-mode checks (`test_forward_rules.py`)."""

    make: Callable[[Gen], tuple]
    diff: tuple[int, ...] = (0,)
    label: str = ""
    call: str | None = None
    extra: str = ""
    second: bool | None = None
    rtol: float = 1e-6
    xfail: str = ""
    xfail2: str = ""
    fxfail: str = ""
    fxfail2: str = ""


# --- argument generators ---------------------------------------------------------------


def u(r: Gen, shape: tuple | None, lo: float = -1.0, hi: float = 1.0) -> Any:
    """Uniform in [lo, hi]: a Python float when `shape` is None, else an array."""
    if shape is None:
        return float(r.uniform(lo, hi))
    return r.uniform(lo, hi, size=shape)


def away(r: Gen, shape: tuple | None, lo: float = 0.3, hi: float = 1.5) -> Any:
    """Magnitude in [lo, hi] with a random sign (away from a kink at 0)."""
    mag = u(r, shape, lo, hi)
    sign = r.choice([-1.0, 1.0], size=() if shape is None else shape)
    return float(mag * sign) if shape is None else mag * sign


def distinct(r: Gen, shape: tuple) -> np.ndarray:
    """Values at least 0.2 apart (no ties for max/min/sort)."""
    n = int(np.prod(shape))
    return (r.permutation(n) * 0.25 + r.uniform(-0.02, 0.02, size=n)).reshape(shape) - n / 8


def spd(r: Gen, n: int, batch: tuple = ()) -> np.ndarray:
    """A well-conditioned matrix (not symmetric)."""
    return 2.0 * np.eye(n) + 0.3 * r.normal(size=batch + (n, n))


def far_apart(r: Gen, s1: tuple | None, s2: tuple | None) -> tuple:
    """Two broadcastable operands whose elements differ by at least 0.1 everywhere."""
    while True:
        a, b = u(r, s1), u(r, s2)
        if np.min(np.abs(np.subtract(a, b))) > 0.1:
            return a, b


UNARY_SHAPES = [None, (3,), (2, 1, 3)]
BINARY_SHAPES = [(None, None), ((3,), None), ((2, 3), (3,)), ((2, 1), (1, 3)),
                 ((1, 3), (2, 3))]


def unary(lo: float = -1.0, hi: float = 1.0, shapes: list | None = None,
          gen: Callable[..., Any] = u, **kw: Any) -> list[Sample]:
    """Second order on the last shape (an array with a size-1 axis)."""
    shapes = shapes or UNARY_SHAPES
    return [Sample(lambda r, s=s: (gen(r, s, lo, hi),), label=str(s),
                   second=k == len(shapes) - 1, **kw) for k, s in enumerate(shapes)]


def math_unary(lo: float = -1.0, hi: float = 1.0, gen: Callable[..., Any] = u) -> list[Sample]:
    return unary(lo, hi, [None, None], gen)


def binary(gen1: Callable[[Gen, Any], Any] = lambda r, s: u(r, s),
           gen2: Callable[[Gen, Any], Any] = lambda r, s: u(r, s),
           shapes: list | None = None, diff: tuple = (0, 1), **kw: Any) -> list[Sample]:
    """Second order on the broadcasting pair (2, 1) x (1, 3)."""
    return [Sample(lambda r, s=s: (gen1(r, s[0]), gen2(r, s[1])), diff, label=str(s),
                   second=s == ((2, 1), (1, 3)), **kw) for s in (shapes or BINARY_SHAPES)]


def binary_apart(shapes: list | None = None) -> list[Sample]:
    return [Sample(lambda r, s=s: far_apart(r, *s), (0, 1), label=str(s),
                   second=s == ((2, 1), (1, 3))) for s in (shapes or BINARY_SHAPES)]


def reduction(name: str, extra_params: tuple = ()) -> list[Sample]:
    """np.sum-like reductions: (a, axis, [dtype, ddof...], keepdims)."""
    def mk(shape: tuple, axis: Any, keepdims: bool, ddof: int = 0,
           second: bool = False) -> Sample:
        def make(r: Gen) -> tuple:
            a = distinct(r, shape) if name in ("max", "min") else \
                away(r, shape, 0.5, 1.5) if name == "prod" else u(r, shape)
            middle = tuple(None if p == "dtype" else ddof for p in extra_params)
            return (a, axis, *middle, keepdims)

        return Sample(make, label=f"{shape}-axis={axis}-keepdims={keepdims}-ddof={ddof}",
                      second=second)

    ddof = 1 if "ddof" in extra_params else 0
    return [mk((2, 3), None, False), mk((2, 3), 0, False, ddof), mk((2, 3, 2), -1, True),
            mk((2, 3, 2), (0, 2), False, second=True), mk((1, 3), 1, True, ddof),
            mk((4,), 0, False), mk((3, 1), 1, False)]  # (the last: along an axis of 1)


SUM_PARAMS = ("dtype",)
VAR_PARAMS = ("dtype", "ddof")

WHILE_HELPER = """
def loop_while(x, y, n):
    i = 0
    while i < n:
        x, y = np.sin(x) * y + 0.5, x * 0.9 - y * 0.25
        i = i + 1
    return x, y
"""

FOR_HELPER = """
def loop_for(x, y, n):
    for i in range(n):
        x = x * np.cos(y + i) + 0.25 * y
    return x
"""

STAR_HELPER = """
def star_target(a, b, c):
    return a * np.sin(b) + c * c
"""

CALLEES_HELPER = """
class Scaled:
    def __init__(self, c):
        self.c = c

    def __call__(self, z):
        return self.c * np.sin(z) * z


FUNCS = [lambda z: z * np.sin(z), np.tanh, Scaled(1.5)]
"""

LIFT_HELPER = """
def inner(w, f):
    return np.sum(f(w) * w)


def lifted(x, act):
    return tl.grad(inner)(x, act) * x
"""

UNPACK_HELPER = """
def unpacked(x, y):
    a, b, c = x
    u, v = [a * y, b]
    (p, q), r = (u, v), c
    return a * b * np.sin(c) + u * v + p * q * r
"""

UNBOUND_HELPER = """
def assigned_in_loop(x, n):
    for _ in range(n):
        y = np.sin(x) * x
    return y * x
"""

FWD_HELPER = """
def picked(z, k):
    fs = [lambda w: w * np.sin(w), lambda w: w * w * w]
    return fs[k](z)


def fwd_pick(x, t, k):
    return tl.jvp(lambda z: picked(z, k), (x,), (t,))[1]


def scaled(y, s=2.0):
    return np.sin(y) * s


def fwd_outer(x, t, act):
    return tl.jvp(lambda z: act(z) * z, (x,), (t,))[1]
"""

# Forward mode over derivative code (a `tl.jvp` of a `tl.grad`, inside compiled code) that
# calls a function value chosen at run time: F of the J-callable's call.
FWD_OF_GRAD_HELPER = FWD_HELPER + """

def summed(w, k):
    return np.sum(picked(w, k))


def fwd_of_grad(x, t, k):
    return tl.jvp(lambda z: tl.grad(summed)(z, k), (x,), (t,))[1]
"""

S = Sample
SAMPLES: dict[str, list[Sample]] = {
    # Forward mode (`tapeless.ad.forward`): a call of a function value chosen at run
    # time, a function of the code around a `tl.jvp` (in both modes over it: its J- or
    # F-callable is derived again with F innermost), a tangent made dense, and a function
    # value with a default.
    "call_fwd": [S(lambda r: (u(r, (3,)), u(r, (3,)), 1), (0, 1), call="fwd_pick(a0, a1, a2)",
                   extra=FWD_HELPER)],
    # Forward over reverse through a function value chosen at run time: one made in
    # compiled code (a J-callable of generated code), and one held in a list (made
    # J-callable at run time), whose third order is refused (GradError), never wrong.
    "call_value_fwd": [S(lambda r: (u(r, (3,)), u(r, (3,)), 1), (0, 1),
                         call="fwd_of_grad(a0, a1, a2)", extra=FWD_OF_GRAD_HELPER),
                       S(lambda r: (u(r, (3,)), u(r, (3,))), (0, 1),
                         call="tl.jvp(lambda z: tl.grad(lambda w: np.sum(FUNCS[0](w)))(z), "
                              "(a0,), (a1,))[1]", extra=CALLEES_HELPER, label="held",
                         xfail="reverse mode over it is refused (GradError): the callee is "
                               "not a function of generated code", second=False,
                         fxfail="forward mode over it is refused (GradError): the callee is "
                                "not a function of generated code")],
    "lift_fwd": [S(lambda r: (u(r, None), u(r, None)), (0, 1),
                   call="fwd_outer(a0, a1, np.tanh)", extra=FWD_HELPER)],
    "split_fwd": [S(lambda r: (u(r, None), u(r, None)), (0, 1),
                    call="fwd_outer(a0, a1, scaled)", extra=FWD_HELPER)],
    "data_only": [S(lambda r: (u(r, (3,)),))],
    # A read of a variable bound on some paths only, and zip(..., strict=True).
    "check_bound": [S(lambda r: (u(r, (3,)),), call="assigned_in_loop(a0, 2)",
                      extra=UNBOUND_HELPER)],
    "unpack": [S(lambda r: (u(r, (3,)), u(r, None)), (0, 1), call="unpacked(a0, a1)",
                 extra=UNPACK_HELPER)],
    "zip_strict": [S(lambda r: (u(r, (3,)), u(r, (3,))), (0, 1),
                     call="np.sum(np.array([x * np.sin(y) "
                          "for x, y in zip(a0, a1, strict=True)]))")],
    "dense": [S(lambda r: ((u(r, None), u(r, (2,))), (u(r, None), u(r, (2,)))), (0,))],
    "checkpoint_name": [S(lambda r: (u(r, (3,)), "h"), diff=(0,))],
    "stop_gradient": [S(lambda r: (u(r, (3,)),), call="a0 * np.cos(P(a0) * 0.0)")],
    # A function value derivative code did not make: a lambda, a NumPy function and a
    # callable object held in a list.
    "call_value": [S(lambda r: (u(r, (3,)),), call="FUNCS[0](a0) + FUNCS[1](a0)",
                     extra=CALLEES_HELPER),
                   S(lambda r: (u(r, (3,)),), call="FUNCS[2](a0) * a0", extra=CALLEES_HELPER,
                     second=True, label="object")],
    # A function passed to a `tl.grad` called inside compiled code.
    "lift": [S(lambda r: (u(r, (3,)),), call="lifted(a0, np.tanh)", extra=LIFT_HELPER),
             S(lambda r: (u(r, (3,)),), call="lifted(a0, lambda z: z * z * z)",
               extra=LIFT_HELPER, label="lambda")],
    # --- structure -------------------------------------------------------------------
    "make_tuple": [S(lambda r: (u(r, None), u(r, (2, 3)), u(r, None)), (0, 1, 2),
                     call="(a0, a1, a2)")],
    "make_list": [S(lambda r: (u(r, None), u(r, (3,))), (0, 1), call="[a0, a1]")],
    "tuple_getitem": [S(lambda r: ((u(r, None), u(r, (2,)), u(r, None)), 1)),
                      S(lambda r: ((u(r, None), u(r, (2,))), -2))],
    "getitem": [
        S(lambda r: (u(r, (3, 4)), 1), label="int"),
        S(lambda r: (u(r, (3, 4)), -1), label="negative"),
        S(lambda r: (u(r, (3, 4)), (slice(None), 2)), label="slice-int"),
        S(lambda r: (u(r, (3, 4)), (slice(1, None), slice(None, None, 2))), label="slices"),
        S(lambda r: (u(r, (5,)), np.array([0, 2, 0, 4, 2])), label="repeated-fancy"),
        S(lambda r: (u(r, (3, 4)), (np.array([0, 1, 1]), np.array([2, 0, 2]))),
          label="repeated-fancy-2d"),
        S(lambda r: (u(r, (4,)), np.array([True, False, True, True])), label="mask"),
        S(lambda r: (u(r, (2, 3)), (None, Ellipsis, 1)), label="newaxis-ellipsis"),
        S(lambda r: ([u(r, None), u(r, (2,)), u(r, None)], 1), label="list"),
        S(lambda r: ([u(r, None), u(r, None), u(r, None)], slice(0, 2)), label="list-slice"),
        S(lambda r: ((u(r, None), u(r, None), u(r, None)), slice(1, None)),
          label="tuple-slice"),
        S(lambda r: ({"a": u(r, (2,)), "b": u(r, None)}, "a"), label="dict"),
    ],
    "make_dict": [S(lambda r: (("a", "b"), (u(r, None), u(r, (2,)))), (1,))],
    "getattr": [S(lambda r: (Point(u(r, None), u(r, (2,))), "y")),
                S(lambda r: (Pair(u(r, None), u(r, None)), "a")),
                S(lambda r: (u(r, (2, 3)), "T"))],
    # (a method named like a built-in type's, called: `opt.update(x)`)
    "user_method": [S(lambda r: (Scaler(u(r, (3,))), u(r, (3,))), (0, 1),
                      call="P(a0, 'update')(a1)")],
    "switch": [S(lambda r: (True, u(r, None), u(r, (2,))), (1, 2)),
               S(lambda r: (False, u(r, (2,)), u(r, (2,))), (1, 2))],
    "while_loop": [S(lambda r: (u(r, None), u(r, (2,)), 3), (0, 1), call="loop_while(a0, a1, a2)",
                     extra=WHILE_HELPER),
                   S(lambda r: (u(r, None), u(r, None), 0), (0, 1),
                     call="loop_while(a0, a1, a2)", extra=WHILE_HELPER, label="zero-trips")],
    "for_range": [S(lambda r: (u(r, (2,)), u(r, None), 3), (0, 1), call="loop_for(a0, a1, a2)",
                    extra=FOR_HELPER)],
    "call_star": [S(lambda r: ((u(r, None), u(r, (2,)), u(r, None)),),
                    call="star_target(*a0)", extra=STAR_HELPER)],
    "as_sequence": [S(lambda r: ([u(r, None), u(r, None)],)),
                    S(lambda r: (u(r, (2, 3)),))],
    "list_map": [S(lambda r: ([u(r, None), u(r, None), u(r, None)],),
                   call="[x * np.sin(x) for x in a0]"),
                 S(lambda r: ((u(r, (2,)), u(r, (2,))),), call="[x * np.sin(x) for x in a0]")],
    "list_flatmap": [S(lambda r: ([u(r, None), u(r, None)],),
                       call="[z for x in a0 for z in (x, x * x)]")],
    "construct": [S(lambda r: (u(r, None), u(r, (2,))), (0, 1), call="Point(a0, a1)"),
                  S(lambda r: (u(r, None), u(r, None)), (0, 1), call="Pair(a0, a1)")],
    "repeat_sens": [S(lambda r: ((u(r, None), u(r, (2,)), u(r, None), u(r, (2,))),
                           (0.0, np.zeros(2)))),
                    S(lambda r: ([u(r, None), u(r, None), u(r, None)], [0.0]))],
    # dataclasses.replace(like, **dict(zip(names, values))), and the part of a
    # sensitivity it leaves to the original.
    "replace_fields": [S(lambda r: (Point(u(r, None), u(r, (2,))), ("y",), (u(r, (2,)),)),
                         (0, 2)),
                       S(lambda r: (Point(u(r, None), u(r, (2,))), ("x", "y"),
                                    (u(r, None), u(r, (2,)))), (0, 2), label="all")],
    "without_fields": [S(lambda r: ({"x": u(r, None), "y": u(r, (2,))},
                                    Point(0.0, np.zeros(2)), ("y",)), (0,)),
                       S(lambda r: ((u(r, None), u(r, None)), Pair(0.0, 0.0), ("b",)), (0,))],
    # Trees: leaves, a structure from leaves, and the sensitivities between the two.
    "tree_leaves": [S(lambda r: ({"b": u(r, (2,)), "a": (u(r, None), Point(u(r, None),
                                                                         u(r, (2,))))},),
                      (0,)),
                    S(lambda r: ([u(r, None), None, Pair(u(r, (2,)), u(r, None))],), (0,),
                      label="none-namedtuple")],
    "tree_unflatten": [S(lambda r: ((0.0, [0.0, 0.0]), [u(r, None), u(r, (2,)), u(r, None)]),
                         (1,)),
                       S(lambda r: ({"y": 0.0, "x": Point(0.0, 0.0)},
                                    [u(r, None), u(r, (2,)), u(r, None)]), (1,), label="dict")],
    "tree_leaves_sens": [S(lambda r: ((0.0, [0.0, 0.0]), (u(r, None), [u(r, (2,)), u(r, None)])),
                           (1,))],
    "tree_unflatten_sens": [S(lambda r: ((0.0, [0.0, 0.0]), [u(r, None), u(r, (2,)),
                                                             u(r, None)]), (1,))],
    "dict_merge": [S(lambda r: ({"a": u(r, None), "b": u(r, (2,))}, {"b": u(r, (2,)),
                                                                    "c": u(r, None)}),
                     (0, 1), call='{**a0, "z": a0["a"] * 2.0, **a1}')],
    "dict_merge_sens": [S(lambda r: ({"a": u(r, None), "b": u(r, (2,))},
                                     ({"a": 0.0, "b": 0.0}, {"b": 0.0}), 0), (0,))],
    "construct_value": [S(lambda r: (Point, (u(r, None), u(r, (2,)))), (1,)),
                        S(lambda r: (Pair, (u(r, None), u(r, None))), (1,))],
    "zip": [S(lambda r: ([u(r, None), u(r, None), u(r, None)], (u(r, None), u(r, None))),
              (0, 1), call="list(P(a0, a1))", label="unequal-lengths"),
            S(lambda r: (u(r, (3, 2)), [u(r, None), u(r, None), u(r, None)]), (0, 1),
              call="[a * b for a, b in P(a0, a1)]", label="array-rows")],
    "enumerate": [S(lambda r: ([u(r, None), u(r, None)], 1), call="list(P(a0, a1))"),
                  S(lambda r: (u(r, (3,)), 0), call="[i * x for i, x in P(a0, a1)]")],
    "reversed": [S(lambda r: ((u(r, None), u(r, (2,))),), call="list(P(a0))"),
                 S(lambda r: (u(r, (3, 2)),), call="list(P(a0))")],
    "sorted": [S(lambda r: (distinct(r, (4,)).tolist(),)), S(lambda r: (distinct(r, (3,)),))],
    "dict": [S(lambda r: ({"a": u(r, None), "b": u(r, (2,))},)),
             S(lambda r: ([("a", u(r, None)), ("b", u(r, (2,)))],), label="pairs"),
             S(lambda r: (("a", "b"), (u(r, None), u(r, None))), (1,),
               call="P(zip(a0, a1))", label="zip")],
    # --- operators -------------------------------------------------------------------
    "add": binary() + [S(lambda r: ((u(r, None), u(r, None)), (u(r, None),)), (0, 1),
                         label="tuples")],
    "sub": binary(),
    "mul": binary() + [S(lambda r: ((u(r, None), u(r, None)), 2), label="tuple-repeat")],
    "truediv": binary(gen2=lambda r, s: away(r, s, 0.5, 2.0)),
    "mod": [S(lambda r: (u(r, None, 0.2, 0.8) + 2.0, 1.5), (0, 1)),
            S(lambda r: (u(r, (3,), 0.2, 0.8) + 3.0, u(r, None, 1.1, 1.4)), (0, 1)),
            S(lambda r: (-u(r, (2, 2), 0.2, 0.8), u(r, (2,), 1.1, 1.4)), (0, 1))],
    "divmod": [S(lambda r: (u(r, None, 0.2, 0.8) + 2.0, 1.5), (0, 1)),
               S(lambda r: (-u(r, (2, 2), 0.2, 0.8), u(r, (2,), 1.1, 1.4)), (0, 1))],
    "fdiv": binary(gen2=lambda r, s: away(r, s, 0.5, 2.0)),
    "fpow": binary(lambda r, s: u(r, s, 0.5, 2.0), lambda r, s: u(r, s, -1.5, 2.5)),
    "pow": binary(lambda r, s: u(r, s, 0.5, 2.0), lambda r, s: u(r, s, -1.5, 2.5))
    + [S(lambda r: (away(r, (3,)), 3), label="int-exponent"),
       S(lambda r: (u(r, None, -2.0, -0.5), 2), label="negative-base")],
    "matmul": [S(lambda r: (u(r, (3,)), u(r, (3,))), (0, 1), label="vv"),
               S(lambda r: (u(r, (2, 3)), u(r, (3,))), (0, 1), label="mv"),
               S(lambda r: (u(r, (3,)), u(r, (3, 2))), (0, 1), label="vm"),
               S(lambda r: (u(r, (2, 3)), u(r, (3, 4))), (0, 1), label="mm"),
               S(lambda r: (u(r, (2, 2, 3)), u(r, (3, 4))), (0, 1), label="batched"),
               S(lambda r: (u(r, (2, 1, 2, 3)), u(r, (3, 3, 2))), (0, 1), label="broadcast"),
               S(lambda r: (u(r, (3,)), u(r, (2, 3, 2))), (0, 1), label="v-batched"),
               S(lambda r: (u(r, (2, 2, 3)), u(r, (3,))), (0, 1), label="batched-v")],
    "neg": unary(),
    "pos": unary(),
    # --- builtins --------------------------------------------------------------------
    "abs": unary(0.3, 1.5, gen=away),
    "float": [S(lambda r: (np.float64(u(r, None)),)), S(lambda r: (np.array(u(r, None)),)),
              S(lambda r: (u(r, None),))],
    "tuple": [S(lambda r: ([u(r, None), u(r, (2,))],)), S(lambda r: (u(r, (3,)),)),
              S(lambda r: (u(r, (2, 3)),))],
    "list": [S(lambda r: ((u(r, None), u(r, (2,))),)), S(lambda r: (u(r, (2, 3)),))],
    "sum": [S(lambda r: ([u(r, None), u(r, None), u(r, None)], 0)),
            S(lambda r: ((u(r, (2,)), u(r, (2,))), u(r, None)), (0, 1)),
            S(lambda r: (u(r, (3, 2)), 0), label="array")],
    "min": [S(lambda r: tuple(distinct(r, (3,)).tolist()), (0, 1, 2)),
            S(lambda r: (distinct(r, (4,)).tolist(),), label="list"),
            S(lambda r: (distinct(r, (4,)),), label="array")],
    "max": [S(lambda r: tuple(distinct(r, (3,)).tolist()), (0, 1, 2)),
            S(lambda r: (distinct(r, (4,)).tolist(),), label="list"),
            S(lambda r: (distinct(r, (4,)),), label="array")],
    # --- AD helpers --------------------------------------------------------------------
    "gadd": [S(lambda r: (u(r, None), u(r, None)), (0, 1)),
             S(lambda r: (u(r, (2, 3)), u(r, (2, 3))), (0, 1)),
             S(lambda r: ((u(r, None), u(r, (2,))), (u(r, None), u(r, (2,)))), (0, 1)),
             S(lambda r: ({"a": u(r, None)}, {"a": u(r, None), "b": u(r, (2,))}), (0, 1))],
    "sens_of": [S(lambda r: (u(r, (2, 3)), u(r, (2, 3)))), S(lambda r: (u(r, None), 1.0))],
    "unbroadcast": [S(lambda r: (u(r, (2, 3)), u(r, (3,)))),
                    S(lambda r: (u(r, (2, 3)), u(r, (1, 3)))),
                    S(lambda r: (u(r, (2, 3)), u(r, None))),
                    S(lambda r: (u(r, (4, 2, 3)), u(r, (2, 1))))],
    "broadcast_like": [S(lambda r: (u(r, (3,)), u(r, (2, 3)))),
                       S(lambda r: (u(r, (2, 1)), u(r, (2, 3)))),
                       S(lambda r: (u(r, None), u(r, (2, 2))))],
    "reshape_like": [S(lambda r: (u(r, (6,)), u(r, (2, 3)))),
                     S(lambda r: (u(r, (1,)), u(r, None)))],
    "expand_reduced": [S(lambda r: (u(r, (3,)), u(r, (2, 3)), 0, False)),
                       S(lambda r: (u(r, (2, 1)), u(r, (2, 3)), 1, True)),
                       S(lambda r: (u(r, (2,)), u(r, (2, 3, 4)), (1, 2), False)),
                       S(lambda r: (u(r, None), u(r, (2, 3)), None, False))],
    "tuple_sens": [S(lambda r: (u(r, None), 1, (0.0, 0.0, 0.0))),
                   S(lambda r: (u(r, (2,)), 0, [np.zeros(2), 0.0])),
                   S(lambda r: ((u(r, None), u(r, None)), slice(0, 2), (0.0, 0.0, 0.0)))],
    "getitem_sens": [S(lambda r: (u(r, (4,)), u(r, (3, 4)), 1)),
                     S(lambda r: (u(r, (2,)), u(r, (3, 4)), (slice(None, 2), 1))),
                     S(lambda r: (u(r, (3, 2)), u(r, (4, 2)), np.array([0, 3, 0]))),
                     S(lambda r: (u(r, None), [0.0, 0.0], 1))],
    "scatter_sens": [S(lambda r: (np.zeros((3, 4)), (0, 2), (u(r, (4,)), u(r, (4,)))),
                       diff=(2,)),
                     S(lambda r: (np.zeros((3, 2)), ((slice(None, 2), 1), 1),
                                  (u(r, (2,)), u(r, (2,)))), diff=(2,)),
                     S(lambda r: (np.zeros((2, 3, 2)), ((slice(None), 0), (slice(None), 2)),
                                  (u(r, (2, 2)), u(r, (2, 2)))), diff=(2,))],
    "getattr_sens": [S(lambda r: (u(r, None), Point(0.0, 0.0), "x")),
                     S(lambda r: (u(r, (3, 2)), u(r, (2, 3)), "T")),
                     S(lambda r: (u(r, None), Pair(0.0, 0.0), "b"))],
    "sens_getattr": [S(lambda r: ({"x": u(r, None), "y": u(r, (2,))}, Point(0.0, 0.0), "y")),
                     S(lambda r: (u(r, (3, 2)), u(r, (2, 3)), "T")),
                     S(lambda r: ((u(r, None), u(r, None)), Pair(0.0, 0.0), "b"))],
    "field_sens": [S(lambda r: ({"x": u(r, None), "y": u(r, (2,))}, Point, 2)),
                   S(lambda r: ((u(r, None), u(r, None)), Pair, 2))],
    "struct_sens": [S(lambda r: ((u(r, None), u(r, (2,))), Point)),
                    S(lambda r: ((u(r, None), u(r, None)), Pair))],
    "check_scalar_output": [S(lambda r: (u(r, None),)), S(lambda r: (np.float64(u(r, None)),))],
    "check_aux_output": [S(lambda r: ((u(r, None), u(r, (2,))),)),
                         S(lambda r: ([u(r, (2,)), u(r, None)],))],
    "to_structure": [S(lambda r: (u(r, (2, 3)), np.zeros((2, 3)))),
                     S(lambda r: ((u(r, None), u(r, (2,))), (0.0, np.zeros(2)))),
                     S(lambda r: ({"x": u(r, None), "y": u(r, None)}, Point(0.0, 0.0)))],
    "from_structure": [S(lambda r: ((u(r, None), [u(r, (2,))]),)),
                       S(lambda r: (Point(u(r, None), u(r, (2,))),))],
    "polygamma": [S(lambda r: (0, u(r, None, 0.5, 4.0)), (1,)),
                  S(lambda r: (1, u(r, None, 0.5, 4.0)), (1,))],
    "sens_index": [S(lambda r: ((u(r, None), u(r, (2,))), 1)),
                   S(lambda r: ({"a": u(r, None), "b": u(r, (2,))}, "b"))],
    "take_sens": [S(lambda r: (u(r, (4,)), u(r, (5,)), np.array([0, 2, 2, 4]), None)),
                  S(lambda r: (u(r, (2, 3)), u(r, (4, 3)), np.array([1, 1]), 0)),
                  S(lambda r: (u(r, (2, 3)), u(r, (2, 4)), np.array([3, 0, 3]), 1))],
    "concat_sens": [S(lambda r: (u(r, (2, 5)), (u(r, (2, 1)), u(r, (2, 4))), 1)),
                    S(lambda r: (u(r, (6,)), (u(r, (2,)), u(r, (2, 2))), None)),
                    S(lambda r: (u(r, (5, 3)), [u(r, (2, 3)), u(r, (3, 3))], 0))],
    "index_concat": [
        S(lambda r: (u(r, (2,)), u(r, None), u(r, (3,))), (0, 1, 2), call="np.r_[a0, a1, a2]",
          label="r_"),
        S(lambda r: (u(r, (2, 2)), u(r, (1, 2))), (0, 1), call="np.r_[a0, a1]", label="r_-2d"),
        S(lambda r: (u(r, (2,)), u(r, None)), (0, 1), call="np.r_[a0, 0:3, a1]",
          label="r_-slice"),
        S(lambda r: (u(r, (3,)),), call="np.r_[a0]", label="r_-one"),
        S(lambda r: (u(r, (3,)), u(r, (3, 2))), (0, 1), call="np.c_[a0, a1]", label="c_",
          second=True),
        S(lambda r: (u(r, None), u(r, None)), (0, 1), call="np.c_[a0, a1]", label="c_-numbers")],
    "index_concat_sens": [S(lambda r: (u(r, (4,)), 0, (u(r, (2,)), u(r, None), slice(0, 1)))),
                          S(lambda r: (u(r, (3, 3)), -1, (u(r, (3,)), u(r, (3, 2)))))],
    "index_concat_dense": [S(lambda r: ((u(r, (2,)), u(r, None)), 0, (np.zeros(2), 0.0))),
                           S(lambda r: ((u(r, (3,)), u(r, (3, 2))), -1,
                                        (np.zeros(3), np.zeros((3, 2)))))],
    "diag_sens": [S(lambda r: (u(r, (3,)), u(r, (3, 3)), 0)),
                  S(lambda r: (u(r, (2,)), u(r, (3, 3)), 1)),
                  S(lambda r: (u(r, (2,)), u(r, (3, 4)), -1))],
    # --- NumPy: elementwise -------------------------------------------------------------
    "np.exp": unary(), "np.expm1": unary(), "np.exp2": unary(),
    "np.log": unary(0.3, 2.0), "np.log1p": unary(-0.5, 2.0), "np.log2": unary(0.3, 2.0),
    "np.log10": unary(0.3, 2.0), "np.sqrt": unary(0.3, 2.0), "np.cbrt": unary(0.3, 1.5, gen=away),
    "np.square": unary(), "np.reciprocal": unary(0.3, 1.5, gen=away),
    "np.sin": unary(-2.0, 2.0), "np.cos": unary(-2.0, 2.0), "np.tan": unary(-1.2, 1.2),
    "np.tanh": unary(-2.0, 2.0), "np.sinh": unary(), "np.cosh": unary(),
    # (Near 0 and at 0 too, where the rule switches to its series.)
    "np.sinc": unary(-2.0, 2.0) + [S(lambda r: (np.array([0.0, 3e-5, -2e-4, 0.7]),),
                                     label="near-zero", second=True)],
    "logistic": unary(-3.0, 3.0),
    "np.arcsin": unary(-0.8, 0.8), "np.arccos": unary(-0.8, 0.8), "np.arctan": unary(-2, 2),
    "np.arcsinh": unary(-2.0, 2.0), "np.arccosh": unary(1.2, 3.0),
    "np.arctanh": unary(-0.8, 0.8), "np.abs": unary(0.3, 1.5, gen=away), "np.negative": unary(),
    "np.positive": unary(), "np.deg2rad": unary(), "np.rad2deg": unary(),
    "np.add": binary(), "np.subtract": binary(), "np.multiply": binary(),
    "np.divide": binary(gen2=lambda r, s: away(r, s, 0.5, 2.0)),
    "np.power": binary(lambda r, s: u(r, s, 0.5, 2.0), lambda r, s: u(r, s, -1.5, 2.5)),
    "np.mod": [S(lambda r: (u(r, None, 0.2, 0.8) + 2.0, 1.5), (0, 1)),
               S(lambda r: (u(r, (3,), 0.2, 0.8) + 3.0, u(r, None, 1.1, 1.4)), (0, 1)),
               S(lambda r: (-u(r, (2, 2), 0.2, 0.8), u(r, (2,), 1.1, 1.4)), (0, 1),
                 second=True)],
    "np.fmod": [S(lambda r: (u(r, None, 2.2, 2.8), 1.0), (0, 1)),
                S(lambda r: (-u(r, (2, 2), 3.2, 3.8), u(r, (2,), 1.1, 1.4)), (0, 1),
                  second=True)],
    "np.maximum": binary_apart(), "np.minimum": binary_apart(),
    "np.fmax": binary_apart(), "np.fmin": binary_apart(),
    "np.arctan2": binary(gen2=lambda r, s: away(r, s)),
    "np.logaddexp": binary(), "np.hypot": binary(lambda r, s: away(r, s), lambda r, s: away(r, s)),
    "np.where": [S(lambda r: (u(r, (2, 3)) > 0, u(r, (2, 3)), u(r, (2, 3))), (1, 2)),
                 S(lambda r: (np.array([True, False, True]), u(r, (2, 1)), u(r, None)), (1, 2),
                   label="broadcast")],
    "np.clip": [S(lambda r: (away(r, (2, 3), 0.1, 1.0), -0.5, 0.5), (0, 1, 2),
                  label="scalars"),
                S(lambda r: (away(r, (2, 3), 0.1, 1.0), u(r, (3,), -0.7, -0.05), None), (0, 1),
                  label="array-min"),
                S(lambda r: (away(r, (4,), 0.1, 1.0), None, 0.05), (0, 2), label="max-only")],
    "method.clip": [S(lambda r: (away(r, (2, 3), 0.1, 1.0), -0.5, 0.5), (0, 1, 2)),
                    S(lambda r: (away(r, (3,), 0.1, 1.0), None, 0.05), (0, 2))],
    # --- NumPy: linear algebra ----------------------------------------------------------
    "np.dot": [S(lambda r: (u(r, (3,)), u(r, (3,))), (0, 1), label="vv"),
               S(lambda r: (u(r, (2, 3)), u(r, (3,))), (0, 1), label="mv"),
               S(lambda r: (u(r, (2, 3)), u(r, (3, 4))), (0, 1), label="mm"),
               S(lambda r: (u(r, None), u(r, (2, 3))), (0, 1), label="scalar"),
               S(lambda r: (u(r, (2, 2, 3)), u(r, (3, 2))), (0, 1), label="3d"),
               S(lambda r: (u(r, (3,)), u(r, (2, 3, 2))), (0, 1), label="v-3d")],
    "method.dot": [S(lambda r: (u(r, (2, 3)), u(r, (3,))), (0, 1)),
                   S(lambda r: (u(r, (2, 3)), u(r, (3, 2))), (0, 1))],
    "np.matmul": [S(lambda r: (u(r, (3,)), u(r, (3,))), (0, 1)),
                  S(lambda r: (u(r, (2, 2, 3)), u(r, (3, 4))), (0, 1))],
    "np.outer": [S(lambda r: (u(r, (3,)), u(r, (4,))), (0, 1)),
                 S(lambda r: (u(r, (2, 2)), u(r, (3,))), (0, 1))],
    "np.inner": [S(lambda r: (u(r, (3,)), u(r, (3,))), (0, 1)),
                 S(lambda r: (u(r, (2, 3)), u(r, (4, 3))), (0, 1)),
                 S(lambda r: (u(r, None), u(r, (3,))), (0, 1))],
    "np.einsum": [S(lambda r: ("ij,jk->ik", u(r, (2, 3)), u(r, (3, 4))), (1, 2)),
                  S(lambda r: ("i,i->", u(r, (3,)), u(r, (3,))), (1, 2)),
                  S(lambda r: ("ij->j", u(r, (2, 3))), (1,)),
                  S(lambda r: ("ijk,ik->j", u(r, (2, 3, 4)), u(r, (2, 4))), (1, 2)),
                  S(lambda r: ("ij,jk", u(r, (2, 3)), u(r, (3, 2))), (1, 2), label="implicit"),
                  S(lambda r: ("i,j,k->ijk", u(r, (2,)), u(r, (3,)), u(r, (2,))), (1, 2, 3)),
                  S(lambda r: (u(r, (2, 3)), [0, 1], u(r, (3, 4)), [1, 2], [0, 2]), (0, 2),
                    label="sublists"),
                  S(lambda r: (u(r, (2, 3)), [0, 1], [1, 0]), label="sublist-transpose"),
                  S(lambda r: ("...ij,...jk->...ik", u(r, (1, 2, 3)), u(r, (4, 3, 2))), (1, 2),
                    label="ellipsis-broadcast", second=True),
                  S(lambda r: ("i...,i...", u(r, (3, 2)), u(r, (3, 1, 2))), (1, 2),
                    label="ellipsis-implicit"),
                  S(lambda r: ("ii->i", u(r, (3, 3))), (1,), label="diagonal", second=True),
                  S(lambda r: ("ii", u(r, (3, 3))), (1,), label="trace"),
                  S(lambda r: ("iij->j", u(r, (3, 3, 2))), (1,), label="diagonal-sum"),
                  S(lambda r: ("iji,jk->ik", u(r, (2, 3, 2)), u(r, (3, 4))), (1, 2),
                    label="diagonal-product"),
                  S(lambda r: ("...ii->...i", u(r, (2, 3, 3))), (1,), label="ellipsis-diagonal"),
                  S(lambda r: (u(r, (3, 3)), [0, 0], [0]), label="sublist-diagonal")],
    "np.tensordot": [S(lambda r: (u(r, (2, 3, 4)), u(r, (3, 4, 2)), 2), (0, 1)),
                     S(lambda r: (u(r, (2, 3)), u(r, (3, 4)), 1), (0, 1)),
                     S(lambda r: (u(r, (3, 2)), u(r, (3, 4)), ((0,), (0,))), (0, 1))],
    "np.trace": [S(lambda r: (u(r, (3, 3)), 0, 0, 1)), S(lambda r: (u(r, (3, 4)), 1, 0, 1)),
                 S(lambda r: (u(r, (3, 4)), -1, 1, 0), label="axes-swapped"),
                 S(lambda r: (u(r, (2, 3, 4)), 1, -1, 0), label="3-d", second=True)],
    "np.diag": [S(lambda r: (u(r, (3,)), 0)), S(lambda r: (u(r, (3,)), 1)),
                S(lambda r: (u(r, (3, 3)), 0)), S(lambda r: (u(r, (3, 4)), -1))],
    "np.tril": [S(lambda r: (u(r, (3, 3)), 0)), S(lambda r: (u(r, (3, 4)), -1))],
    "np.triu": [S(lambda r: (u(r, (3, 3)), 0)), S(lambda r: (u(r, (3, 4)), 1))],
    "np.linalg.norm": [S(lambda r: (u(r, (4,)), None, None, False), label="vector"),
                       S(lambda r: (u(r, (2, 3)), None, None, False), label="matrix"),
                       S(lambda r: (u(r, (2, 3)), "fro", None, False), label="fro"),
                       S(lambda r: (u(r, (2, 3)), None, 1, True), label="axis-keepdims"),
                       S(lambda r: (u(r, (2, 3)), 2, 0, False), label="ord2-axis"),
                       S(lambda r: (away(r, (4,)), 1, None, False), label="ord1")],
    "np.linalg.inv": [S(lambda r: (spd(r, 3),)), S(lambda r: (spd(r, 2, (2,)),))],
    "np.linalg.solve": [S(lambda r: (spd(r, 3), u(r, (3,))), (0, 1)),
                        S(lambda r: (spd(r, 3), u(r, (3, 2))), (0, 1)),
                        S(lambda r: (spd(r, 2, (2,)), u(r, (2, 2, 3))), (0, 1))],
    "np.linalg.det": [S(lambda r: (spd(r, 3),)), S(lambda r: (spd(r, 2, (3,)),))],
    "np.linalg.slogdet": [S(lambda r: (spd(r, 3),)),
                          S(lambda r: (-spd(r, 3),), label="negative-det")],
    # --- NumPy: reductions --------------------------------------------------------------
    "np.sum": reduction("sum", SUM_PARAMS), "method.sum": reduction("sum", SUM_PARAMS),
    "np.mean": reduction("mean", SUM_PARAMS), "method.mean": reduction("mean", SUM_PARAMS),
    "np.prod": reduction("prod", SUM_PARAMS), "method.prod": reduction("prod", SUM_PARAMS),
    "np.max": reduction("max"), "np.min": reduction("min"), "np.amax": reduction("max"),
    "np.amin": reduction("min"), "method.max": reduction("max"),
    "method.min": reduction("min"),
    "np.var": reduction("var", VAR_PARAMS), "method.var": reduction("var", VAR_PARAMS),
    "np.std": reduction("std", VAR_PARAMS), "method.std": reduction("std", VAR_PARAMS),
    "np.cumsum": [S(lambda r: (u(r, (2, 3)), None)), S(lambda r: (u(r, (2, 3)), 0)),
                  S(lambda r: (u(r, (2, 3)), -1))],
    "method.cumsum": [S(lambda r: (u(r, (2, 3)), None)), S(lambda r: (u(r, (2, 3)), 1))],
    # --- NumPy: shapes ------------------------------------------------------------------
    "np.reshape": [S(lambda r: (u(r, (2, 3)), (3, 2))), S(lambda r: (u(r, (2, 3)), (-1,))),
                   S(lambda r: (u(r, (2, 3)), (1, 6, 1)))],
    "method.reshape": [S(lambda r: (u(r, (2, 3)), 3, 2), label="spread"),
                       S(lambda r: (u(r, (2, 3)), (6,)), label="tuple"),
                       S(lambda r: (u(r, (2, 3)), -1), label="flat")],
    "np.transpose": [S(lambda r: (u(r, (2, 3)), None)), S(lambda r: (u(r, (2, 3, 4)), (1, 2, 0)))],
    "method.transpose": [S(lambda r: (u(r, (2, 3)),), label="none"),
                         S(lambda r: (u(r, (2, 3, 4)), 1, 2, 0), label="spread"),
                         S(lambda r: (u(r, (2, 3, 4)), (2, 0, 1)), label="tuple")],
    "np.swapaxes": [S(lambda r: (u(r, (2, 3, 4)), 0, 2))],
    "method.swapaxes": [S(lambda r: (u(r, (2, 3)), 1, 0))],
    "np.moveaxis": [S(lambda r: (u(r, (2, 3, 4)), 0, -1)),
                    S(lambda r: (u(r, (2, 3, 4)), (0, 1), (2, 0)))],
    "np.expand_dims": [S(lambda r: (u(r, (2, 3)), 1)), S(lambda r: (u(r, (3,)), (0, 2)))],
    "np.squeeze": [S(lambda r: (u(r, (1, 3, 1)), None)), S(lambda r: (u(r, (1, 3, 1)), 2))],
    "method.squeeze": [S(lambda r: (u(r, (1, 3)), None)), S(lambda r: (u(r, (3, 1)), 1))],
    "np.broadcast_to": [S(lambda r: (u(r, (3,)), (2, 3))), S(lambda r: (u(r, (2, 1)), (2, 3))),
                        S(lambda r: (u(r, None), (2,)))],
    "np.concatenate": [S(lambda r: ((u(r, (2, 3)), u(r, (1, 3))), 0)),
                       S(lambda r: ([u(r, (2, 1)), u(r, (2, 3)), u(r, (2, 2))], 1),
                         label="list-axis1"),
                       S(lambda r: ((u(r, (2, 2)), u(r, (3,))), None), label="axis-none")],
    "np.stack": [S(lambda r: ((u(r, (2, 3)), u(r, (2, 3))), 0)),
                 S(lambda r: ([u(r, (3,)), u(r, (3,)), u(r, (3,))], 1))],
    "np.hstack": [S(lambda r: ((u(r, (2,)), u(r, (3,))),)),
                  S(lambda r: ((u(r, (2, 1)), u(r, (2, 3))),))],
    "np.vstack": [S(lambda r: ((u(r, (3,)), u(r, (3,))),)),
                  S(lambda r: ((u(r, (2, 3)), u(r, (1, 3))),))],
    "np.split": [S(lambda r: (u(r, (6,)), 3, 0)), S(lambda r: (u(r, (2, 5)), [1, 3], 1))],
    "np.ravel": [S(lambda r: (u(r, (2, 3)),))],
    "method.ravel": [S(lambda r: (u(r, (2, 3)),))],
    "method.flatten": [S(lambda r: (u(r, (3, 2)),))],
    "np.flip": [S(lambda r: (u(r, (2, 3)), None)), S(lambda r: (u(r, (2, 3)), 1))],
    "np.take": [S(lambda r: (u(r, (5,)), np.array([0, 2, 2, 4]), None)),
                S(lambda r: (u(r, (4, 3)), np.array([1, 1, 3]), 0)),
                S(lambda r: (u(r, (2, 4)), np.array([[3, 0], [3, 3]]), 1)),
                S(lambda r: (u(r, (3, 2)), 2, None), label="scalar-index")],
    "np.atleast_1d": [S(lambda r: (u(r, None),)), S(lambda r: (u(r, (3,)),))],
    "np.atleast_2d": [S(lambda r: (u(r, None),)), S(lambda r: (u(r, (3,)),)),
                      S(lambda r: (u(r, (2, 3)),))],
    # --- NumPy: more functions (rules_arrays.py) ----------------------------------------
    "np.fabs": unary(0.3, 1.5, gen=away), "np.degrees": unary(), "np.radians": unary(),
    "np.conjugate": unary(), "np.real": unary(),
    "np.logaddexp2": binary(),
    "np.nan_to_num": [S(lambda r: (u(r, (2, 3)), True, 0.0, None, None)),
                      S(lambda r: (np.array([0.5, np.nan, -0.25, np.inf, -np.inf]), True,
                                   u(r, None), u(r, None), u(r, None)), (0, 2, 3, 4),
                        label="non-finite")],
    "np.repeat": [S(lambda r: (u(r, (2, 3)), 2, None)),
                  S(lambda r: (u(r, (2, 3)), [1, 0, 3], 1), label="counts-axis1", second=True),
                  S(lambda r: (u(r, (3, 2)), 2, -2), label="negative-axis"),
                  S(lambda r: (np.array(u(r, None)), 3, None), label="0-d"),
                  S(lambda r: (u(r, None), 2, None), label="float")],
    "np.roll": [S(lambda r: (u(r, (5,)), 2, None)),
                S(lambda r: (u(r, (2, 3)), -1, -1), label="negative"),
                S(lambda r: (u(r, (2, 3)), (1, 2), (0, 1)), label="tuples", second=True),
                S(lambda r: (u(r, (2, 3)), 4, None), label="flat")],
    "np.tile": [S(lambda r: (u(r, (3,)), 2)),
                S(lambda r: (u(r, (2, 3)), (2, 1, 2)), label="more-reps", second=True),
                S(lambda r: (u(r, (2, 1, 3)), (2, 2)), label="fewer-reps"),
                S(lambda r: (u(r, None), (2, 3)), label="float")],
    "np.flipud": [S(lambda r: (u(r, (3, 2)),)), S(lambda r: (u(r, (3,)),))],
    "np.fliplr": [S(lambda r: (u(r, (3, 2)),)), S(lambda r: (u(r, (2, 3, 2)),))],
    "np.rot90": [S(lambda r: (u(r, (2, 3)), 1, (0, 1))),
                 S(lambda r: (u(r, (2, 3, 4)), 3, (2, 0)), label="k3-axes"),
                 S(lambda r: (u(r, (2, 3)), -2, (0, 1)), label="k-2")],
    "np.rollaxis": [S(lambda r: (u(r, (2, 3, 4)), 2, 0)), S(lambda r: (u(r, (2, 3, 4)), 0, 3)),
                    S(lambda r: (u(r, (2, 3, 4)), -1, -2))],
    "np.atleast_3d": [S(lambda r: (u(r, None),)), S(lambda r: (u(r, (3,)),)),
                      S(lambda r: (u(r, (2, 3)),)), S(lambda r: (u(r, (2, 3, 1, 2)),))],
    "np.column_stack": [S(lambda r: ((u(r, (3,)), u(r, (3, 2)), u(r, (3,))),)),
                        S(lambda r: ((u(r, (2, 2)), u(r, (2, 1))),))],
    "np.append": [S(lambda r: (u(r, (2, 3)), u(r, (3,)), None), (0, 1)),
                  S(lambda r: (u(r, (2, 3)), u(r, (1, 3)), 0), (0, 1), label="axis0"),
                  S(lambda r: (u(r, (2, 3)), u(r, (2, 2)), -1), (0, 1), label="axis-1"),
                  S(lambda r: (u(r, (3,)), u(r, None), None), (0, 1), label="float")],
    "np.array_split": [S(lambda r: (u(r, (7,)), 3, 0)),
                       S(lambda r: (u(r, (2, 5)), [1, 3], -1), label="indices"),
                       S(lambda r: (u(r, (4, 2)), 3, 0), label="uneven")],
    "np.hsplit": [S(lambda r: (u(r, (2, 4)), 2)), S(lambda r: (u(r, (6,)), [1, 4]))],
    "np.vsplit": [S(lambda r: (u(r, (4, 2)), 2)), S(lambda r: (u(r, (3, 2, 2)), [1]))],
    "np.dsplit": [S(lambda r: (u(r, (2, 1, 4)), 2))],
    "np.take_along_axis": [
        S(lambda r: (u(r, (3, 4)), np.array([[0, 3], [1, 1], [2, 0]]), 1)),
        S(lambda r: (u(r, (3, 2)), np.array([[2, 0]]), 0), label="broadcast-index"),
        S(lambda r: (u(r, (5,)), np.array([4, 0, 4]), None), label="flat")],
    "take_along_axis_sens": [
        S(lambda r: (u(r, (3, 2)), u(r, (3, 4)), np.array([[0, 3], [1, 1], [2, 0]]), 1)),
        S(lambda r: (u(r, (3,)), u(r, (5,)), np.array([4, 0, 4]), None))],
    "np.pad": [S(lambda r: (u(r, (2, 3)), 1, "constant", u(r, None)), (0, 3)),
               S(lambda r: (u(r, (2, 3)), ((1, 0), (0, 2)), "constant", 0.0), label="widths"),
               S(lambda r: (u(r, (4,)), (2, 3), "constant", 0.0), label="1-d"),
               S(lambda r: (u(r, (3, 4)), ((2, 1), (1, 3))), call="P(a0, a1, mode='reflect')",
                 label="reflect", second=True),
               S(lambda r: (u(r, (2, 3)), 2), call="P(a0, a1, mode='edge')", label="edge"),
               S(lambda r: (u(r, (2, 3)), ((1, 2), (3, 0))), call="P(a0, a1, mode='symmetric')",
                 label="symmetric"),
               S(lambda r: (u(r, (3,)), 4), call="P(a0, a1, 'wrap')", label="wrap"),
               S(lambda r: (np.array(u(r, None)), 2, "constant", 0.0), label="0-d")],
    "np.meshgrid": [S(lambda r: (u(r, (3,)), u(r, (2,))), (0, 1), call="P(a0, a1)"),
                    S(lambda r: (u(r, (3,)), u(r, (2,)), u(r, (4,))), (0, 1, 2),
                      call="P(a0, a1, a2, indexing='ij')", label="ij"),
                    S(lambda r: (u(r, (3,)), u(r, (2,)), u(r, (2,))), (0, 1, 2),
                      call="P(a0, a1, a2, sparse=True)", label="sparse-xy-3"),
                    S(lambda r: (u(r, (2, 2)),), call="P(a0)", label="one")],
    "np.select": [S(lambda r: ([np.array([True, False, False, True]),
                                np.array([True, True, False, False])],
                               [u(r, (4,)), u(r, (4,))], u(r, None)), (1, 2)),
                  S(lambda r: ((np.array([[True], [False]]), np.array([False, True, True])),
                               (u(r, (2, 3)), u(r, (3,))), u(r, (2, 1))), (1, 2),
                    label="broadcast")],
    # (prepend and append left out when none: NumPy's default is no value, not None)
    "np.diff": [S(lambda r: (u(r, (5,)), 1, -1), call="P(a0, a1, a2)"),
                S(lambda r: (u(r, (3, 4)), 2, 0), call="P(a0, a1, a2)", second=True),
                S(lambda r: (u(r, (2, 4)), 3, -1), call="P(a0, a1, a2)", label="n3"),
                S(lambda r: (u(r, (3, 1)), 1, 1), call="P(a0, a1, a2)", label="to-empty"),
                S(lambda r: (u(r, (2, 3)), 1, -1, u(r, None), u(r, (2, 2))), (0, 3, 4),
                  label="prepend-append", second=True),
                S(lambda r: (u(r, (4,)), 2, u(r, (1,))), (0, 2), call="P(a0, a1, prepend=a2)",
                  label="prepend")],
    "np.cumprod": [S(lambda r: (away(r, (2, 3), 0.5, 1.5), None, None)),
                   S(lambda r: (away(r, (2, 3), 0.5, 1.5), 0, None)),
                   S(lambda r: (away(r, (2, 4), 0.5, 1.5), -1, None), second=True),
                   S(lambda r: (np.array([[0.5, 0.0, -1.2, 0.7], [0.0, 1.1, 0.0, 0.9]]), 1, None),
                     label="zeros", second=True)],
    "np.gradient": [S(lambda r: (u(r, (5,)),), call="P(a0)"),
                    S(lambda r: (u(r, (3, 4)),), call="P(a0)", label="2-d"),
                    S(lambda r: (u(r, (2, 4)), u(r, None, 0.5, 1.5)), (0, 1),
                      call="P(a0, a1, axis=-1)", label="spacing-axis", second=True),
                    S(lambda r: (u(r, (2, 3)),), call="P(a0, axis=0)", label="n2")],
    "np.kron": [S(lambda r: (u(r, (2, 3)), u(r, (2, 2))), (0, 1)),
                S(lambda r: (u(r, (3,)), u(r, (2, 2))), (0, 1), label="ranks"),
                S(lambda r: (u(r, None), u(r, (3,))), (0, 1), label="float")],
    "np.cross": [S(lambda r: (u(r, (3,)), u(r, (3,))), (0, 1)),
                 S(lambda r: (u(r, (2, 3)), u(r, (3,))), (0, 1), label="broadcast"),
                 S(lambda r: (u(r, (3, 2)), u(r, (3, 2)), -1, -1, -1, 0), (0, 1),
                   label="axis0")],
    "np.sort": [S(lambda r: (distinct(r, (5,)), -1, None, None)),
                S(lambda r: (distinct(r, (3, 4)), 0, None, None), label="axis0"),
                S(lambda r: (distinct(r, (2, 3)), None, None, None), label="flat")],
    "np.partition": [S(lambda r: (distinct(r, (6,)), 2, -1, "introselect", None)),
                     S(lambda r: (distinct(r, (3, 4)), (0, 2), 0, "introselect", None),
                       label="kths-axis0"),
                     S(lambda r: (distinct(r, (2, 3)), -1, None, "introselect", None),
                       label="flat")],
    "np.nansum": [S(lambda r: (u(r, (2, 3)), None, None, False)),
                  S(lambda r: (np.array([[0.5, np.nan, 1.0], [np.nan, -0.3, 0.2]]), 1, None,
                               True), label="nan", second=True)],
    "np.nanmean": [S(lambda r: (u(r, (2, 3)), None, None, False)),
                   S(lambda r: (np.array([[0.5, np.nan, 1.0], [np.nan, -0.3, 0.2]]), -1, None,
                                False), label="nan", second=True)],
    "np.nanmax": [S(lambda r: (distinct(r, (2, 3)), None, False)),
                  S(lambda r: (np.array([[0.5, np.nan, 1.0], [np.nan, 0.3, -0.2]]), 0, True),
                    label="nan", second=True)],
    "np.nanmin": [S(lambda r: (distinct(r, (2, 3)), 1, False)),
                  S(lambda r: (np.array([[0.5, np.nan, 1.0], [np.nan, 0.3, -0.2]]), None, False),
                    label="nan")],
    "np.average": [S(lambda r: (u(r, (2, 3)), None, None, False, False)),
                   S(lambda r: (u(r, (2, 3)), 1, u(r, (3,), 0.5, 1.5), False, False), (0, 2),
                     label="weights-1d", second=True),
                   S(lambda r: (u(r, (2, 3)), None, u(r, (2, 3), 0.5, 1.5), False, False),
                     (0, 2), label="weights-full"),
                   S(lambda r: (u(r, (2, 3)), 0, u(r, (2, 3), 0.5, 1.5), False, True), (0, 2),
                     label="keepdims")],
    "np.median": [S(lambda r: (distinct(r, (5,)), None, None, False, False)),
                  S(lambda r: (distinct(r, (3, 4)), 1, None, False, False), label="even",
                    second=True),
                  S(lambda r: (distinct(r, (3, 4)), 0, None, False, True), label="keepdims"),
                  S(lambda r: (distinct(r, (2, 4)), None, None, False, False), label="flat-even")],
    "np.quantile": [S(lambda r: (distinct(r, (5,)), 0.3, None, None, False, "linear", False),
                      (0, 1)),
                    S(lambda r: (distinct(r, (3, 4)), np.array([0.1, 0.55, 0.8]), -1, None,
                                 False, "linear", False), (0, 1), label="q-array", second=True),
                    S(lambda r: (distinct(r, (3, 4)), 0.25, 0, None, False, "linear", True),
                      (0, 1), label="keepdims")],
    "np.percentile": [S(lambda r: (distinct(r, (6,)), 37.0, None, None, False, "linear", False),
                        (0, 1)),
                      S(lambda r: (distinct(r, (2, 5)), np.array([[10.0], [55.0]]), 1, None,
                                   False, "linear", False), (0, 1), label="q-2d")],
    "np.cov": [S(lambda r: (u(r, (2, 5)), None, True, False, None)),
               S(lambda r: (u(r, (5, 3)), None, False, True, None), label="rowvar-bias",
                 second=True),
               S(lambda r: (u(r, (4,)), u(r, (4,)), True, False, None), (0, 1), label="y"),
               S(lambda r: (u(r, (6,)), None, True, False, 2), label="1-d-ddof")],
    "np.corrcoef": [S(lambda r: (u(r, (3, 5)), None, True)),
                    S(lambda r: (u(r, (5, 2)), u(r, (5,)), False), (0, 1), label="y-rowvar"),
                    S(lambda r: (u(r, (4,)), None, True), label="one")],
    "np.convolve": [S(lambda r: (u(r, (5,)), u(r, (3,)), "full"), (0, 1)),
                    S(lambda r: (u(r, (5,)), u(r, (2,)), "same"), (0, 1), label="same"),
                    S(lambda r: (u(r, (2,)), u(r, (5,)), "same"), (0, 1), label="same-swapped"),
                    S(lambda r: (u(r, (4,)), u(r, (4,)), "same"), (0, 1), label="same-even"),
                    S(lambda r: (u(r, (3,)), u(r, (5,)), "valid"), (0, 1), label="valid")],
    "np.correlate": [S(lambda r: (u(r, (5,)), u(r, (3,)), "valid"), (0, 1)),
                     S(lambda r: (u(r, (5,)), u(r, (2,)), "same"), (0, 1), label="same"),
                     S(lambda r: (u(r, (2,)), u(r, (5,)), "same"), (0, 1), label="same-swapped"),
                     S(lambda r: (u(r, (3,)), u(r, (4,)), "full"), (0, 1), label="full")],
    "np.interp": [S(lambda r: (np.array([-0.5, 0.3, 1.2, 2.5, 3.5]), np.array([0.0, 1.0, 1.5, 3.0]),
                               u(r, (4,)), None, None, None), (0, 1, 2)),
                  S(lambda r: (u(r, None, 0.1, 2.9), np.array([0.0, 1.0, 3.0]), u(r, (3,)),
                               None, None, None), (0, 2), label="float"),
                  S(lambda r: (np.array([-1.0, 0.5, 4.0]), np.array([0.0, 1.0, 3.0]), u(r, (3,)),
                               u(r, None), u(r, None), None), (0, 2, 3, 4), label="left-right")],
    "np.unique": [S(lambda r: (distinct(r, (2, 3)), False, False, False, None)),
                  S(lambda r: (distinct(r, (4,)), False, True, True, None), label="flags"),
                  S(lambda r: (distinct(r, (3,)), True, False, False, None), label="index")],
    "np.histogram": [S(lambda r: (distinct(r, (7,)), 3, None, None, None)),
                     S(lambda r: (distinct(r, (2, 4)), 4, None, None, u(r, (2, 4), 0.5, 1.5)),
                       (0, 4), label="weights", second=True),
                     S(lambda r: (distinct(r, (6,)), 3, None, True, u(r, (6,), 0.5, 1.5)),
                       (0, 4), label="density-weights", second=True),
                     S(lambda r: (distinct(r, (6,)), np.array([-1.0, -0.1, 0.2, 1.0]), None,
                                  True, None), (0, 1), label="edges-density"),
                     S(lambda r: (distinct(r, (6,)), 2, (-0.55, 0.45), None,
                                  u(r, (6,), 0.5, 1.5)), (0, 4), label="range")],
    "np.bincount": [S(lambda r: (np.array([0, 2, 2, 5]), u(r, (4,)), 0), (1,)),
                    S(lambda r: (np.array([1, 1]), u(r, (2,)), 4), (1,), label="minlength")],
    # --- NumPy: constructors and conversions --------------------------------------------
    "np.full": [S(lambda r: ((2, 3), u(r, None), None), (1,)),
                S(lambda r: ((2, 3), u(r, (3,)), None), (1,))],
    "np.full_like": [S(lambda r: (np.zeros((2, 3)), u(r, None), None), (1,))],
    "np.arange": [S(lambda r: (u(r, None), u(r, None, 3.2, 3.8)), (0,), call="np.arange(a0, a1)"),
                  S(lambda r: (u(r, None), 4.0, u(r, None, 0.6, 0.7)), (0, 2),
                    call="np.arange(a0, a1, a2)"),
                  S(lambda r: (u(r, None, 0.2, 0.8), u(r, None, 0.6, 0.7)), (0, 1),
                    call="np.arange(a0, 3.5, a1)")],
    "np.linspace": [S(lambda r: (u(r, None), u(r, None, 2.0, 3.0), 5, True), (0, 1)),
                    S(lambda r: (u(r, None), u(r, None, 2.0, 3.0), 4, False), (0, 1))],
    "np.array": [S(lambda r: ([u(r, None), u(r, None), u(r, None)], None)),
                 S(lambda r: ([[u(r, None), u(r, None)], [u(r, None), u(r, None)]], None),
                   label="nested"),
                 S(lambda r: ((u(r, (3,)), u(r, (3,))), None), label="tuple-of-arrays"),
                 S(lambda r: (u(r, (2, 2)), float), label="array")],
    "np.asarray": [S(lambda r: ([u(r, None), u(r, None)], None)),
                   S(lambda r: (u(r, (2, 3)), None))],
    "np.copy": [S(lambda r: (u(r, (2, 3)),))],
    "method.copy": [S(lambda r: (u(r, (2, 3)),))],
    "np.float64": [S(lambda r: (u(r, None),)), S(lambda r: (np.array(u(r, None)),))],
    "np.float32": [S(lambda r: (u(r, None),), rtol=1e-3, second=False)],
    "method.astype": [S(lambda r: (u(r, (2, 3)), np.float64)),
                      S(lambda r: (u(r, (2, 3)), "float64"))],
    "method.item": [S(lambda r: (u(r, (1,)),)), S(lambda r: (u(r, (1, 1)),))],
    "method.conj": [S(lambda r: (u(r, (2, 3)),))],
    "method.items": [S(lambda r: ({"a": u(r, None), "b": u(r, (2,))},),
                       call="[v for k, v in P(a0)]")],
    "method.values": [S(lambda r: ({"a": u(r, None), "b": u(r, (2,))},), call="list(P(a0))")],
    "method.get": [S(lambda r: ({"a": u(r, None), "b": u(r, (2,))}, "b", None)),
                   S(lambda r: ({"a": u(r, None)}, "z", u(r, None)), (0, 2), label="default")],
    # --- math ---------------------------------------------------------------------------
    "math.sin": math_unary(-2, 2), "math.cos": math_unary(-2, 2),
    "math.tan": math_unary(-1.2, 1.2), "math.asin": math_unary(-0.8, 0.8),
    "math.acos": math_unary(-0.8, 0.8), "math.atan": math_unary(-2, 2),
    "math.sinh": math_unary(), "math.cosh": math_unary(), "math.tanh": math_unary(-2, 2),
    "math.asinh": math_unary(-2, 2), "math.acosh": math_unary(1.2, 3.0),
    "math.atanh": math_unary(-0.8, 0.8), "math.exp": math_unary(),
    "math.expm1": math_unary(), "math.log1p": math_unary(-0.5, 2.0),
    "math.log2": math_unary(0.3, 2.0), "math.log10": math_unary(0.3, 2.0),
    "math.sqrt": math_unary(0.3, 2.0), "math.fabs": math_unary(0.3, 1.5, gen=away),
    "math.erf": math_unary(-1.5, 1.5), "math.erfc": math_unary(-1.5, 1.5),
    "math.gamma": math_unary(0.5, 4.0), "math.lgamma": math_unary(0.5, 4.0),
    "math.degrees": math_unary(), "math.radians": math_unary(),
    "math.log": [S(lambda r: (u(r, None, 0.3, 3.0),)),
                 S(lambda r: (u(r, None, 0.3, 3.0), u(r, None, 1.5, 3.0)), (0, 1),
                   label="base")],
    "math.pow": [S(lambda r: (u(r, None, 0.5, 2.0), u(r, None, -1.5, 2.5)), (0, 1))],
    "math.atan2": [S(lambda r: (u(r, None), away(r, None)), (0, 1))],
    "math.hypot": [S(lambda r: (away(r, None), away(r, None)), (0, 1)),
                   S(lambda r: (away(r, None), away(r, None), away(r, None)), (0, 1, 2))],
    "math.copysign": [S(lambda r: (away(r, None), away(r, None)), (0, 1))],
    "math.fmod": [S(lambda r: (u(r, None, 2.2, 2.8), 1.0), (0, 1)),
                  S(lambda r: (-u(r, None, 3.2, 3.8), u(r, None, 1.1, 1.4)), (0, 1))],
}

# --- scipy.special (registered only where SciPy is installed) ----------------------------


def lse(shape: tuple | None, axis: Any, keepdims: bool = False, b: Any = False,
        second: bool = False) -> Sample:
    """logsumexp(a, axis, b, keepdims): b a positive weight array of shape `b`, or None."""
    def make(r: Gen) -> tuple:
        weights = None if b is False else u(r, b, 0.5, 1.5)
        return (u(r, shape, -2.0, 2.0), axis, weights, keepdims)

    return Sample(make, (0,) if b is False else (0, 2), second=second,
                  label=f"{shape}-axis={axis}-keepdims={keepdims}-b={b}")


def along(shape: tuple | None, axis: Any, second: bool = False) -> Sample:
    return Sample(lambda r: (u(r, shape, -2.0, 2.0), axis), second=second,
                  label=f"{shape}-axis={axis}")


if "scipy.special.expit" in PRIMITIVES:
    SAMPLES.update({
        "scipy.special.expit": unary(-3.0, 3.0),
        "scipy.special.logit": unary(0.1, 0.9),
        "scipy.special.erf": unary(-1.5, 1.5),
        "scipy.special.erfc": unary(-1.5, 1.5),
        "scipy.special.gammaln": unary(0.5, 4.0),
        "scipy.special.digamma": unary(0.5, 4.0),
        "scipy.special.entr": unary(0.2, 2.0),
        "scipy.special.polygamma": [
            S(lambda r: (1, u(r, (3,), 0.5, 4.0)), (1,), second=True),
            S(lambda r: (0, u(r, None, 0.5, 4.0)), (1,)),
            S(lambda r: (np.array([0, 1, 2]), u(r, (2, 3), 0.5, 4.0)), (1,))],
        "scipy.special.xlogy": binary(gen2=lambda r, s: u(r, s, 0.3, 2.0)) + [
            S(lambda r: (np.array([0.0, 1.5, 0.0]), u(r, (3,), 0.3, 2.0)), (0, 1),
              label="x=0")],
        "scipy.special.xlog1py": binary(gen2=lambda r, s: u(r, s, -0.5, 2.0)) + [
            S(lambda r: (np.array([0.0, 1.5, 0.0]), u(r, (3,), -0.5, 2.0)), (0, 1),
              label="x=0")],
        "scipy.special.logsumexp": [
            lse((2, 3), None), lse((2, 3), 1, second=True), lse((2, 3, 2), -1, True),
            lse((2, 3, 2), (0, 2)), lse((4,), 0), lse((2, 3), None, True),
            lse((2, 3), 1, b=(2, 3), second=True), lse((2, 3), 0, True, b=(3,)),
            lse(None, None)],
        "scipy.special.softmax": [along((2, 3), None), along((2, 3), 1, second=True),
                                  along((2, 3, 2), 0), along((4,), -1)],
        "scipy.special.log_softmax": [along((2, 3), None), along((2, 3), 1, second=True),
                                      along((2, 3, 2), 0), along((4,), -1)],
    })


# --- linear algebra: factorizations (rules_linalg.py, and scipy.linalg) ------------------


def separated(r: Gen, shape: tuple) -> np.ndarray:
    """A stack of matrices U diag(s) V^T with singular values at least 0.4 apart, the
    smallest 0.8 (the svd's and qr's derivatives are well conditioned there)."""
    m, n = shape[-2], shape[-1]
    k = min(m, n)
    u = np.linalg.qr(r.normal(size=shape[:-2] + (m, k)))[0]
    v = np.linalg.qr(r.normal(size=shape[:-2] + (n, k)))[0]
    s = 0.8 + 0.5 * np.arange(k)[::-1] + r.uniform(0.0, 0.1, size=shape[:-2] + (k,))
    return (u * s[..., None, :]) @ np.swapaxes(v, -1, -2)


def symmetric(r: Gen, n: int, batch: tuple = ()) -> np.ndarray:
    """A stack of symmetric positive-definite matrices with eigenvalues at least 0.4
    apart (distinct: the eigenvectors' derivative exists)."""
    a = separated(r, batch + (n, n))
    q = np.linalg.qr(a)[0]
    w = 0.8 + 0.5 * np.arange(n) + r.uniform(0.0, 0.1, size=batch + (n,))
    return (q * w[..., None, :]) @ np.swapaxes(q, -1, -2)


def norm_sample(shape: tuple, ord: Any, axis: Any = None, keepdims: bool = False,
                gen: Callable[..., Any] = away, second: bool = False) -> Sample:
    return Sample(lambda r: (gen(r, shape), ord, axis, keepdims), second=second,
                  label=f"{shape}-ord={ord}-axis={axis}-keepdims={keepdims}")


# LAPACK's eigenvectors and singular vectors may change sign under a small perturbation:
# the samples fix each one's sign by its first entry's (a gauge-invariant result).
FIX_SIGNS = """
def fix_eigh(wv):
    sign = np.sign(wv[1][..., :1, :])
    return wv[0], wv[1] * sign


def fix_svd(usv):
    sign = np.sign(usv[0][..., :1, :])
    return usv[0] * sign, usv[1], usv[2] * np.swapaxes(sign, -1, -2)
"""


def fixed(kind: str, make: Callable[[Gen], tuple], **kw: Any) -> Sample:
    """A sample of svd or eigh (`kind`) with the vectors' signs fixed."""
    params = "a0, a1" if kind == "eigh" else "a0, a1, a2, a3"
    return Sample(make, call=f"fix_{kind}(P({params}))", extra=FIX_SIGNS, **kw)


SAMPLES["np.linalg.norm"] = SAMPLES["np.linalg.norm"] + [
    norm_sample((4,), None, second=True), norm_sample((4,), np.inf),
    norm_sample((4,), -np.inf, second=True), norm_sample((4,), 0),
    norm_sample((4,), 3, second=True), norm_sample((2, 4), 0.5, 1),
    norm_sample((2, 4), -1.5, 0, True), norm_sample((3, 4), np.inf, -1),
    norm_sample((3, 3), "nuc", gen=separated, second=True),
    norm_sample((3, 4), 2, gen=separated, second=True),
    norm_sample((4, 3), -2, gen=separated), norm_sample((3, 4), 1), norm_sample((3, 4), -1),
    norm_sample((3, 4), np.inf, second=True), norm_sample((3, 4), -np.inf),
    norm_sample((2, 3, 4), "fro", (0, 2), True), norm_sample((2, 3, 4), 1, (2, 1)),
    norm_sample((2, 3, 4), "nuc", (-1, 0), True, gen=separated),
    norm_sample((2, 3, 4), None, (1, 2))]
SAMPLES.update({
    "np.diagonal": [S(lambda r: (u(r, (3, 3)), 0, 0, 1), second=True),
                    S(lambda r: (u(r, (3, 4)), 1, 0, 1), label="offset"),
                    S(lambda r: (u(r, (4, 3)), -2, 1, 0), label="axes-swapped"),
                    S(lambda r: (u(r, (2, 3, 4)), 1, -1, 0), label="3-d")],
    "method.diagonal": [S(lambda r: (u(r, (2, 3, 4)), -1, 2, 1))],
    "np.linalg.svd": [
        fixed("svd", lambda r: (separated(r, (4, 3)), False, True, False), label="tall",
              second=True),
        fixed("svd", lambda r: (separated(r, (3, 4)), False, True, False), label="wide"),
        fixed("svd", lambda r: (separated(r, (2, 3, 3)), True, True, False),
              label="stacked-full"),
        S(lambda r: (separated(r, (4, 3)), True, False, False), label="values",
          second=True),
        S(lambda r: (separated(r, (2, 3, 2)), True, False, False), label="stacked-values"),
        fixed("svd", lambda r: (separated(r, (1, 1)), False, True, False), label="1x1")],
    "np.linalg.eigh": [
        fixed("eigh", lambda r: (symmetric(r, 3), "L"), second=True),
        fixed("eigh", lambda r: (symmetric(r, 3) + np.triu(r.normal(size=(3, 3)), 1), "U"),
              label="U"),
        fixed("eigh", lambda r: (symmetric(r, 3, (2,)), "L"), label="stacked"),
        fixed("eigh", lambda r: (symmetric(r, 1), "L"), label="1x1")],
    "np.linalg.eigvalsh": [
        S(lambda r: (symmetric(r, 3) + np.tril(r.normal(size=(3, 3)), -1), "U"),
          second=True),
        S(lambda r: (symmetric(r, 3, (2,)), "L"), label="stacked")],
    "np.linalg.cholesky": [
        S(lambda r: (symmetric(r, 3),), second=True),
        S(lambda r: (symmetric(r, 3),), call="P(a0, upper=True)", label="upper"),
        S(lambda r: (symmetric(r, 2, (2,)),), label="stacked"),
        S(lambda r: (symmetric(r, 1),), label="1x1")],
    "np.linalg.qr": [
        S(lambda r: (separated(r, (4, 3)), "reduced"), label="tall", second=True),
        S(lambda r: (separated(r, (3, 3)), "complete"), label="square"),
        S(lambda r: (separated(r, (3, 5)), "reduced"), label="wide", second=True),
        S(lambda r: (separated(r, (4, 3)), "r"), label="r"),
        S(lambda r: (separated(r, (2, 4, 2)), "reduced"), label="stacked")],
    "np.linalg.pinv": [
        S(lambda r: (separated(r, (4, 3)),), second=True),
        S(lambda r: (separated(r, (3, 4)),), label="wide"),
        S(lambda r: (separated(r, (2, 3, 3)),), label="stacked")],
    "np.linalg.matrix_power": [
        S(lambda r: (spd(r, 3) / 2.0, 3), second=True),
        S(lambda r: (spd(r, 3), 1)), S(lambda r: (spd(r, 3), 0)),
        S(lambda r: (spd(r, 3), -2), label="negative", second=True),
        S(lambda r: (spd(r, 2, (2,)) / 2.0, 4), label="stacked")],
    "np.linalg.lstsq": [
        S(lambda r: (separated(r, (5, 3)), u(r, (5,)), None), (0, 1), second=True),
        S(lambda r: (separated(r, (5, 3)), u(r, (5, 2)), None), (0, 1), label="matrix-b"),
        S(lambda r: (separated(r, (3, 5)), u(r, (3,)), 1e-10), (0, 1), label="wide")],
})

if "scipy.linalg.solve_triangular" in PRIMITIVES:
    SAMPLES.update({
        "scipy.linalg.solve_triangular": [
            S(lambda r: (spd(r, 3), u(r, (3,)), 0, True, False), (0, 1), second=True),
            S(lambda r: (spd(r, 3), u(r, (3, 2)), 1, False, False), (0, 1), label="trans",
              second=True),
            S(lambda r: (spd(r, 3), u(r, (3,)), "T", True, True), (0, 1), label="unit"),
            S(lambda r: (spd(r, 3), u(r, (3, 2)), 0, False, True), (0, 1), label="upper-unit")],
        # (Not the upper factor's second derivative at special points: SciPy factors
        # a singular matrix of equal entries there, with pivots of 1e-8.)
        "scipy.linalg.cho_factor": [
            S(lambda r: (symmetric(r, 3), False), second=False),
            S(lambda r: (symmetric(r, 3), True), label="lower", second=True)],
        "scipy.linalg.cho_solve": [
            S(lambda r: (np.linalg.cholesky(symmetric(r, 3)), True, u(r, (3,))), (0, 2),
              call="P((a0, a1), a2)", second=True),
            S(lambda r: (np.linalg.cholesky(symmetric(r, 3)).T, False, u(r, (3, 2))), (0, 2),
              call="P((a0, a1), a2)", label="upper")],
    })

# --- random draws (reparameterized): each evaluation makes its generator again, so that
# finite differences see the same numbers drawn -------------------------------------------

RNG5 = "np.random.default_rng(5)"
LEGACY_HELPER = """
def seeded(draw, *args):
    np.random.seed(5)
    return draw(*args)
"""

RUNTIME_DRAWS = """
from tapeless.runtime import exponential_and_standard, normal_and_standard, uniform_and_unit
"""


def positive(r: Gen, shape: tuple | None) -> Any:
    return u(r, shape, 0.5, 1.5)


SAMPLES.update({
    "rng_normal": [
        S(lambda r: (u(r, (3,)), positive(r, (3,))), (0, 1), call=f"{RNG5}.normal(a0, a1)"),
        S(lambda r: (u(r, None), positive(r, None)), (0, 1),
          call=f"{RNG5}.normal(a0, scale=a1, size=(2, 3))", label="size")],
    "rng_uniform": [
        S(lambda r: (u(r, (3,)), positive(r, (3,))), (0, 1),
          call=f"{RNG5}.uniform(a0, a0 + a1)"),
        S(lambda r: (u(r, None), positive(r, (3,))), (0, 1),
          call=f"{RNG5}.uniform(low=a0, high=a1 + 1.0, size=(2, 3))", label="size")],
    "rng_exponential": [
        S(lambda r: (positive(r, (3,)),), call=f"{RNG5}.exponential(a0, size=(2, 3))")],
    "rng_choice": [
        S(lambda r: (u(r, (4, 3)),), call=f"{RNG5}.choice(a0, size=5)"),
        S(lambda r: (u(r, (4, 3)),), call=f"{RNG5}.choice(a0, 2, replace=False, axis=1)",
          label="axis")],
    "rng_permutation": [
        S(lambda r: (u(r, (4, 3)),), call=f"{RNG5}.permutation(a0)"),
        S(lambda r: (u(r, (4, 3)),), call=f"{RNG5}.permutation(a0, axis=1)", label="axis")],
    "normal_and_standard": [
        S(lambda r: (u(r, (3,)), positive(r, (3,))), (0, 1), extra=RUNTIME_DRAWS,
          call=f"normal_and_standard({RNG5}, a0, a1, None)")],
    "uniform_and_unit": [
        S(lambda r: (u(r, None), positive(r, (3,))), (0, 1), extra=RUNTIME_DRAWS,
          call=f"uniform_and_unit({RNG5}, a0, a0 + a1, (2, 3))")],
    "exponential_and_standard": [
        S(lambda r: (positive(r, (3,)),), extra=RUNTIME_DRAWS,
          call=f"exponential_and_standard({RNG5}, a0, None)")],
    "np.random.normal": [
        S(lambda r: (u(r, (3,)), positive(r, (3,))), (0, 1),
          call="seeded(np.random.normal, a0, a1)", extra=LEGACY_HELPER)],
    "np.random.uniform": [
        S(lambda r: (u(r, (3,)), positive(r, (3,))), (0, 1),
          call="seeded(np.random.uniform, a0, a0 + a1)", extra=LEGACY_HELPER)],
    "np.random.exponential": [
        S(lambda r: (positive(r, (3,)),), call="seeded(np.random.exponential, a0)",
          extra=LEGACY_HELPER)],
    "np.random.choice": [
        S(lambda r: (u(r, (6,)),), call="seeded(np.random.choice, a0, 5)",
          extra=LEGACY_HELPER)],
    "np.random.permutation": [
        S(lambda r: (u(r, (4, 3)),), call="seeded(np.random.permutation, a0)",
          extra=LEGACY_HELPER)],
})


# In-place updates, functionalized (primitives/update_ops.py): arrays (an int, slices, a
# repeated integer index, broadcasting), lists and dicts; the sensitivity helpers.
REPEATED = np.array([0, 2, 0])
SAMPLES.update({
    "index_update": [
        S(lambda r: (u(r, (3, 4)), 1, u(r, (4,))), (0, 2), second=True),
        S(lambda r: (u(r, (4,)), REPEATED, u(r, (3,))), (0, 2), second=True, label="repeated"),
        S(lambda r: (u(r, (3, 4)), (slice(None), 1), u(r, None)), (0, 2), label="broadcast"),
        S(lambda r: (u(r, (3, 4)), (slice(1, None), slice(None)), u(r, (1, 4))), (0, 2)),
        S(lambda r: ([u(r, None), u(r, (2,))], 1, u(r, (2,))), (0, 2), label="list"),
        S(lambda r: ({"a": u(r, None), "b": u(r, (2,))}, "a", u(r, None)), (0, 2),
          label="dict")],
    "index_add": [
        S(lambda r: (u(r, (4,)), np.array([0, 1, 1, 3]), u(r, (4,))), (0, 2), second=True),
        S(lambda r: (u(r, (3, 2)), np.array([0, 0]), u(r, (2,))), (0, 2), label="broadcast")],
    "update_rest_sens": [
        S(lambda r: (u(r, (3, 4)), 1), second=True),
        S(lambda r: (u(r, (4,)), REPEATED)),
        S(lambda r: ([u(r, None), u(r, (2,))], 0)),
        S(lambda r: ({"a": u(r, None), "b": u(r, (2,))}, "b"))],
    "update_value_sens": [
        S(lambda r: (u(r, (3, 4)), 1, np.zeros(4), False), second=True),
        S(lambda r: (u(r, (4,)), REPEATED, np.zeros(3), False)),
        S(lambda r: (u(r, (4,)), REPEATED, np.zeros(3), True)),
        S(lambda r: (u(r, (3, 4)), (slice(None), 1), 0.0, False)),
        S(lambda r: ([u(r, None), u(r, (2,))], 1, np.zeros(2), False))],
    "update_value_scatter": [
        S(lambda r: (u(r, (4,)), np.zeros((3, 4)), 1, np.zeros(4), False), second=True),
        S(lambda r: (u(r, (3,)), np.zeros(4), REPEATED, np.zeros(3), False)),
        S(lambda r: (u(r, (3,)), np.zeros(4), REPEATED, np.zeros(3), True)),
        S(lambda r: (u(r, None), np.zeros((3, 4)), (slice(None), 1), 0.0, False))],
    "list_append": [S(lambda r: ([u(r, None), u(r, (2,))], u(r, (3,))), (0, 1))],
    "list_extend": [S(lambda r: ([u(r, None)], [u(r, (2,)), u(r, None)]), (0, 1)),
                    S(lambda r: ([u(r, None)], (u(r, None), u(r, None))), (0, 1))],
    "immutable_item": [S(lambda r: ([0.0], u(r, None)), (1,)),
                       S(lambda r: (np.zeros(3), u(r, (2,))), (1,))],
    # `f(**kwargs)` with keys known at run time (primitives/keyword_ops.py).
    "kwarg_or": [S(lambda r: ({"a": u(r, (2,)), "b": u(r, None)}, "a", 0.0, "f"), (0, 2),
                   second=True),
                 S(lambda r: ({"b": u(r, None)}, "a", u(r, (2,)), "f"), (0, 2),
                   label="default")],
    "dict_without": [S(lambda r: ({"a": u(r, (2,)), "b": u(r, None), "c": u(r, None)},
                                  ("a", "c")), second=True)],
})


# --- generated wrappers ------------------------------------------------------------------


def contraction(c: str, y: str, value: Any) -> list[str]:
    """Source terms of <c, y> for a value of y's structure (float leaves only)."""
    if is_float_leaf(value):
        return [f"np.sum({c} * {y})"]
    if isinstance(value, (tuple, list)):
        return [t for i, v in enumerate(value) for t in contraction(f"{c}[{i}]", f"{y}[{i}]", v)]
    if isinstance(value, dict):
        return [t for k, v in value.items()
                for t in contraction(f"{c}[{k!r}]", f"{y}[{k!r}]", v)]
    if is_dataclass_value(value):
        return [t for f in value.__dataclass_fields__
                for t in contraction(f"{c}.{f}", f"{y}.{f}", getattr(value, f))]
    return []


def structure_key(value: Any) -> Any:
    """What the generated contraction depends on: containers and where float leaves are."""
    if is_float_leaf(value):
        return "f"
    if isinstance(value, (tuple, list)):
        return (type(value).__name__, tuple(structure_key(v) for v in value))
    if isinstance(value, dict):
        return ("dict", tuple((k, structure_key(v)) for k, v in value.items()))
    if is_dataclass_value(value):
        return (type(value).__name__, tuple(structure_key(getattr(value, f))
                                            for f in value.__dataclass_fields__))
    return None


_MODULES: dict[Any, Any] = {}


def call_source(sample: Sample, nargs: int) -> str:
    names = [f"a{i}" for i in range(nargs)]
    return sample.call or f"P({', '.join(names)})"


def header(name: str, sample: Sample) -> str:
    return ("import math\n\nimport numpy as np\n\nimport tapeless as tl\n"
            "from gradcheck import Pair, Point\nfrom tapeless.primitives import PRIMITIVES\n\n"
            f"P = PRIMITIVES[{name!r}]\n{sample.extra}\n")


def module_for(name: str, sample: Sample, args: tuple, directory: Path) -> Any:
    """The generated module for this primitive, call form and output structure."""
    nargs = len(args)
    params = ", ".join(f"a{i}" for i in range(nargs))
    call = call_source(sample, nargs)
    key0 = (name, call, nargs, sample.extra)
    if key0 not in _MODULES:
        _MODULES[key0] = load_source(header(name, sample) +
                                     f"\ndef call({params}):\n    return {call}\n",
                                     directory, "prim")
    call_module = _MODULES[key0]
    if not hasattr(call_module, "compiled_call"):
        call_module.compiled_call = tl.jit(call_module.call)
    y = call_module.compiled_call(*args)
    terms = contraction("ct", "y", y)
    if not terms:
        pytest.fail(f"{name}: the output {y!r} has no float part to differentiate")
    argnums = tuple(sample.diff)
    like = tuple(args[i] for i in argnums) + (y,)
    second_terms = contraction("w", "g", like)
    key = (key0, structure_key(y), argnums, structure_key(like))
    if key not in _MODULES:
        second_nums = argnums + (nargs,)
        source = header(name, sample) + f"""
def scalar({params}, ct):
    y = {call}
    return {" + ".join(terms)}


def second({params}, ct, w):
    g = tl.grad(scalar, {second_nums!r})({params}, ct)
    return {" + ".join(second_terms)}
"""
        _MODULES[key] = load_source(source, directory, "prim")
    return _MODULES[key], y


@pytest.fixture(scope="module")
def wrapper_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("primitive_wrappers")


DIFFERENTIABLE = sorted(n for n, p in PRIMITIVES.items() if p.differentiable)


def rule_of(name: str) -> Any:
    prim = PRIMITIVES[name]
    if prim.reverse_rule is not None:
        return prim.reverse_rule
    alias = getattr(prim, "alias", None)
    return PRIMITIVES[alias].reverse_rule if alias else None


def sample_params(order: int, forward: bool = False) -> list:
    """(name, sample, index) for every sample; for second derivatives, the samples whose
    `second` is True, by default the first of each primitive, once per rule function
    (compiling a second derivative costs much more than a first)."""
    out = []
    seen_rules: set[int] = set()
    for name in DIFFERENTIABLE:
        samples = SAMPLES.get(name)
        if not samples:
            out.append(pytest.param(name, None, 0, id=f"{name}-MISSING"))
            continue
        rule = rule_of(name)
        if order == 2 and rule is not None:
            # Primitives sharing one rule (np.max, np.amax, method.max) share its second
            # derivative: check it once.
            if id(rule) in seen_rules:
                continue
            seen_rules.add(id(rule))
        chosen = [k for k, s in enumerate(samples) if s.second]
        for k, s in enumerate(samples):
            if order == 2 and (k not in (chosen or [0]) or s.second is False):
                continue
            xfail = (s.fxfail if order == 1 else s.fxfail2) if forward else \
                (s.xfail if order == 1 else s.xfail2)
            marks = [pytest.mark.xfail(strict=True, reason=xfail)] if xfail else []
            out.append(pytest.param(name, s, k, marks=marks,
                                    id=f"{name}-{k}" + (f"-{s.label}" if s.label else "")))
    return out


PARAMS = sample_params(1)
PARAMS2 = sample_params(2)


def test_every_differentiable_primitive_has_a_rule() -> None:
    missing = [n for n in DIFFERENTIABLE if rule_of(n) is None]
    assert not missing, f"differentiable primitives without a reverse rule: {missing}"


def test_every_differentiable_primitive_has_samples() -> None:
    missing = [n for n in DIFFERENTIABLE if not SAMPLES.get(n)]
    assert not missing, f"differentiable primitives without SAMPLES (add them): {missing}"


def _seed(name: str, k: int, order: int) -> int:
    return (sum(map(ord, name)) * 1009 + k * 31 + order) % (2 ** 32)


def _setup(name: str, sample: Sample | None, k: int, order: int, directory: Path) -> tuple:
    if sample is None:
        pytest.fail(f"{name} is differentiable but has no SAMPLES entry")
    if rule_of(name) is None:
        pytest.fail(f"{name} is differentiable but has no reverse rule")
    rng = np.random.default_rng(_seed(name, k, order))
    args = sample.make(rng)
    module, y = module_for(name, sample, args, directory)
    ct = random_cotangent(rng, y)
    return rng, args, module, ct


_TRANSFORMS: dict[tuple, Any] = {}


def value_and_grad_of(module: Any, argnums: tuple) -> Any:
    """One `tl.value_and_grad` object per generated module: the first- and second-order
    checks and their finite differences share its compiled code (compiling, mostly
    optimizing, is what these tests spend their time on)."""
    key = (id(module.scalar), argnums)
    if key not in _TRANSFORMS:
        _TRANSFORMS[key] = tl.value_and_grad(module.scalar, argnums)
    return _TRANSFORMS[key]


@pytest.mark.parametrize(("name", "sample", "k"), PARAMS)
def test_first_derivative(name: str, sample: Sample | None, k: int, wrapper_dir: Path) -> None:
    rng, args, module, ct = _setup(name, sample, k, 1, wrapper_dir)
    assert sample is not None
    argnums = tuple(sample.diff) + (len(args),)  # the primitive's inputs and the cotangent
    full = (*args, ct)
    value_and_grad = value_and_grad_of(module, argnums)
    _, grads = value_and_grad(*full)
    assert isinstance(grads, tuple) and len(grads) == len(argnums)
    for i, g in zip(argnums, grads, strict=True):
        assert_same_structure(g, full[i], f"d/d a{i}")
    check_directional(grads, lambda *a: value_and_grad(*a)[0], full, argnums, rng,
                      rtol=sample.rtol, what=f"{name} first derivative")


@pytest.mark.parametrize(("name", "sample", "k"), PARAMS2)
def test_second_derivative(name: str, sample: Sample | None, k: int, wrapper_dir: Path) -> None:
    rng, args, module, ct = _setup(name, sample, k, 2, wrapper_dir)
    assert sample is not None
    argnums = tuple(sample.diff) + (len(args),)
    value_and_grad = value_and_grad_of(module, argnums)
    w = random_like(rng, value_and_grad(*args, ct)[1])
    full = (*args, ct, w)
    grads = tl.grad(module.second, argnums)(*full)
    for i, g in zip(argnums, grads, strict=True):
        assert_same_structure(g, full[i], f"d/d a{i}")

    def second(*a: Any) -> float:  # module.second, without compiling it forward
        return vdot(a[-1], value_and_grad(*a[:-1])[1])

    check_directional(grads, second, full, argnums, rng, rtol=sample.rtol,
                      what=f"{name} second derivative")


# --- non-differentiable primitives: zero gradients ---------------------------------------

NON_DIFFERENTIABLE = """
import math

import numpy as np


def through_sign(x):
    return np.sum(np.sign(x) * 2.0 + np.floor(x) + np.ceil(x) + np.rint(x))


def through_comparisons(x):
    return np.sum((x > 0.1) * 1.0 + np.greater_equal(x, 0.0) + np.isfinite(x))


def through_argmax(x):
    return float(np.argmax(x) + np.argmin(x) + x.argmax())


def through_round(x):
    return float(round(x) + int(x) + math.floor(x) + math.ceil(x)) + float(x > 0.5)


def through_shape(x):
    return float(np.size(x) + np.ndim(x) + len(x) + np.shape(x)[0])


def mixed(x):
    return np.sum(x * (x > 0) + np.sign(x) * x)


def mask_via_where(x):
    return np.sum(np.where(x > 0, x, 0.0) * np.abs(np.sign(x)))
"""


@pytest.fixture(scope="module")
def nondiff(wrapper_dir: Path) -> Any:
    return load_source(NON_DIFFERENTIABLE, wrapper_dir, "nondiff")


@pytest.mark.parametrize("fn", ["through_sign", "through_comparisons", "through_argmax",
                                "through_shape"])
def test_non_differentiable_primitives_give_zero_gradients(fn: str, nondiff: Any) -> None:
    x = np.array([0.3, -1.2, 2.5, 0.7])
    g = tl.grad(getattr(nondiff, fn))(x)
    assert isinstance(g, np.ndarray) and g.shape == x.shape and g.dtype == np.float64
    assert np.all(g == 0.0)


def test_non_differentiable_scalar_primitives(nondiff: Any) -> None:
    assert tl.grad(nondiff.through_round)(1.7) == 0.0


def test_non_differentiable_masks_do_not_block_gradients(nondiff: Any) -> None:
    x = np.array([0.3, -1.2, 2.5, -0.7])
    np.testing.assert_allclose(tl.grad(nondiff.mixed)(x), (x > 0) + np.sign(x), rtol=0)
    np.testing.assert_allclose(tl.grad(nondiff.mask_via_where)(x), (x > 0) * 1.0, rtol=0)


def test_samples_name_registered_primitives() -> None:
    """SAMPLES has no stale entries for names the registry does not know (a typo would
    otherwise leave a primitive untested)."""
    stale = [n for n in SAMPLES if n not in PRIMITIVES]
    assert not stale, stale


def test_finite_difference_helper_is_accurate() -> None:
    from gradcheck import directional_fd

    d = directional_fd(lambda x: math.exp(3.0 * x), (0.4,), (0,), (1.0,))
    assert abs(d - 3.0 * math.exp(1.2)) < 1e-9


@pytest.mark.parametrize("shape, index", [
    ((4, 6), (slice(None), np.array([[1, 0, 0], [4, 2, 0], [5, 3, -1]]))),
    ((6, 3, 2), np.array([0, 5, 5, -2])),                        # whole trailing axes
    ((2, 6, 3), (slice(None), np.array([[1, 1], [0, 5]]))),     # lead and trail
    ((3, 7), (slice(None), np.array([], dtype=np.int64))),
])
def test_bincount_scatter_adds_like_add_at(monkeypatch, shape, index) -> None:
    """The np.bincount path of getitem_sens (taken for large gathers) sums like
    np.add.at, with repeated and negative indices."""
    from tapeless import runtime

    monkeypatch.setattr(runtime, "_BINCOUNT_MIN", 0)
    expected = np.zeros(shape)
    d = np.random.default_rng(5).normal(size=expected[index].shape)
    out = np.zeros(shape)
    assert runtime._scatter_add(out, index, d)
    np.add.at(expected, index, d)
    np.testing.assert_array_equal(out, expected)
    out = np.zeros(shape)
    assert runtime._scatter_add(out, index, 2.0)  # a number, broadcast
    expected[...] = 0.0
    np.add.at(expected, index, 2.0)
    np.testing.assert_array_equal(out, expected)


def test_small_gathers_scatter_with_add_at() -> None:
    from tapeless import runtime

    assert not runtime._scatter_add(np.zeros((2, 3)), (slice(None), np.array([0, 2])),
                                    np.ones((2, 2)))
    big = np.zeros((10, 2081))
    idx = np.arange(64 * 64).reshape(64, 64) % 2081
    assert runtime._scatter_add(big, (slice(None), idx), np.ones((10, 64, 64)))
    np.testing.assert_array_equal(big.sum(axis=0), np.bincount(idx.ravel(), minlength=2081) * 10)

"""The differential corpus: small programs run both by CPython and by `tl.jit`.

Each program is an ordinary module-level function registered with the argument sets
it is called with (`@case(args1, args2, ...)`); `register(name, fn, ...)` registers a
lambda. An argument set is a tuple of positional arguments, or `kw(*args, **kwargs)`
for a call with keyword arguments. `tests/test_corpus.py` runs every (program,
arguments) pair through both and compares the results, the exceptions raised and what
was printed.

tapeless reads globals at compile time, so module-level values used here are never
reassigned.
"""

# The programs call zip() as CPython does, without `strict=` (uneven lengths are tested).
# ruff: noqa: B905

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np


@dataclass(frozen=True)
class Args:
    """One call: positional and keyword arguments."""

    args: tuple
    kwargs: dict


def kw(*args: Any, **kwargs: Any) -> Args:
    return Args(args, kwargs)


CASES: list[tuple[str, Callable[..., Any], list[Args]]] = []


def _normalize(arg_sets: tuple) -> list[Args]:
    out = [a if isinstance(a, Args) else Args(tuple(a), {}) for a in arg_sets]
    return out or [Args((), {})]


def case(*arg_sets: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    def deco(fn: Callable[..., Any]) -> Callable[..., Any]:
        CASES.append((fn.__name__, fn, _normalize(arg_sets)))
        return fn

    return deco


def register(name: str, fn: Callable[..., Any], *arg_sets: Any) -> None:
    CASES.append((name, fn, _normalize(arg_sets)))


_rng = np.random.default_rng(1234)
V3 = np.array([0.5, -1.25, 2.0])
V4 = np.array([0.3, -0.7, 1.1, 0.2])
M23 = np.array([[1.0, -2.0, 0.5], [0.25, 3.0, -1.5]])
M33 = np.array([[2.0, 0.5, -1.0], [0.3, 1.5, 0.2], [-0.4, 0.1, 3.0]])
A234 = _rng.normal(size=(2, 3, 4))
M44 = _rng.normal(size=(4, 4))
U01 = np.array([0.1, 0.45, 0.9])  # in (0, 1), for arcsin/arccos
IV = np.array([3, -1, 4, 1, -5, 9], dtype=np.int64)


# ----------------------------------------------------------------------------------
# helpers (module-level functions, dataclasses, NamedTuples) used by the programs
# ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Point:
    x: float
    y: float


@dataclass(frozen=True)
class Layer:
    w: np.ndarray
    b: np.ndarray
    scale: float = 1.0


class Pair(NamedTuple):
    a: float
    b: float


class State(NamedTuple):
    pos: np.ndarray
    vel: np.ndarray
    steps: int = 0


def h_affine(x, a=1.0, b=0.0):
    return a * x + b


def h_three(a, b, c):
    return a * 100 + b * 10 + c


def h_double(x):
    return 2 * x


def h_apply_twice(f, x):
    return f(f(x))


def h_make_adder(n):
    def add(x):
        return x + n

    return add


def h_compose(f, g):
    return lambda x: f(g(x))


def h_is_even(n):
    if n == 0:
        return True
    return h_is_odd(n - 1)


def h_is_odd(n):
    if n == 0:
        return False
    return h_is_even(n - 1)


def h_map(f, xs):
    return [f(x) for x in xs]


def h_fold(f, acc, xs):
    for x in xs:
        acc = f(acc, x)
    return acc


def h_sum_all(*xs):
    total = 0
    for x in xs:
        total = total + x
    return total


h_inc, h_dbl = (lambda v: v + 1), (lambda v: v * 2)
h_sq, h_neg, h_half = lambda v: v * v, lambda v: -v, lambda v: v / 2


# ----------------------------------------------------------------------------------
# functions: parameters, defaults, keywords, *args
# ----------------------------------------------------------------------------------


@case((1.5,), (1.5, 4.0), (1.0, 2.0, 5))
def defaults_positional(x, y=2.0, z=3):
    return x * y + z


@case((2.0,), (-1.0,))
def keyword_call_sites(x):
    return h_affine(x, b=1.0, a=3.0) + h_affine(x) + h_affine(x, 0.5) + h_affine(b=x, x=1.0)


@case((1.0,), kw(1.0, scale=3.0), kw(2.0, shift=-1.0, scale=0.5))
def keyword_only_params(x, *, scale=2.0, shift=0.5):
    return x * scale + shift


@case(kw(1.0, y=3.0), kw(y=2.0, x=5.0), (4.0, 1.0))
def top_level_keywords(x, y):
    return x - y


@case((), (1, 2, 3), (1.5, 2, -0.5))
def varargs_definition(*xs):
    total = 0
    for x in xs:
        total += x
    return total, len(xs)


@case((2.0,), (2.0, 1.0, 3.0))
def varargs_after_positional(a, *rest):
    return a * len(rest) + sum(rest), rest


@case(((1, 2, 3),), ((4, 0, 7),))
def star_at_call_site(t):
    return h_three(*t) + h_three(1, *t[1:]) + h_sum_all(*t, 10)


@case((1.0, 2.0))
def star_call_with_built_tuple(a, b):
    args = (a, b)
    more = [b, a]
    return h_sum_all(*args), h_sum_all(1.0, *args, *more), h_three(*more, 3)


@case((3,), (0,))
def varargs_call_nested_def(n):
    def total(*vals, scale=1):
        s = 0
        for v in vals:
            s += v
        return s * scale

    return total(n, n + 1, scale=2) + total() + total(*(n, n))


@case((2.0,))
def nested_def_defaults(x):
    def f(a, b=10.0, *, c=100.0):
        return a + b + c

    return f(x), f(x, 1.0), f(x, c=0.0), f(b=0.0, a=x)


# ----------------------------------------------------------------------------------
# functions: nested def, lambda, closures, higher order
# ----------------------------------------------------------------------------------


@case((3.0,), (-0.5,))
def nested_def(x):
    def sq(y):
        return y * y

    return sq(x) + sq(x + 1)


@case((2.0, 3.0), (1.0, -1.0))
def closure_reads_enclosing(x, k):
    def scale(y):
        return y * k

    return scale(x) + scale(2 * x)


@case((1.5,))
def closure_two_levels(x):
    a = 2.0

    def outer(y):
        b = 3.0

        def inner(z):
            return a * z + b * y + x

        return inner(y + 1)

    return outer(x)


@case((2.0,), (0.0,))
def lambda_local(x):
    sq = lambda y: y * y
    return sq(x) + (lambda z: z + 1)(x)


@case((2.0,))
def lambdas_one_line(x):
    f, g = lambda a: a + 1, lambda a: a * 3
    return f(g(x)), g(f(x)), (lambda a: a - 1)(x) + (lambda b: b * b)(x)


@case((1.0,), (4.0,))
def module_lambdas(x):
    return h_dbl(h_inc(x)), h_sq(h_neg(x)), h_half(x)


register("inline_lambda_call", lambda x: h_affine(x, 7.0), (2.0,), (-3.0,))
register("inline_lambda_kw", lambda x, y: h_affine(x, b=y) + h_three(x, y, 1), (2, 3))
register("lambda_default_arg", lambda x, k=2: x ** k, (3,), (3, 3), (2.0, 0.5))
register("lambdas_on_one_line_a", lambda u: u + 1, (1,)); register("lambdas_on_one_line_b", lambda u: u * 5, (2,))  # noqa: E702, E501


@case((3.0,))
def function_as_argument(x):
    return h_apply_twice(h_double, x) + h_apply_twice(lambda v: v + 1, x)


@case((2.0,), (-1.0,))
def function_returned(x):
    add3 = h_make_adder(3)
    return add3(x) + h_make_adder(x)(1.0)


@case((2.0,))
def compose_functions(x):
    f = h_compose(h_double, h_inc)
    g = h_compose(lambda v: v * v, f)
    return f(x), g(x)


@case((1.0,), (2.5,))
def functions_in_containers(x):
    fs = [h_double, h_inc, lambda v: v ** 2]
    table = {"a": h_neg, "b": h_half}
    return [f(x) for f in fs], sum(f(x) for f in fs), table["a"](x) + table["b"](x)


@case(([1.0, 2.0, 3.0],), ([],))
def higher_order_fold(xs):
    return h_fold(lambda a, b: a + b * b, 0.0, xs), h_map(h_inc, xs)


@case((3,))
def closures_in_loop(n):
    total = 0
    for i in range(n):
        f = lambda v, i=i: v * i
        total = total + f(10)
    return total


@case((2.0,))
def returns_closure(x):
    def make(k):
        return lambda y: y * k + x

    return make(2.0)(x), make(x)(1.0)


@case((4.0,))
def function_result_of_program(x):
    k = x * 2

    def scaled(v):
        return v * k

    return scaled


@case((2.0,))
def calls_global_function(x):
    return h_affine(h_double(x), 2.0, 1.0)


@case((1.0,))
def closure_over_global_helper(x):
    def run(v):
        return h_double(v) + h_affine(v, b=5.0)

    return run(x)


# ----------------------------------------------------------------------------------
# functions: recursion
# ----------------------------------------------------------------------------------


@case((0,), (1,), (10,))
def factorial(n):
    if n <= 1:
        return 1
    return n * factorial(n - 1)


@case((0,), (1,), (12,))
def fib(n):
    if n < 2:
        return n
    return fib(n - 1) + fib(n - 2)


@case((2.0, 0), (1.5, 7), (3.0, 10))
def power_by_squaring(x, n):
    if n == 0:
        return 1.0
    half = power_by_squaring(x, n // 2)
    if n % 2 == 0:
        return half * half
    return half * half * x


@case((0,), (5,), (8,))
def mutual_recursion_globals(n):
    return h_is_even(n), h_is_odd(n)


@case((6,), (7,))
def mutual_recursion_nested(n):
    def ev(k):
        if k == 0:
            return True
        return od(k - 1)

    def od(k):
        if k == 0:
            return False
        return ev(k - 1)

    return ev(n)


@case((5,), (0,))
def recursion_nested_def(n):
    def go(k, acc):
        if k == 0:
            return acc
        return go(k - 1, acc + k)

    return go(n, 0)


@case(([3.0, 1.0, 2.0],), ([],))
def recursion_on_list(xs):
    if len(xs) == 0:
        return 0.0
    return xs[0] * xs[0] + recursion_on_list(xs[1:])


@case((np.array([1.0, 2.0, 3.0, 4.0]),))
def recursion_on_array(x):
    if x.shape[0] == 1:
        return x[0]
    mid = x.shape[0] // 2
    return recursion_on_array(x[:mid]) + recursion_on_array(x[mid:]) * 2.0


@case((8, 12), (17, 5), (0, 3))
def gcd_recursive(a, b):
    if b == 0:
        return a
    return gcd_recursive(b, a % b)


@case((1000,))
def deep_recursion(n):
    if n == 0:
        return 0
    return 1 + deep_recursion(n - 1)


@case((5,), (0,))
def recursion_keyword_call(n, acc=0):
    if n == 0:
        return acc
    return recursion_keyword_call(n - 1, acc=acc + n)


@case((4,))
def nested_recursion_with_closure(n):
    base = 10

    def down(k):
        if k <= 0:
            return base
        return k + down(k - 1)

    return down(n)


@case((3,))
def sibling_closures(n):
    def double(v):
        return v * 2

    def quad(v):
        return double(double(v))

    return quad(n), [quad(i) for i in range(n)]


@case((2.0, 3.0))
def curried_lambdas(a, b):
    add = lambda x: lambda y: x + y
    mul = lambda x: (lambda y: x * y)
    return add(a)(b), mul(a)(b), (lambda f, v: f(f(v)))(add(1.0), a)


@case((3,))
def lambda_with_comprehension(n):
    squares = lambda k: [i * i for i in range(k) if i % 2 == 0]
    pick = lambda xs, default=0: xs[-1] if xs else default
    return squares(n), pick(squares(n)), pick([]), pick([], default=-1)


@case((6,), (7,))
def mutual_recursion_keyword(n):
    def ev(k, depth=0):
        if k == 0:
            return True, depth
        return od(k - 1, depth + 1)

    def od(k, depth=0):
        if k == 0:
            return False, depth
        return ev(k - 1, depth=depth + 1)

    return ev(n)


@case((1.0,))
def function_passed_with_defaults(x):
    return h_apply_twice(h_affine, x), h_map(h_affine, [x, 2 * x]), \
        h_fold(h_three, 0, [1, 2])


@case((2.0,))
def function_value_with_varargs(x):
    fs = [h_sum_all, h_three]
    return fs[0](x, x, 1.0), fs[1](x, 1, 2), h_fold(lambda acc, f: acc + f(1, 2, 3), 0, fs)


@case((3,))
def closure_returned_from_loop(n):
    fs = []
    for i in range(n):
        fs = fs + [h_make_adder(i)]
    return [f(10) for f in fs]


@case((2,))
def recursive_closure_factory(n):
    def power_fn(k):
        if k == 0:
            return lambda x: 1.0
        inner = power_fn(k - 1)
        return lambda x: x * inner(x)

    return power_fn(n)(3.0), power_fn(n + 2)(2.0)


@case((1.0, 2.0))
def kwonly_in_closure(a, b):
    def f(x, *, w=1.0, c=0.0):
        return x * w + c + b

    g = f
    return f(a, c=1.0), f(a, w=3.0, c=2.0), g(a)


# ----------------------------------------------------------------------------------
# statements: return anywhere, if/elif/else
# ----------------------------------------------------------------------------------


@case((-2.0,), (0.0,), (0.5,), (3.0,))
def if_elif_else(x):
    if x < 0:
        y = -x
    elif x == 0:
        y = 100.0
    elif x < 1:
        y = x * 10
    else:
        y = x ** 2
    return y


@case((-1,), (0,), (1,))
def return_in_branches(x):
    if x < 0:
        return "neg"
    elif x == 0:
        return "zero"
    return "pos"


@case(([1.0, 5.0, 3.0], 2.0), ([0.0, 1.0], 4.0))
def return_inside_for(xs, thr):
    for i, x in enumerate(xs):
        if x > thr:
            return i
    return -1


@case((10,), (0,))
def return_inside_while(n):
    i = 0
    while True:
        if i * i > n:
            return i
        i += 1


@case((3, 4), (0, 5), (2, 1))
def return_in_nested_loops(n, m):
    for i in range(n):
        for j in range(m):
            if i * j == 2:
                return i, j
    return None


@case((5.0,), (-5.0,))
def if_without_else(x):
    y = x
    if x < 0:
        y = -x
    return y


@case((1.0, 2.0), (3.0, 1.0), (2.0, 2.0))
def nested_ifs(a, b):
    if a < b:
        if a > 0:
            r = "a small positive"
        else:
            r = "a small"
    else:
        if a == b:
            r = "equal"
        else:
            r = "b small"
    return r


@case((3.0,))
def return_none_implicitly(x):
    y = x + 1  # noqa: F841


@case((3.0,), (-3.0,))
def bare_return(x):
    if x > 0:
        return
    return x


@case((2,), (7,))
def variable_defined_in_both_branches(n):
    if n % 2 == 0:
        kind = "even"
        half = n // 2
    else:
        kind = "odd"
        half = (n - 1) // 2
    return kind, half


# ----------------------------------------------------------------------------------
# statements: while and for loops, break, continue, else clauses
# ----------------------------------------------------------------------------------


@case((10,), (0,))
def while_loop_sum(n):
    i, s = 0, 0
    while i < n:
        s += i * i
        i += 1
    return s


@case((27,), (1,))
def collatz_steps(n):
    steps = 0
    while n != 1:
        if n % 2 == 0:
            n = n // 2
        else:
            n = 3 * n + 1
        steps += 1
    return steps


@case((0, 10, 3), (10, 0, -2), (5, 5, 1))
def for_range_variants(a, b, step):
    out = []
    for i in range(a, b, step):
        out = out + [i]
    acc = 0
    for j in range(b):
        acc += j
    return out, acc


@case(((1, 2, 3),), ((),))
def for_over_tuple(t):
    s = 0
    for v in t:
        s = s * 10 + v
    return s


@case(([0.5, 1.5, 2.5],))
def for_over_list(xs):
    p = 1.0
    for x in xs:
        p *= x
    return p


@case((M23,), (M44,))
def for_over_array_rows(m):
    total = np.zeros(m.shape[1])
    for row in m:
        total = total + row * row
    return total


@case((V3,))
def for_over_1d_array(v):
    s = 0.0
    for x in v:
        s += x
    return s


@case(([1, 2, 3], [10.0, 20.0, 30.0, 40.0]))
def for_zip(a, b):
    s = 0.0
    for x, y in zip(a, b):
        s += x * y
    return s


@case(([1.0, 2.0], [3.0, 4.0], [5.0, 6.0]))
def for_zip_three(a, b, c):
    out = []
    for x, y, z in zip(a, b, c):
        out = out + [x + y * z]
    return out


@case((["a", "b", "c"],))
def for_enumerate(xs):
    out = []
    for i, x in enumerate(xs):
        out = out + [(i, x)]
    for i, x in enumerate(xs, 10):
        out = out + [(i, x)]
    return out


@case(([4, 5, 6],))
def for_reversed(xs):
    out = ()
    for x in reversed(xs):
        out = out + (x,)
    for i in reversed(range(3)):
        out = out + (i * 100,)
    return out


@case(([1.0, 2.0, 3.0], [4.0, 5.0, 6.0]))
def for_enumerate_zip(a, b):
    s = 0.0
    for i, (x, y) in enumerate(zip(a, b)):
        s += i * x - y
    return s


@case(([3, 1, 4, 1, 5],))
def for_reversed_enumerate(xs):
    out = []
    for i, x in reversed(list(enumerate(xs))):
        out = out + [i * x]
    return out


@case(([1, -2, 3, -4, 5],))
def for_continue(xs):
    s = 0
    for x in xs:
        if x < 0:
            continue
        s += x
    return s


@case(([1, 2, 30, 4],), ([1, 2],))
def for_break(xs):
    s = 0
    for x in xs:
        if x > 10:
            break
        s += x
    return s


@case((20,), (3,))
def while_break_continue(n):
    i, s = 0, 0
    while i < n:
        i += 1
        if i % 3 == 0:
            continue
        if i > 10:
            break
        s += i
    return i, s


@case(([1, 3, 5],), ([1, 4, 5],))
def for_else_clause(xs):
    for x in xs:
        if x % 2 == 0:
            found = x
            break
    else:
        found = None
    return found


@case((5,), (50,))
def while_else_clause(n):
    i = 0
    while i < 10:
        if i == n:
            result = "hit"
            break
        i += 1
    else:
        result = "exhausted"
    return result, i


@case((3,))
def for_else_without_break(n):
    s = 0
    for i in range(n):
        s += i
    else:
        s += 100
    return s


@case((4,), (0,))
def nested_loops_break_inner(n):
    pairs = 0
    for i in range(n):
        for j in range(n):
            if j > i:
                break
            pairs += 1
    return pairs


@case((5,))
def loop_pass_statement(n):
    s = 0
    for i in range(n):
        if i % 2:
            pass
        else:
            s += i
    while False:
        pass
    return s


@case((3,), (0,))
def loop_variable_after_loop(n):
    i = -1
    for i in range(n):  # noqa: B007 - the loop variable's value after the loop is tested
        pass
    return i


@case(([[1, 2], [3], []],))
def nested_for_over_lists(xss):
    s = 0
    for xs in xss:
        for x in xs:
            s += x
    return s


@case(({"a": 1.0, "b": 2.0},))
def for_over_dict_items(d):
    s = 0.0
    keys = []
    for k, v in d.items():
        s += v
        keys = keys + [k]
    for k in d:
        keys = keys + [k]
    return s, keys


@case((10, 3.0),)
def loop_accumulating_array(n, x):
    v = np.zeros(3)
    for i in range(n):
        v = v + np.array([i, i * x, 1.0])
    return v


@case((5,))
def return_from_while_else(n):
    i = 0
    while i < n:
        i += 1
    else:
        return i * 2
    return -1


@case(("abc",))
def for_over_string(s):
    out = ""
    for ch in s:
        out = ch + out
    return out


@case(([(1, "a"), (2, "b")],))
def for_tuple_target_over_pairs(pairs):
    total = 0
    names = ""
    for n, name in pairs:
        total += n
        names = names + name
    return total, names


@case(([1, 2, 3, 4],), ([],))
def while_truthiness_of_list(xs):
    acc = 0
    while xs:
        acc = acc * 2 + xs[0]
        xs = xs[1:]
    return acc


@case((V4,), (-V4,))
def if_on_array_reduction(x):
    if x.sum() > 0 and np.all(x > -1.0):
        return x.max()
    elif np.any(x < -1.0):
        return x.min()
    return 0.0


@case(([5, 3, 8],), ([1, 1],))
def return_in_for_else(xs):
    for x in xs:
        if x > 6:
            break
    else:
        return "no big element"
    return x


@case((10,), (3,))
def while_true_break_and_return(n):
    i = 0
    while True:
        i += 1
        if i == 5:
            break
        if i >= n:
            return "returned", i
    return "broke", i


@case((6,), (2,))
def while_continue_with_else(n):
    i, odd = 0, 0
    while i < n:
        i += 1
        if i % 2 == 0:
            continue
        odd += i
    else:
        odd = -odd
    return odd


@case((3,))
def nested_loops_with_continue_and_break(n):
    out = []
    for i in range(n):
        j = 0
        while True:
            j += 1
            if j % 2 == 0:
                continue
            if j > 2 * i:
                break
            out = out + [(i, j)]
    return out


@case((4,))
def walrus_expression(n):
    total = 0
    if (half := n // 2) > 1:
        total = half * 10
    pair = [(z := n * 3), z + 1]
    return total, half, pair, z


@case((2.0,), (-2.0,))
def conditional_expression_laziness(x):
    def noisy(tag, v):
        print(tag)
        return v

    return noisy("pos", x) if x > 0 else noisy("neg", -x)


@case((3.0,))
def assert_in_nested_function(x):
    def check(v):
        assert v < 10, "too large"
        return v

    return check(x) + check(x * 3)


@case((1, 2))
def chained_assignment_and_unpack(a, b):
    x = y = (a, b)
    (p, q), r = x, y[0]
    return p, q, r, x is y


@case((5,), (0,))
def loop_defines_variable_used_after(n):
    last = None
    for i in range(n):
        last = i * i
    total = 0
    k = 0
    while k < n:
        total += k
        k += 1
    return last, total, k


@case((3,))
def nested_loop_return_from_inner_while(n):
    for i in range(n):
        j = 0
        while j < n:
            if i + j == 3:
                return i, j
            j += 1
    return -1, -1


# ----------------------------------------------------------------------------------
# statements: assert, unpacking, augmented assignment, docstrings
# ----------------------------------------------------------------------------------


@case((1.0,), (-1.0,))
def assert_statement(x):
    assert x > 0
    return x * 2


@case((2,), (3,))
def assert_with_message(n):
    assert n % 2 == 0, "n must be even"
    return n // 2


@case(([1, 2, 3],), ([],))
def assert_inside_loop(xs):
    total = 0
    for x in xs:
        assert x < 3, x
        total += x
    return total


@case(((1, (2, 3)),))
def nested_tuple_unpacking(t):
    a, (b, c) = t
    (d, e), f = (c, b), a
    [g, h] = [a, c]
    return a + b * c, d - e + f, g * h


@case((1, 2))
def swap_unpacking(a, b):
    a, b = b, a
    x = y = a + b
    return a, b, x, y


@case(([1, 2],), (np.array([[1.0, 2.0], [3.0, 4.0]]),))
def unpack_lists_and_arrays(t):
    a, b = t
    [c, d] = t
    return a + b, c * d


@case((7, 3), (-7, 3), (7.5, 2.0))
def augmented_assignment(a, b):
    x = a
    x += b
    x -= 1
    x *= 2
    y = x
    y /= 4
    z = a
    z //= b
    w = a
    w %= b
    p = b
    p **= 2
    return x, y, z, w, p


@case((M33,))
def augmented_assignment_arrays(m):
    x = m * 1.0  # a new array: CPython's `+=` below would otherwise also change `m`
    x += 1.0
    x *= 2.0
    x @= m
    x -= np.eye(3)
    return x, m


@case((2.0,))
def docstrings(x):
    """A docstring at the top of the function."""

    def inner(y):
        """Nested docstring."""
        return y + 1

    "a bare string expression"
    return inner(x)


@case((3,))
def augmented_on_tuples_lists(n):
    t = ()
    lst = []
    for i in range(n):
        t += (i,)
        lst += [i * 2]
    return t, lst


# ----------------------------------------------------------------------------------
# expressions: arithmetic, unary, comparisons, boolean operators
# ----------------------------------------------------------------------------------


@case((7, 2), (-7, 2), (7, -2), (-7, -3))
def int_arithmetic(a, b):
    return a + b, a - b, a * b, a / b, a // b, a % b, a ** 2, b ** 3


@case((7.5, 2.0), (-7.5, 2.5), (0.1, -0.3))
def float_arithmetic(a, b):
    return a + b, a - b, a * b, a / b, a // b, a % b, abs(a) ** b, a ** 2


@case((2, -1), (2, 0), (-3, 3))
def int_power(a, b):
    return a ** b, (-a) ** 2, 2 ** 10


@case((M23, M33), (M33, M33))
def matmul_operator(a, b):
    return a @ b, (a @ b) @ b.T


@case((V3,))
def array_operators(x):
    return x + 1, 2 - x, x * x, x / 2.0, x // 0.5, x % 0.75, x ** 2, -x, +x, abs(x)


@case((3, 4.5), (0, -1.0))
def unary_operators(a, b):
    return -a, +a, not a, -b, +b, not b, not not b


@case((1, 2), (2, 2), (3, 2))
def comparisons(a, b):
    return a < b, a <= b, a > b, a >= b, a == b, a != b


@case((1, 2, 3), (1, 3, 2), (2, 2, 2))
def chained_comparisons(a, b, c):
    return a < b < c, a <= b <= c, a < b > c, a == b == c, 0 < a < b <= c < 10


@case((0.0,), (4.0,))
def short_circuit_and(x):
    return x != 0 and 1 / x > 0.1


@case((0.0,), (4.0,))
def short_circuit_or(x):
    return x == 0 or 1 / x > 0.1


@case((0, [], ""), (3, [1], "s"))
def and_or_value_semantics(x, xs, s):
    return x or xs, x and xs, xs or s, s and x, 0 or [], None or 3, x and s or xs


@case((1, 2, 3), (0, 2, 3), (1, 0, 3), (0, 0, 0))
def and_or_chains(a, b, c):
    return a and b and c, a or b or c, a and b or c, a or b and c, not a or b


@case((2.0,), (-2.0,), (0.0,))
def conditional_expressions(x):
    sign = 1 if x > 0 else (-1 if x < 0 else 0)
    return sign, x if x > 1 else -x, "big" if abs(x) > 1 else "small"


@case((5, 3), (3, 5))
def is_and_in_operators(a, b):
    xs = [1, 3, 5]
    d = {3: "three"}
    return a in xs, b not in xs, a in d, b in d, None is None, a is not None


@case((np.array([1.0, -2.0, 3.0]),))
def array_comparisons(x):
    return x > 0, x == 3.0, (x > 0) & (x < 2), (x < 0) | (x > 2), ~(x > 0)


@case((12, 5))
def bitwise_int_ops(a, b):
    return a & b, a | b, a ^ b, a << 2, a >> 1, ~a


# ----------------------------------------------------------------------------------
# expressions: literals, comprehensions
# ----------------------------------------------------------------------------------


@case((1.0, 2))
def container_literals(x, n):
    t = (x, n, (x, n))
    lst = [x, [n, x], []]
    d = {"x": x, "n": n, "t": t}
    di = {0: "zero", 1: x, n: "n"}
    return t, lst, d, di, d["t"][2], di[n], (), (x,), [], {}


@case((4,), (0,))
def list_comprehensions(n):
    squares = [i * i for i in range(n)]
    evens = [i for i in range(n) if i % 2 == 0]
    pairs = [(i, j) for i in range(n) for j in range(i)]
    filtered = [i + j for i in range(n) if i > 0 for j in range(3) if j != i]
    return squares, evens, pairs, filtered


@case(([1.0, 2.0, 3.0], 2.0))
def comprehension_with_closure(xs, k):
    scaled = [x * k for x in xs]
    nested = [[x * y for y in xs] for x in xs]
    return scaled, nested, sum([x for x in xs if x > k])


@case(([3, 1, 2],))
def dict_comprehension(xs):
    return {x: x * x for x in xs}, {i: v for i, v in enumerate(xs) if v > 1}


@case(([(1, 2), (3, 4)],))
def comprehension_unpacking(pairs):
    return [a * b for a, b in pairs], [a + i for i, (a, _) in enumerate(pairs)]


@case((3,))
def generator_in_builtins(n):
    return sum(i * i for i in range(n)), max(i % 2 for i in range(n)), \
        min(-i for i in range(1, n + 1))


@case((V3,))
def comprehension_over_array(v):
    return [float(x * 2) for x in v], np.array([x ** 2 for x in v])


@case(("abc", 2))
def string_values(s, n):
    return s + "!", s * n, len(s), s[0], s[-1:], s == "abc", f"{s}-{n}"


# ----------------------------------------------------------------------------------
# expressions: subscripts and slices
# ----------------------------------------------------------------------------------


@case(([10, 20, 30, 40, 50],), ((1, 2, 3, 4, 5),))
def subscripts_sequences(xs):
    return xs[0], xs[-1], xs[1:3], xs[::2], xs[::-1], xs[-2:], xs[:-1:2], xs[5:]


@case((A234,))
def subscripts_arrays_basic(a):
    return a[0], a[1, 2], a[1, 2, 3], a[-1, :, 1], a[:, 1:3, ::2], a[0][1][2]


@case((M23,), (A234,))
def subscripts_newaxis_ellipsis(a):
    return a[None], a[..., 0], a[:, None], a[np.newaxis, ..., np.newaxis], a[..., None, -1]


@case((np.array([3.0, -1.0, 2.0, -4.0]),))
def subscripts_fancy(x):
    idx = np.array([0, 2])
    return x[x > 0], x[idx], x[[3, 1]], x[np.argmax(x)]


@case((M33, 1), (M33, 2))
def subscripts_dynamic(m, k):
    return m[k], m[:k], m[k:, :k], m[:, k], m[k - 1, k]


@case(({"a": 1, "b": (2, 3)}, "b"))
def subscripts_dicts(d, key):
    return d["a"], d[key], d[key][1]


@case(({"a": 1}, "z"), ([1, 2], 5))
def subscript_errors(d, key):
    return d[key]


# ----------------------------------------------------------------------------------
# expressions: attributes on values and modules
# ----------------------------------------------------------------------------------


@case((M23,), (A234,))
def array_attributes(x):
    return x.T, x.shape, x.ndim, x.size, x.dtype, x.shape[0], len(x.shape)


@case((M23,))
def array_methods_reductions(x):
    return x.sum(), x.sum(axis=0), x.mean(axis=1), x.max(axis=0), x.min(), \
        x.prod(axis=1), x.std(), x.var(axis=0), x.argmax(), x.argmin(axis=1), x.cumsum()


@case((M23,))
def array_methods_shapes(x):
    return x.reshape(3, 2), x.reshape((6,)), x.reshape(-1), x.transpose(), \
        x.ravel(), x.flatten(), x.copy(), x.swapaxes(0, 1), x.reshape(1, 6).squeeze()


@case((M23,))
def array_methods_misc(x):
    return x.astype(np.int64), x.astype(float), x.clip(-1.0, 1.0), x.dot(x.T), \
        x.sum(keepdims=True), x[0, 0].item(), x.round(1), x.any(), x.all()


@case((2.0,))
def module_attributes(x):
    return np.tanh(x), math.exp(x), np.linalg.norm(np.array([x, 1.0])), math.pi * x, \
        np.pi, math.e, math.inf > x, np.float64(x)


@case((Point(1.0, 2.0),), (Point(-3.0, 0.5),))
def dataclass_fields(p):
    return p.x * p.y, p.x + 1


@case((Pair(1.0, 2.0),))
def namedtuple_fields(p):
    a, b = p
    return p.a - p.b, p[0], a + b, len(p)


@case((Layer(M23, V3),), (Layer(M23, V3, 2.0),))
def dataclass_array_fields(layer):
    return np.tanh(layer.w @ layer.b) * layer.scale


@case(({"a": 1, "b": 2}, "a"), ({1: "x"}, 2))
def dict_methods(d, key):
    return d.get(key), d.get(key, 0), key in d, len(d), sorted(d.keys()), \
        [v for v in d.values()], list(d.items())


@case((3,))
def nested_comprehensions(n):
    grid = [[i * n + j for j in range(n)] for i in range(n)]
    flat = [v for row in grid for v in row if v % 2 == 1]
    diag = [grid[i][i] for i in range(n)]
    return grid, flat, diag, {i: [j for j in range(i)] for i in range(n)}


@case(([3, 0, 2],))
def comprehension_over_zip_enumerate(xs):
    return [i * x for i, x in enumerate(xs)], [a - b for a, b in zip(xs, reversed(xs))], \
        [(i, x) for i, x in enumerate(xs) if x]


@case((2.0, 0.0), (0.0, 3.0))
def and_or_with_side_effects(a, b):
    def p(tag, v):
        print(tag, v)
        return v

    r1 = p("a1", a) and p("b1", b)
    r2 = p("a2", a) or p("b2", b)
    r3 = not (p("a3", a) and p("b3", b)) or p("c3", a + b)
    return r1, r2, r3


@case((M23,))
def tuple_index_with_slices(x):
    i = (0, 1)
    return x[i], x[(0, 2)], x[..., ::-1], x[1:, np.newaxis, :2], x[(1, -1)]


@case((A234, 1))
def negative_and_dynamic_slices(a, k):
    return a[-k:], a[:, -2:-k], a[..., k::2], a[k, ::-1, -1]


@case((7, 2.0))
def mixed_int_float_arithmetic(n, x):
    return n / 2, n // 2, n * x, n ** 0.5, -n % 3, divmod(n, 3), (n + x) // 2, 2 ** -1


@case((2.0,))
def operator_precedence(x):
    return -x ** 2, (-x) ** 2, 2 ** -x, x * 3 + 1 / x - x // 0.3, not x > 1 or x < 0, \
        x - (1 - x), x / (2 * x), 2 ** 3 ** 0.5, (x > 1) + 1


@case((V3, M33))
def matmul_and_power_chain(v, m):
    return v @ m @ v, m @ m @ m, (m ** 2) @ v, v @ (m * 2.0)


@case((Point(1.0, 2.0), Pair(3.0, 4.0)))
def attribute_chains(p, q):
    pts = (p, Point(q.a, q.b))
    return pts[1].x + pts[0].y, Pair(p.x, q.b).b, [pt.x for pt in pts]


@case((np.array([[1.0, 2.0], [3.0, 4.0]]),))
def array_attribute_expressions(x):
    return x.T.T, x.T @ x, x.shape[::-1], x.sum(axis=0).shape, x.real, x.mean(axis=-1).ndim


@case((1.5,))
def numpy_scalar_results(x):
    a = np.float64(x)
    return a * 2, np.sqrt(a), np.exp(np.float64(0.5)), np.array(x).sum(), np.int64(3) * 2, \
        np.float64(2) ** 2


# ----------------------------------------------------------------------------------
# values: types of arguments and results
# ----------------------------------------------------------------------------------


@case((1, 2.0, True, None))
def scalar_types(i, f, b, n):
    return i, f, b, n, i + f, b + i, isinstance(b, int), n is None


@case((np.float64(1.5), np.int64(3), np.float32(2.0)))
def numpy_scalars(a, b, c):
    return a * b, a + 1, b // 2, b * 1.5, c * 2, np.float64(b) / 2, np.sqrt(a)


@case((1.0, 2.0))
def dataclass_constructed(x, y):
    p = Point(x, y)
    q = Point(y=x * 2, x=y)
    return p, q, Point(p.x + q.x, p.y + q.y)


@case((Point(1.0, 2.0), 3.0))
def dataclass_through_function(p, s):
    def scaled(q, k):
        return Point(q.x * k, q.y * k)

    return scaled(scaled(p, s), 0.5)


@case((1.0, 2.0))
def namedtuple_constructed(a, b):
    p = Pair(a, b)
    q = Pair(b=a, a=b)
    return p, q, Pair(p.a * q.a, p[1] + q[1])


@case((np.array([0.0, 1.0]), np.array([1.0, 0.5])))
def namedtuple_default_field(pos, vel):
    s = State(pos, vel)
    for _ in range(3):
        s = State(s.pos + 0.1 * s.vel, s.vel * 0.9, s.steps + 1)
    return s


@case((Layer(M33, V3),))
def dataclass_default_field(layer):
    return Layer(layer.w * 2, layer.b), Layer(layer.w, layer.b, scale=0.5).scale


@case(({"w": 2.0, "b": 1.0}, 3.0), ({1: 0.5, 2: 4.0}, 1.0))
def dict_parameters(d, x):
    total = 0.0
    for k in d:
        total += d[k] * x
    return total, len(d), list(d.keys()), list(d.values())


@case((2.0,))
def dict_results(x):
    return {"value": x, "square": x * x, "nested": {"a": [x, x + 1]}}, {1: x, 2: -x}


@case(([1.0, 2.0], (3.0, 4.0)))
def list_and_tuple_results(xs, t):
    return xs + [5.0], t + (6.0,), [t, xs], (xs,), list(t), tuple(xs)


@case((None,), (2.0,))
def none_handling(x):
    if x is None:
        return 0.0
    return x * 2


@case((True,), (False,))
def bool_values(b):
    return b, not b, int(b), b + b, b and 1.0, float(b)


# ----------------------------------------------------------------------------------
# builtins
# ----------------------------------------------------------------------------------


@case(([3, 1, 2],), ((5.5, -1.0),))
def builtin_len_min_max_sum(xs):
    return len(xs), min(xs), max(xs), sum(xs), sum(xs, 10), min(xs[0], 0), max(2, xs[-1], 1)


@case((-2.5,), (3,), (-7,))
def builtin_abs_float_int_bool(x):
    return abs(x), float(x), int(x), bool(x), bool(0.0), bool([]), bool([0]), int(-2.9)


@case((1,), (1.5,), (True,), ("s",), ([1],), (V3,), ((1, 2),))
def builtin_isinstance(x):
    return isinstance(x, int), isinstance(x, float), isinstance(x, (int, float)), \
        isinstance(x, bool), isinstance(x, np.ndarray), isinstance(x, (list, tuple)), \
        isinstance(x, str)


@case((5,))
def builtin_range_values(n):
    return list(range(n)), tuple(range(2, n)), list(range(n, 0, -2)), len(range(0, n, 2)), \
        range(n)[2], sum(range(n))


@case(([1, 2, 3], ["a", "b"]))
def builtin_zip_enumerate_reversed(a, b):
    return list(zip(a, b)), list(enumerate(b)), list(reversed(a)), \
        list(enumerate(a, start=1)), tuple(zip(a, a, a))


@case((2.0, "x"))
def builtin_print(x, label):
    print("start")
    print(label, x, x * 2)
    print(x, label, sep="|", end=";\n")
    for i in range(3):
        print(i, end=" ")
    print()
    return x


@case((3,), (-1,))
def print_in_branches_and_loops(n):
    if n > 0:
        print("positive", n)
    else:
        print("non-positive")
    i = 0
    while i < n:
        print("iter", i)
        i += 1
    return i


@case((2.0,))
def print_in_nested_function(x):
    def show(v):
        print("v =", v)
        return v * 2

    y = show(x)
    print("y =", y)
    return show(y)


@case((2,), (0,))
def print_order_with_short_circuit(n):
    def noisy(v):
        print("noisy", v)
        return v

    r = n and noisy(n) or noisy(-1)
    print("r", r)
    return [noisy(i) for i in range(n)]


@case((V3,))
def print_arrays(v):
    print(v, v.sum(), np.round(v, 1))
    return v


@case(([4, 2, 8],))
def builtin_sorted_any_all(xs):
    return sorted(xs), any(x > 5 for x in xs), all(x > 1 for x in xs), divmod(17, 5), \
        round(2.675, 2), callable(xs)


# ----------------------------------------------------------------------------------
# exceptions raised at run time (CPython and tapeless must raise the same type)
# ----------------------------------------------------------------------------------


@case((2.0,), (0.0,))
def zero_division_float(x):
    return 1.0 / x


@case((4, 2), (4, 0))
def zero_division_int(a, b):
    return a // b + a % b


@case((1,), (-1,))
def raise_statement(x):
    if x < 0:
        raise ValueError("negative")
    return x


@case(([1, 2],), ([],))
def index_error(xs):
    return xs[0] + xs[-1]


@case((3,), (15,))
def raise_inside_loop(n):
    total = 0
    for i in range(n):
        total += i
        if total > 20:
            raise RuntimeError("too big")
    return total


@case((5,), (0,))
def math_domain_error(x):
    return math.log(x)


# ----------------------------------------------------------------------------------
# NumPy: elementwise functions
# ----------------------------------------------------------------------------------


@case((V3,), (0.7,))
def np_exp_log_family(x):
    ax = np.abs(x) + 0.1
    return np.exp(x), np.log(ax), np.log1p(ax), np.expm1(x), np.sqrt(ax), np.square(x)


@case((V3,), (0.3,))
def np_trig(x):
    return np.sin(x), np.cos(x), np.tan(x), np.arctan(x), np.arctan2(x, 1.5)


@case((V3,), (-0.2,))
def np_hyperbolic(x):
    return np.tanh(x), np.sinh(x), np.cosh(x)


@case((U01,), (0.5,))
def np_inverse_trig(u):
    return np.arcsin(u), np.arccos(u), np.arcsin(-u)


@case((V3,), (-2.0,))
def np_abs_sign(x):
    return np.abs(x), np.sign(x), np.sign(-x), np.abs(x) * np.sign(x)


@case((V3, 2.0), (np.array([1.0, 2.0, 0.5]), V3))
def np_power_maximum_minimum(x, y):
    return np.power(np.abs(x), y), np.maximum(x, y), np.minimum(x, y), np.maximum(x, 0.0)


@case((V3,), (M23,))
def np_where_clip(x):
    return np.where(x > 0, x, 0.1 * x), np.clip(x, -1.0, 1.0), np.where(x < 1, 1.0, x)


@case((V3, V4[:3]), (1.0, 2.0))
def np_logaddexp(a, b):
    return np.logaddexp(a, b), np.logaddexp(a, -np.inf)


@case((V3,))
def np_more_elementwise(x):
    return np.floor(x), np.ceil(x), np.exp2(x), np.log2(np.abs(x)), np.log10(np.abs(x)), \
        np.reciprocal(x), np.negative(x), np.hypot(x, 2.0), np.isnan(x), np.isfinite(x)


@case((V3,))
def np_ufunc_binary_names(x):
    return np.add(x, 1.0), np.subtract(x, 1.0), np.multiply(x, 2.0), np.divide(x, 4.0), \
        np.greater(x, 0.0), np.less_equal(x, 0.5), np.equal(x, 2.0), np.logical_and(x > 0, x < 1)


# ----------------------------------------------------------------------------------
# NumPy: linear algebra products
# ----------------------------------------------------------------------------------


@case((M23, V3), (M33, V3))
def np_dot_matmul(m, v):
    return np.dot(m, v), np.matmul(m, v), np.dot(v, v), m @ v, np.matmul(m, m.T)


@case((V3, V4))
def np_outer_inner(a, b):
    return np.outer(a, b), np.inner(a, a), np.inner(b, b), np.outer(b, a).shape


@case((M23, M33, V3))
def np_einsum(a, b, v):
    return np.einsum("ij,jk->ik", a, b), np.einsum("ij->j", a), np.einsum("i,i->", v, v), \
        np.einsum("ii", b), np.einsum("ij,j->i", b, v), np.einsum("bij->bji", A234)


@case((A234, M44))
def np_tensordot(a, b):
    return np.tensordot(a, b, axes=1), np.tensordot(a, a, axes=([1, 2], [1, 2])), \
        np.tensordot(b, b), np.tensordot(a[0], b, axes=([1], [0]))


# ----------------------------------------------------------------------------------
# NumPy: reductions
# ----------------------------------------------------------------------------------


@case((M23,), (A234,))
def np_sum_mean_prod(x):
    return np.sum(x), np.sum(x, axis=0), np.sum(x, axis=-1, keepdims=True), np.mean(x), \
        np.mean(x, axis=1), np.prod(x, axis=0), np.prod(x)


@case((M23,), (A234,))
def np_max_min(x):
    return np.max(x), np.min(x), np.max(x, axis=0), np.min(x, axis=1, keepdims=True), \
        np.amax(x, axis=-1)


@case((M23,), (A234,))
def np_var_std(x):
    return np.var(x), np.std(x), np.var(x, axis=0), np.std(x, axis=1, keepdims=True), \
        np.var(x, ddof=1)


@case((M23,), (IV,))
def np_argmax_argmin_cumsum(x):
    return np.argmax(x), np.argmin(x), np.argmax(x, axis=0), np.argmin(x, axis=-1), \
        np.cumsum(x), np.cumsum(x, axis=0), x.cumsum(axis=-1)


@case((M23,))
def np_reduction_tuple_axis(x):
    return np.sum(A234, axis=(0, 2)), np.mean(A234, axis=(1, 2), keepdims=True), \
        np.max(x, axis=(0, 1))


@case((IV,))
def np_integer_arrays(v):
    return v.sum(), v * 2, v // 2, v % 3, np.abs(v), v.max(), (v > 0).sum(), v.mean()


# ----------------------------------------------------------------------------------
# NumPy: shape operations
# ----------------------------------------------------------------------------------


@case((A234,))
def np_reshape_transpose(a):
    return np.reshape(a, (6, 4)), np.reshape(a, (-1,)), np.transpose(a), \
        np.transpose(a, (1, 0, 2)), np.swapaxes(a, 0, 2), np.moveaxis(a, 0, -1)


@case((V3,), (M23,))
def np_expand_squeeze_broadcast(x):
    e = np.expand_dims(x, 0)
    return e, np.squeeze(e), np.squeeze(e, axis=0), np.expand_dims(x, -1).shape, \
        np.broadcast_to(x, (2,) + x.shape)


@case((M23, M23))
def np_concatenate_stack(a, b):
    return np.concatenate([a, b]), np.concatenate((a, b), axis=1), np.stack([a, b]), \
        np.stack((a, b), axis=-1), np.hstack([a, b]), np.vstack([a, b])


@case((np.arange(12.0),))
def np_split(x):
    parts = np.split(x, 3)
    a, b = np.split(x.reshape(2, 6), 2, axis=1)
    return parts, a, b, np.split(x, [2, 5])


@case((M33,))
def np_flip_ravel_atleast(m):
    return np.flip(m), np.flip(m, axis=0), np.ravel(m), np.atleast_2d(m[0]), np.atleast_1d(2.0)


# ----------------------------------------------------------------------------------
# NumPy: constructors
# ----------------------------------------------------------------------------------


@case((3,), (1,))
def np_zeros_ones_full(n):
    return np.zeros(n), np.ones((n, 2)), np.full((2, n), 7.5), np.zeros((n,), dtype=int), \
        np.full(n, 3), np.ones(n, dtype=np.int64)


@case((M23,))
def np_like_constructors(x):
    return np.zeros_like(x), np.ones_like(x), np.zeros_like(x, dtype=int), \
        np.full_like(x, 2.0)


@case((3,), (4,))
def np_eye_arange_linspace(n):
    return np.eye(n), np.eye(n, 2), np.eye(n, k=1), np.arange(n), np.arange(1, n, 0.5), \
        np.arange(n, dtype=float), np.linspace(0.0, 1.0, n), np.linspace(-1, 1), \
        np.identity(n)


@case(([1.0, 2.0, 3.0],), ([[1, 2], [3, 4]],))
def np_array_from_lists(xs):
    a = np.array(xs)
    return a, np.asarray(xs), np.array(xs, dtype=float), a * 2


# ----------------------------------------------------------------------------------
# NumPy: linalg, trace, diag, tril, triu, take
# ----------------------------------------------------------------------------------


@case((M33, V3), (M44, V4))
def np_linalg(m, v):
    return np.linalg.norm(v), np.linalg.norm(m), np.linalg.norm(m, axis=0), \
        np.linalg.inv(m), np.linalg.solve(m, v), np.linalg.det(m), np.linalg.norm(v, ord=1)


@case((M33,), (M44,))
def np_trace_diag_tril_triu(m):
    return np.trace(m), np.diag(m), np.diag(np.diag(m)), np.tril(m), np.triu(m), \
        np.triu(m, k=1), np.tril(m, -1), np.diag(m, k=1), np.trace(m, offset=1)


@case((V4,), (M44,))
def np_take(x):
    return np.take(x, [0, 2]), np.take(x, 1), np.take(x, np.array([3, 3, 0])), \
        np.take(x, [1, 0], axis=0)


@case((M33,))
def np_slogdet(m):
    spd = m @ m.T + np.eye(3)
    sign, logdet = np.linalg.slogdet(spd)
    return sign, logdet, np.log(np.linalg.det(spd))


@case((A234,))
def np_keyword_arguments(a):
    return np.sum(a=a, axis=1), np.mean(a, keepdims=True, axis=(0, 1)), \
        np.transpose(a, axes=(2, 0, 1)).shape, np.concatenate([a, a], axis=2).shape, \
        np.clip(a, a_min=-0.5, a_max=0.5), np.linalg.norm(a, axis=-1, keepdims=True)


@case((V3, M23))
def np_broadcasting(v, m):
    return m + v, m * v[None, :], m - m.mean(axis=1, keepdims=True), v[:, None] * v[None, :], \
        np.maximum(m, v), np.outer(v, v) / (1.0 + v)


@case((M33,))
def np_normalize_rows(m):
    norms = np.linalg.norm(m, axis=1, keepdims=True)
    z = m / norms
    return z, np.sum(z ** 2, axis=1), np.linalg.norm(z, axis=1)


@case((np.array([[0.5, 1.5], [-1.0, 2.0]]),))
def np_logsumexp_stable(x):
    m = np.max(x, axis=1, keepdims=True)
    lse = m + np.log(np.sum(np.exp(x - m), axis=1, keepdims=True))
    return lse, np.logaddexp(x[:, 0], x[:, 1])


@case((M44,))
def np_triangular_solve_inverse(m):
    a = m @ m.T + 4.0 * np.eye(4)
    inv = np.linalg.inv(a)
    x = np.linalg.solve(a, np.ones(4))
    return inv @ a, x, a @ x, np.linalg.det(inv) * np.linalg.det(a)


@case((A234,))
def np_shape_method_roundtrip(a):
    b = a.reshape(2, 12).T.reshape((3, 4, 2))
    return b, b.transpose(2, 0, 1), b.transpose((1, 0, 2)).shape, b.swapaxes(1, 2).sum(axis=0)


@case((V4,))
def np_cumsum_argsort(v):
    return np.cumsum(v), np.argsort(v), v[np.argsort(v)], np.cumsum(v[::-1])[::-1]


@case((np.arange(6.0).reshape(2, 3),))
def np_stack_split_roundtrip(x):
    rows = np.split(x, 2)
    cols = np.split(x, 3, axis=1)
    return np.concatenate(rows), np.concatenate(cols, axis=1), np.stack(cols, axis=0).shape, \
        np.stack([x, x, x], axis=1).shape


@case((M23,))
def np_astype_and_dtypes(x):
    i = (x * 10).astype(np.int64)
    f = i.astype(np.float64) / 10
    b = x > 0
    return i, f, b.astype(int), b.sum(), f.dtype == np.float64, np.zeros(3, dtype=bool)


@case((3,))
def np_constructors_in_loop(n):
    acc = np.zeros((n, n))
    for k in range(n):
        acc = acc + np.eye(n, k=k - 1) * (k + 1)
    return acc, np.full((n,), n, dtype=float), np.linspace(0, n, 2 * n + 1)


@case((M33, V3))
def np_take_and_fancy_indexing(m, v):
    idx = np.argsort(v)
    return np.take(m, idx, axis=1), m[idx], m[:, idx], m[idx, idx], np.take(v, idx)


@case((M33,))
def np_diag_family(m):
    d = np.diag(m)
    return np.diag(d), np.trace(m) - d.sum(), np.tril(m) + np.triu(m, 1) - m, \
        np.diag(d, k=-1), np.eye(3) * d


# ----------------------------------------------------------------------------------
# the math module
# ----------------------------------------------------------------------------------


@case((0.5,), (2.0,))
def math_functions(x):
    return math.sin(x), math.cos(x), math.tan(x), math.exp(x), math.log(x), math.sqrt(x), \
        math.tanh(x), math.atan2(x, 2.0), math.pow(x, 3), math.log(x, 2), math.hypot(x, 3.0)


@case((0.5,), (-0.25,))
def math_more_functions(x):
    return math.asin(x), math.acos(x), math.atan(x), math.sinh(x), math.cosh(x), \
        math.expm1(x), math.log1p(x), math.fabs(x), math.erf(x), math.floor(x), math.ceil(x)


@case((5,))
def math_integer_functions(n):
    return math.factorial(n), math.floor(n / 2), math.ceil(n / 2), math.trunc(-n / 2), \
        math.isfinite(n), math.copysign(n, -1.0), math.degrees(math.pi / n)


@case((0.3,), (2.5,))
def math_vs_numpy(x):
    return math.exp(x) - np.exp(x), math.sin(x) ** 2 + math.cos(x) ** 2, \
        math.atan2(math.sin(x), math.cos(x)), math.log10(x), math.log2(x), math.sqrt(x) ** 2


@case((4,))
def math_constants_and_rounding(n):
    return math.pi / n, math.e ** 2, math.tau, math.floor(-2.5), math.ceil(-2.5), \
        round(math.pi, n), abs(-n), math.isclose(0.1 + 0.2, 0.3)


# ----------------------------------------------------------------------------------
# larger programs mixing constructs
# ----------------------------------------------------------------------------------


@case((M44, np.array([[0.1, 0.2, 0.3, 0.4], [-1.0, 0.0, 1.0, 2.0]])))
def mlp_loss(w, x):
    h = x
    for _ in range(3):
        h = np.tanh(h @ w)
    return np.sum(h ** 2)


@case((np.array([0.1, -0.3, 0.5]), 50))
def gradient_descent_quadratic(x0, steps):
    x = x0
    lr = 0.1
    for _ in range(steps):
        g = 2 * (x - np.array([1.0, 2.0, 3.0]))
        x = x - lr * g
        if np.linalg.norm(g) < 1e-6:
            break
    return x


@case((2.0,), (10.0,))
def newton_sqrt(a):
    x = a
    it = 0
    while abs(x * x - a) > 1e-12 and it < 100:
        x = 0.5 * (x + a / x)
        it += 1
    return x, it


@case((np.array([3.0, 1.0, 2.0, 5.0, 4.0]),))
def bubble_sort_functional(v):
    xs = [float(x) for x in v]
    n = len(xs)
    for i in range(n):
        swapped = False
        for j in range(n - 1 - i):
            if xs[j] > xs[j + 1]:
                xs = xs[:j] + [xs[j + 1], xs[j]] + xs[j + 2:]
                swapped = True
        if not swapped:
            break
    return xs


@case((np.array([1.0, 2.0, 3.0]), np.array([0.5, -0.5, 1.5])))
def softmax_cross_entropy(logits, target):
    z = logits - np.max(logits)
    p = np.exp(z) / np.sum(np.exp(z))
    return -np.sum(target * np.log(p)), p


@case((0.0, 1.0, 100))
def simpson_integrate(a, b, n):
    h = (b - a) / n
    total = math.sin(a) + math.sin(b)
    for i in range(1, n):
        coef = 4 if i % 2 else 2
        total += coef * math.sin(a + i * h)
    return total * h / 3


@case((10,))
def primes_below(n):
    primes = []
    for k in range(2, n):
        for p in primes:
            if k % p == 0:
                break
        else:
            primes = primes + [k]
    return primes


@case((Layer(M33, V3), np.array([[1.0, 0.0, -1.0], [0.5, 0.5, 0.5]])))
def dataclass_model_forward(layer, x):
    def forward(params, inp):
        return np.tanh(inp @ params.w + params.b) * params.scale

    out = forward(layer, x)
    return Pair(float(out.sum()), float(out.max())), out


@case((np.array([1.0, 0.0]), np.array([0.0, 1.0]), 20))
def rk_integrate_state(pos, vel, n):
    s = State(pos, vel)
    dt = 0.05

    def accel(p):
        return -p

    while s.steps < n:
        p, v, k = s
        v2 = v + dt * accel(p)
        s = State(p + dt * v2, v2, k + 1)
    return s.pos, s.vel, s.steps


@case(([[1, 2], [3, 4]], [[5, 6], [7, 8]]))
def matmul_lists(a, b):
    n, m, p = len(a), len(b), len(b[0])
    return [[sum(a[i][k] * b[k][j] for k in range(m)) for j in range(p)] for i in range(n)]


@case(("hello world", "o"))
def count_char(s, c):
    count = 0
    positions = []
    for i, ch in enumerate(s):
        if ch == c:
            count += 1
            positions = positions + [i]
    return count, positions


@case((V4,))
def piecewise_with_where_and_branches(x):
    y = np.where(x > 0.5, x ** 2, np.where(x < -0.5, -x, 0.5 * x))
    if y.sum() > 1.0:
        y = y / y.sum()
    elif y.sum() < 0:
        y = -y
    return y


@case((5,))
def pascal_triangle(n):
    rows = [[1]]
    for _ in range(n - 1):
        last = rows[-1]
        rows = rows + [[1] + [last[i] + last[i + 1] for i in range(len(last) - 1)] + [1]]
    return rows


@case((M33,))
def power_iteration(m):
    v = np.ones(3) / math.sqrt(3.0)
    lam = 0.0
    for _ in range(30):
        w = m @ v
        lam = float(v @ w)
        v = w / np.linalg.norm(w)
    return lam, v


# --- in-place updates and **kwargs ----------------------------------------------------


@case((V4,), (np.array([0.5, 0.25, -0.5, 0.3]),))
def fills_rows_and_columns(x):
    m = np.zeros((4, 4))
    for i in range(4):
        m[i] = x * i
        m[i, i] += 1.0
    m[:, 0] = x
    m[m > 1.0] = 1.0
    np.add.at(m, (np.array([0, 0, 3]), np.array([1, 1, 2])), 0.5)
    return m


@case((5,), (0,))
def sieve(n):
    flags = [True] * (n + 2)
    primes = []
    for i in range(2, n + 2):
        if flags[i]:
            primes.append(i)
            for j in range(i * i, n + 2, i):
                flags[j] = False
    return primes


@case(("abracadabra",))
def letter_counts(s):
    counts = {}
    for ch in s:
        counts[ch] = counts.get(ch, 0) + 1
    counts.update(total=len(s))
    return counts


@case((IV, 2))
def int_array_updates(v, k):
    out = v.copy()
    out[k:] = 7
    out[0] += 10
    out[np.array([1, 1])] -= 3
    return out


def _options(x, scale=1.0, **rest):
    return x * scale + len(rest)


@case(kw(2.0, scale=3.0, a=1, b=2), (2.0,))
def forwards_options(x, **kw):
    return _options(x, **kw) + _options(x, **{"scale": 0.5})

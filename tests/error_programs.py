"""Programs that tapeless must refuse (or that fail at run time), for tests/test_errors.py.

Each offending line carries a marker comment `# ERR: <name>`; the tests find the line
by its marker, so this file can be edited freely. Do not run `ruff --fix` on the
intentionally odd code below without checking the markers still sit on the right lines.
"""
# ruff: noqa: F841, F821, B018, E731

import math

import numpy as np

import tapeless as tl

G = 1.0


class Box:
    def __init__(self, value):
        self.value = value


def uses_try(x):
    try:  # ERR: try
        y = 1.0 / x
    except ZeroDivisionError:
        y = 0.0
    return y


def uses_with(x):
    with open("data.txt") as fh:  # ERR: with
        y = float(fh.read())
    return x + y


def uses_yield(x):
    for i in range(3):
        yield x * i  # ERR: yield


async def uses_async(x):  # ERR: async
    return x


def writes_global(x):
    global G
    G = x  # ERR: global
    return x


def writes_nonlocal(x):
    y = x

    def bump():
        nonlocal y
        y = y + 1.0  # ERR: nonlocal
        return y

    return bump()


def defines_class(x):
    class Point:  # ERR: class
        pass

    return x


def uses_del(x):
    y = x * 2.0
    del y  # ERR: del
    return x


def imports_inside(x):
    from os import not_a_name_in_os  # ERR: import

    return x + not_a_name_in_os


def uses_exec(x):
    exec("y = 1")  # ERR: exec
    return x


def uses_eval(x):
    return eval("x + 1")  # ERR: eval


def calls_fft(x):
    return np.fft.fft(x)  # ERR: fft


def calls_polyfit(x, y):
    return np.polyfit(x, y, 1)  # ERR: polyfit


def sets_item(a, i, v):
    a[i] = v  # ERR: setitem
    return a


def appends(xs, v):
    xs.append(v)  # ERR: append
    return xs


def sets_attribute(box, v):
    box.value = v  # ERR: setattr
    return box


def set_comprehension(xs):
    return len({x * 2 for x in xs})  # ERR: setcomp


def starred_assignment(t):
    first, *rest = t  # ERR: starred
    return first


def bare_raise(x):
    if x < 0:
        raise  # ERR: raise
    return x


def closure_reassigned(x):
    scale = 2.0

    def f(v):
        return v * scale  # ERR: capture

    scale = 3.0
    return f(x)


def closure_in_loop(x):
    fs = []
    for i in range(3):
        fs = fs + [lambda v: v + i]  # ERR: loopcapture
    return fs[0](x)


def used_before_assignment(x):
    total = y + x  # ERR: unbound
    y = 2.0
    return total


def undefined_name(x):
    return x + undefined_thing  # ERR: undefined


def unknown_method(x):
    return x.nonzero()  # ERR: method


def uses_match(x):
    match x:  # ERR: match
        case 0:
            return 1.0
    return x


def nested_decorator(x):
    @staticmethod  # ERR: decorator
    def f(v):
        return v

    return f(x)


def double_star_call(x, options):
    return max(x, **options)  # ERR: doublestar


# --- run-time errors ------------------------------------------------------------------


def matmul(x, y):
    z = np.tanh(x)
    return z @ y  # ERR: matmul


def tanh_matmul(a, b):
    return np.sum(np.tanh(a @ b))  # ERR: tanh_matmul


def grad_of_tanh_matmul(a, b):
    return tl.grad(tanh_matmul)(a, b)


def divides(x, n):
    total = 0.0
    for i in range(3):
        total = total + x / (n - i)  # ERR: zerodiv
    return total


def calls_divides(x, n):
    return math.sqrt(x * x) + divides(x, n)  # ERR: calls_divides

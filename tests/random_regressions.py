"""Minimal programs for the compiler bugs that the random program generator found
(tests/test_random_programs.py runs each with CPython and with tl.jit). Each function
takes (x: float, n: int)."""
# ruff: noqa: B007, F841  (unused loop variables and assignments are part of the bugs)

import math


def _pair(a):
    return (a, a + 1.0)


def _triple(a):
    return (a + 1.0, 2.0, 3.0)


def nested_break_flags(x, n):
    # The inner loop's `break` must not stop the outer loop.
    acc = 0.0
    for i in range(3):
        for j in range(3):
            if j == 1:
                break
        if i == n + 10:
            break
        acc += 1.0
    return acc + x


def return_in_loop_skips_else(x, n):
    # A loop that returns does not run its `else`.
    for i in range(3):
        if i == n:
            return 1.0
    else:
        return 2.0
    return 3.0


def code_after_loop_else(x, n):
    # The statements after a `for ... else` whose `else` holds a returning loop.
    for i in range(0):
        x = x + 1.0
    else:
        for j in range(2):
            if x > 5.0:
                return 1.0
    x = x + 10.0
    return x


def break_in_loop_else(x, n):
    # `break` in an inner loop's `else` breaks the outer loop.
    acc = 0.0
    for i in range(4):
        if x > 0:
            for j in range(n % 3):
                acc += 1.0
            else:
                break
        acc += 10.0
    return acc


def partly_used_if_results(x, n):
    # Only one of the variables an `if` assigns is used afterwards.
    y = x
    if x > 0:
        if x > 1:
            a = 1.0
        else:
            y = 2.0
    else:
        b = 3.0
    return y


def tuple_value_through_if(x, n):
    # A variable holding a tuple, assigned in a branch, then unpacked.
    t = (x, x)
    if n > 2:
        t = _pair(x)
    p, q = t
    return p - q


def tuple_built_in_branch(x, n):
    t = (x, x, x)
    if n > 2:
        t = _triple(x)
    p, q, r = t
    return q


def closure_after_loop(x, n):
    # The closure reads a loop result: it must be defined before it is called.
    a = x
    for i in range(n % 3):
        a = a + 1.0
    return math.tanh(x + (lambda z: a * z)(x))


def def_in_duplicated_tail(x, n):
    # Code after an `if` that returns is compiled once per branch; so is this `def`.
    if x > 3.0:
        return x
    m = n * 2

    def scaled(z):
        return z * m

    return scaled(x) + 1.0


def _pick(x, n):
    if n == 1:
        return x
    elif n == 2:
        return x * 2.0
    else:
        raise ValueError("bad n")


def raise_in_inlined_branch(x, n):
    # After inlining `_pick`, the `if` is used as a value: `raise` must stay a statement.
    return _pick(x, n) + 1.0

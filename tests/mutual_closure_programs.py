"""Programs whose nested functions call each other (mutually recursive closures) and
reach free variables of the enclosing function only through a sibling, in every order
of definition and call, for tests/test_mutual_closures.py. Each is `f(x, k)`: `x` a
float vector (3,), `k` an int (the recursion's depth), returning a float. Written with
the module's `np`, so that the test can run them again with `autograd.numpy` as the
reference for derivatives."""

from __future__ import annotations

import numpy as np


def call_even(x, k):
    y = np.sin(x) * 3.0
    def even(n):
        return y if n == 0 else odd(n - 1) * 1.5
    def odd(n):
        return x * 2.0 if n == 0 else even(n - 1) + x
    return np.sum(even(k))


def call_odd(x, k):
    y = np.sin(x) * 3.0
    def even(n):
        return y if n == 0 else odd(n - 1) * 1.5
    def odd(n):
        return x * 2.0 if n == 0 else even(n - 1) + x
    return np.sum(odd(k))


def call_both_odd_first(x, k):
    y = np.sin(x) * 3.0
    def even(n):
        return y if n == 0 else odd(n - 1) * 1.5
    def odd(n):
        return x * 2.0 if n == 0 else even(n - 1) + x
    return np.sum(odd(k) * even(k + 1))


def called_before_sibling_defined(x, k):
    # `even` is called before `odd` is defined (at depth 0, so CPython never reaches
    # `odd` there), then both are.
    y = np.sin(x)
    def even(n):
        return y if n == 0 else odd(n - 1) * 0.5
    first = even(0)
    def odd(n):
        return x if n == 0 else even(n - 1) + y
    return np.sum(first * odd(k))


def defined_odd_first(x, k):
    w = np.cos(x) + 1.0
    def odd(n):
        return w * x if n == 0 else even(n - 1) * w
    def even(n):
        return np.exp(x * 0.1) if n == 0 else odd(n - 1) - x
    return np.sum(even(k)) + np.sum(odd(k))


def only_through_sibling(x, k):
    # `z` and `w` are read by one closure each; the caller reaches both only through
    # the sibling it calls.
    w = x + 1.0
    z = np.cos(x) * w
    def even(n):
        return z if n == 0 else odd(n - 1) * 0.5
    def odd(n):
        return x * x if n == 0 else even(n - 1) * w
    return np.sum(odd(k))


def front_defined_first(x, k):
    # `front` is defined (and compiled) before the cycle it calls.
    u = np.tanh(x)
    def front(n):
        return ping(n) * 2.0
    def ping(n):
        return u if n <= 0 else pong(n - 1) + u
    def pong(n):
        return x if n <= 0 else ping(n - 1) * x
    return np.sum(front(k))


def three_cycle(x, k):
    u = np.sin(x)
    v = np.cos(x) * 2.0
    w = x * x
    def a(n):
        return u if n <= 0 else b(n - 1) + u
    def b(n):
        return v if n <= 0 else c(n - 1) * 0.5 + v
    def c(n):
        return w if n <= 0 else a(n - 1) * w
    return np.sum(c(k))


def three_cycle_backwards(x, k):
    u = np.sin(x)
    v = np.cos(x) * 2.0
    w = x * x
    def c(n):
        return w if n <= 0 else a(n - 1) * w
    def b(n):
        return v if n <= 0 else c(n - 1) * 0.5 + v
    def a(n):
        return u if n <= 0 else b(n - 1) + u
    return np.sum(b(k)) + np.sum(a(k))


def three_cycle_chords(x, k):
    # a -> b, a -> c, b -> c, c -> a: two cycles through `a`.
    u = np.sin(x)
    v = np.exp(x * 0.3)
    w = x * 3.0
    def a(n):
        return u if n <= 0 else b(n - 1) * 0.5 + c(n - 1) * u
    def b(n):
        return v if n <= 0 else c(n - 1) + v
    def c(n):
        return w if n <= 0 else a(n - 1) * w
    return np.sum(c(k))


def lambda_in_sibling(x, k):
    # A lambda nested in `even` calls `odd`, which calls `even`: the cycle runs through a
    # graph nested in one of its members.
    y = np.sin(x)
    def even(n):
        g = lambda t: odd(t) * y
        return y + x if n == 0 else g(n - 1)
    def odd(n):
        return x * 3.0 if n == 0 else even(n - 1) + x * y
    return np.sum(odd(k))


def two_levels(x, k):
    # The cycle is nested in `inner`, and reads values of `inner` and of `two_levels`.
    s = x * 0.5
    def inner(z):
        t = np.sin(z)
        def even(n):
            return t * s if n == 0 else odd(n - 1) + t
        def odd(n):
            return z if n == 0 else even(n - 1) * s
        return odd(k)
    return np.sum(inner(x * 2.0) * inner(x))


def through_helper(x, k):
    # `z` is computed by a call of a sibling function, and read only by the cycle.
    def helper(t):
        return np.cos(t) * t
    z = helper(x)
    def even(n):
        return z if n == 0 else odd(n - 1) + 1.0
    def odd(n):
        return x if n == 0 else even(n - 1) * x
    return np.sum(odd(k))


def as_values(x, k):
    # The closures passed to each other as values.
    y = np.sin(x) + 2.0
    def apply(f, n):
        return f(n) * 0.5
    def even(n):
        return y if n == 0 else apply(odd, n - 1) + y
    def odd(n):
        return x if n == 0 else apply(even, n - 1) * x
    return np.sum(apply(odd, k))


def in_loop(x, k):
    # The cycle is called from a loop body, with the loop's counter.
    y = np.sin(x)
    def even(n):
        return y if n == 0 else odd(n - 1) * 0.5
    def odd(n):
        return x if n == 0 else even(n - 1) + y * x
    acc = 0.0
    for i in range(k + 1):
        acc = acc + np.sum(even(i)) * (i + 1)
    return acc


def in_comprehension(x, k):
    y = np.cos(x)
    def even(n):
        return y * x if n == 0 else odd(n - 1) + y
    def odd(n):
        return x if n == 0 else even(n - 1) * 0.75
    return sum([np.sum(odd(i)) * x[i % 3] for i in range(k + 2)])


def loop_value_argument(x, k):
    # Loop values passed to the cycle as arguments (closures see a variable's value at
    # definition: one assigned in a loop is passed, not captured).
    y = np.sin(x)
    def even(n, t):
        return y * t if n == 0 else odd(n - 1, t) + t
    def odd(n, t):
        return x + t if n == 0 else even(n - 1, t * 0.5) * 0.5
    acc = x * 0.0
    for i in range(3):
        t = x[i] * x
        acc = acc + even(k + i, t)
    return np.sum(acc)


def defined_in_loop(x, k):
    # The cycle is defined in a loop body (reading no value the loop assigns: one that
    # it does is refused, see the test), and called there with the loop's counter.
    y = np.sin(x)
    acc = 0.0
    for i in range(3):
        def even(n):
            return y if n == 0 else odd(n - 1) * 0.5
        def odd(n):
            return x if n == 0 else even(n - 1) + y
        acc = acc + np.sum(even(k + i)) * (i + 1.0)
    return acc


def while_cycle(x, k):
    # The cycle recurses through a while loop in one member.
    y = np.sin(x)
    def even(n):
        out = y
        m = n
        while m > 1:
            out = out + odd(m - 1) * 0.25
            m = m - 2
        return out
    def odd(n):
        return x if n <= 0 else even(n - 1) * y
    return np.sum(even(k + 1))


def branch_defined(x, k):
    # The cycle is defined inside a branch.
    if k > 1:
        y = x * 2.0
        def even(n):
            return y if n == 0 else odd(n - 1) + 1.0
        def odd(n):
            return x * y if n == 0 else even(n - 1) * x
        return np.sum(even(k))
    return np.sum(x)


def nested_cycle_calls_outer_cycle(x, k):
    # A cycle nested in a member of another cycle calls back into the outer one.
    u = np.sin(x)
    def p(n):
        v = u * n
        def r(m):
            return v if m <= 0 else s(m - 1) + q(m - 1)
        def s(m):
            return x if m <= 0 else r(m - 1) * 0.5
        return u if n <= 0 else r(n - 1)
    def q(n):
        return x * x if n <= 0 else p(n - 1) * u
    return np.sum(q(k + 1))


PROGRAMS = [call_even, call_odd, call_both_odd_first, called_before_sibling_defined,
            defined_odd_first, only_through_sibling, front_defined_first, three_cycle,
            three_cycle_backwards, three_cycle_chords, lambda_in_sibling, two_levels,
            through_helper, as_values, in_loop, in_comprehension, loop_value_argument,
            defined_in_loop, while_cycle, branch_defined, nested_cycle_calls_outer_cycle]

"""Loop-carried sensitivities as an affine map: the chain of one turn shortened.

A backward loop of reverse mode is linear in the sensitivities it carries from one turn
to the next: each new `d_v` is a sum of the old ones times factors made of saved values
(and a term of none). Written as the derivative rules leave it, the old sensitivity goes
through every operation of the turn in order, e.g. the particle's

    _t_3 = -(d_vx + 0.001)
    d_speed = _t_5 * drag + _t_3 * vx * c
    _t_7 = _fdiv(d_speed * 0.5, speed)
    d_vx = d_vx + 0.001 + _t_3 * k + _t_7 * vx + _t_7 * vx

so one turn cannot start before the last one's division and some ten other operations
end: compiled, such a loop runs at the latency of that chain (about 40 cycles a turn),
not at the rate the processor could do its arithmetic. This pass rewrites the turn as

    _nt_a1 = ...   # the factors: saved values only, off the chain
    d_vx, d_vy = _nt_a1 * d_vx + _nt_a2 * d_vy + _nt_a3, ...

where the factors are what the operations on the sensitivities multiply them by,
computed from the same values in the same order but for the sensitivities (so a turn's
chain is one product and a few sums). The results differ from the Python backend's by
the rounding of the reassociation. Near the ends of the float range that would be more
than rounding (a factor `a * a` that underflows to 0 or overflows to inf where
`(d * a) * a` does not, or `(a + b) * d` giving inf where `d * a + d * b` gives
`inf - inf`'s NaN), so each rewritten turn adds the squares of the old carried values and
of the factors to a sum, and after the loop a sum above 2**(2E) (or NaN) raises, so
native code's call runs on the Python backend: E is chosen from the most products and
sums on a path so that with every such value at most 2**E neither order of the
operations overflows (`_range_check`; E is 141 for a chain of six products), and the
results never differ in finiteness. An underflow is not checked for (a factor `a * a`
that underflows to 0 where `(d * a) * a` is a tiny number: 0 against that number, both
finite). A loop whose factors admit no E of 64 or more (or
with a constant factor outside the range) is left as it is.

Which loops: a `for` or `while` loop whose body is assignments only (to names, or a
tuple of names from a tuple), for the set S of names it carries (read in a turn before
the turn assigns them) such that every value made from them in the turn is `+`, `-` of
two such values or of one and a value not made from them, `*` or `/` (`_nt_fdiv`) of one
by a value not made from them, `-` of one, `_nt_gadd`/`_nt_add_into` of two; that no
such value reaches anything else (a call, an item, a test, a value the loop does not
carry, a name read outside the body); and that the loop's test reads none of S. The
set is found by dropping from the carried names those that break this, until none do.
Rewritten only where it shortens the chain (the longest path from an old value of S to
a new one by at least two operations), and only when S are floats: the rewritten body
runs under `isinstance(s, float)` for each, the original in the `else` (Numba prunes
one of them by the types; arrays keep theirs: the factors would be arrays).
"""

from __future__ import annotations

import ast
import copy
import itertools
import math
from collections.abc import Callable, Iterator
from typing import cast

from .native_ast import block_of, parents

# A value made from S: its coefficient (an expression of values not made from S) per
# name of S, "" for the term of none; and the longest chain of operations behind it.
Form = dict[str, ast.expr]
_CONST = ""
_ADDS = ("_nt_gadd", "_nt_add_into")
# A rough cost model (cycles) to tell a turn that waits on its chain from one that is
# busy: a product or sum on the chain, a division; the work of a turn, per operation,
# per division, per call of a function (`math.sin`: its own work, off the chain but not
# free). A loop is rewritten only where the chain before is GAIN times the longer of the
# chain after and the work after (the saddle's inner loop, whose `sin` a turn is its
# work, stays as it is).
LATENCY, DIVISION = 4, 14
WORK_OP, WORK_DIVISION, WORK_CALL = 0.5, 5.0, 40.0
GAIN = 1.2
# The rewritten loop's guard (`_range_check`): the binary exponents a product of factors
# may span (of a float's 1024, less a margin), the least bound 2**E a factor may be given
# for the loop to be rewritten, and the most (its square, summed over the turns, finite).
EXPONENT_BUDGET, MIN_EXPONENT, MAX_EXPONENT = 1000, 64, 480


class _NotAffine(Exception):
    def __init__(self, names: set[str]) -> None:
        super().__init__(names)
        self.names = names


class _Form:
    # (`products`: the most products or quotients by a factor on a path from an old value
    # of S, or from a factor, to this one; `sums`: the most sums on such a path)
    __slots__ = ("coefs", "depth", "products", "sums")

    def __init__(self, coefs: Form, depth: int, products: int = 0, sums: int = 0) -> None:
        self.coefs = coefs
        self.depth = depth
        self.products = products
        self.sums = sums

    def like(self, coefs: Form) -> _Form:
        """A form with `coefs`, as deep as this one."""
        return _Form(coefs, self.depth, self.products, self.sums)


Value = _Form | None  # None: a value not made from S


def lower_affine_loops(tree: ast.Module) -> int:
    """Rewrite the loops of `tree` whose carried floats are an affine map of themselves
    (see the module's docstring); returns how many were rewritten."""
    taken = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)} | \
        {n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)}
    fresh = (f"_nt_a{i}" for i in itertools.count(1) if f"_nt_a{i}" not in taken)
    done = 0
    for fn in [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)]:
        aliases = _aliases(fn)
        loops = [n for n in ast.walk(fn) if isinstance(n, (ast.For, ast.While))]
        for loop in loops:
            done += _rewrite(fn, loop, aliases, fresh)
    return done


def _aliases(fn: ast.FunctionDef) -> dict[str, str]:
    """The locals of `fn` bound once, at its top, to a helper (`_fdiv = _nt_fdiv`)."""
    stores: dict[str, int] = {}
    for n in ast.walk(fn):
        if isinstance(n, ast.Name) and not isinstance(n.ctx, ast.Load):
            stores[n.id] = stores.get(n.id, 0) + 1
    out = {}
    for stmt in fn.body:
        if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and \
                isinstance(stmt.targets[0], ast.Name) and isinstance(stmt.value, ast.Name) \
                and stmt.value.id.startswith("_nt_") and stores[stmt.targets[0].id] == 1:
            out[stmt.targets[0].id] = stmt.value.id
    return out


def _pairs(stmt: ast.stmt) -> list[tuple[str, ast.expr]] | None:
    """The (name, value) pairs a straight assignment binds, or None for any other
    statement."""
    if not isinstance(stmt, ast.Assign) or len(stmt.targets) != 1:
        return None
    target = stmt.targets[0]
    if isinstance(target, ast.Name):
        return [(target.id, stmt.value)]
    if isinstance(target, ast.Tuple) and isinstance(stmt.value, ast.Tuple) and \
            len(target.elts) == len(stmt.value.elts) and \
            all(isinstance(t, ast.Name) for t in target.elts):
        return [(t.id, v) for t, v in zip(target.elts, stmt.value.elts, strict=True)
                if isinstance(t, ast.Name)]
    return None


def _loads(node: ast.AST) -> set[str]:
    return {n.id for n in ast.walk(node) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}


def _rewrite(fn: ast.FunctionDef, loop: ast.For | ast.While, aliases: dict[str, str],
             fresh: Iterator[str]) -> int:
    if loop.orelse:
        return 0
    body = [_pairs(s) for s in loop.body]
    steps = [p for p in body if p is not None]
    if len(steps) != len(body) or not steps:
        return 0
    stores: dict[str, int] = {}
    for pairs in steps:
        for name, _ in pairs:
            stores[name] = stores.get(name, 0) + 1
    # The names carried: read in a turn before the turn assigns them.
    carried: list[str] = []
    seen: set[str] = set()
    for pairs in steps:
        for _, value in pairs:
            for name in sorted(_loads(value)):
                if name in stores and name not in seen and name not in carried:
                    carried.append(name)
        seen |= {name for name, _ in pairs}
    header = _loads(loop.test) if isinstance(loop, ast.While) else \
        _loads(loop.iter) | {n.id for n in ast.walk(loop.target) if isinstance(n, ast.Name)}
    outside = _names_outside(fn, loop)
    # (bound outside the loop too: the copies for the test are made before it)
    bound = {a.arg for a in fn.args.args} | _bound_outside(fn, loop)
    s = [n for n in carried if n not in header and n in bound]
    while s:
        try:
            result = _evaluate(steps, set(s), aliases, stores, set(carried))
        except _NotAffine as e:
            if not e.names & set(s):
                return 0
            s = [n for n in s if n not in e.names]
            continue
        finals, depth, temps, escaped, leaves = result
        # (a value made from S read outside the loop: S's names behind it stay as they are)
        leaked: set[str] = set()
        for name, behind in escaped.items():
            if name in outside:
                leaked |= behind
        if leaked:
            s = [n for n in s if n not in leaked]
            continue
        # (the turn's chain after: a product and the sums; its work: the factors)
        chain = LATENCY * (1 + max(len(f.coefs) for f in finals.values()))
        if depth < GAIN * max(chain, _work(temps, finals, aliases)):
            return 0
        # (a `for` loop's target is bound by every turn too: never tested before it)
        targets = {n.id for n in ast.walk(loop.target) if isinstance(n, ast.Name)} \
            if isinstance(loop, ast.For) else set()
        check = _range_check(s, finals, leaves, set(stores) | targets)
        if check is None:
            return 0
        _emit(fn, loop, s, finals, temps, fresh, check)
        return 1
    return 0


class _Check:
    """The rewritten loop's range check (`_range_check`): the tests of the values a turn
    makes or reads from the loop (`turn`) and of those bound outside it (`before`)."""

    def __init__(self, bound: float) -> None:
        self.bound = bound  # (of the sum of the squares)
        self.turn: list[ast.expr] = []
        self.before: list[tuple[str, ast.expr]] = []  # (by the name each tests)
        # (the magnitudes of the divisors, whose least is tested: made in the turn, or
        # by the name each reads)
        self.least: list[ast.expr] = []
        self.least_before: list[tuple[str, ast.expr]] = []


def _range_check(s: list[str], finals: dict[str, _Form],
                 leaves: list[tuple[ast.expr, bool]], stores: set[str]
                 ) -> _Check | None:
    """The values whose squares the rewritten loop sums (the old values of `s` and the
    factors, `leaves`) and the bound of that sum, 2**(2E), with E such that a product of
    as many values of at most 2**E as a path multiplies by, or divides by divisors of
    at least 2**-E (the reciprocal the turn makes is summed as a factor; a divisor of
    one factor, of which none is made, has its least magnitude kept by `min` and tested
    too), plus its sums, stays a finite float: then neither order of the operations overflows (a
    NaN or an infinity among them fails the bound). A sum, not a test per value: two operations a
    value, one sum on the loop's chain (the particle's gradient, per call, loaded runs:
    24.5-28.0 µs unchecked, 27.7-31.9 with the sum, 30.0-33.1 with a test of each
    value's range). The names the loop does not assign are summed once, before it. None
    where no E of at least `MIN_EXPONENT` fits, or a constant factor is larger than
    2**E: not rewritten."""
    products = max(f.products for f in finals.values())
    sums = max(f.sums for f in finals.values())
    exponent = (EXPONENT_BUDGET - sums - len(s) - 8) // (products + 1)
    if exponent < MIN_EXPONENT:
        return None
    exponent = min(exponent, MAX_EXPONENT)
    hi = 2.0 ** exponent
    check = _Check(hi * hi)
    seen: set[str] = set()
    for leaf, divides in leaves:
        if divides and not isinstance(leaf, ast.Constant):
            least = ast.Call(ast.Name("abs", ast.Load()), [copy.deepcopy(leaf)], [])
            if isinstance(leaf, ast.Name) and leaf.id not in stores:
                check.least_before.append((leaf.id, least))
            else:
                check.least.append(least)
    for leaf in [ast.Name(name, ast.Load()) for name in s] + [v for v, _ in leaves]:
        number = leaf.operand if isinstance(leaf, ast.UnaryOp) else leaf
        if isinstance(number, ast.Constant):
            if not isinstance(number.value, (int, float)) or abs(number.value) > hi or \
                    any(v is leaf and 0 < abs(number.value) < 1 / hi for v, _ in leaves):
                return None
            continue
        key = ast.dump(number)
        if key in seen:
            continue
        seen.add(key)
        fits = ast.BinOp(ast.Call(ast.Name("abs", ast.Load()), [copy.deepcopy(number)], []),
                         ast.Mult(),
                         ast.Call(ast.Name("abs", ast.Load()), [copy.deepcopy(number)], []))
        if isinstance(number, ast.Name) and number.id not in stores:
            check.before.append((number.id, fits))
        else:
            check.turn.append(fits)
    return check


def _sum(terms: list[ast.expr], last: ast.expr) -> ast.expr:
    """`term + ... + last` (`last`, the sum a turn carries to the next, the one operand
    that waits on the last turn: one sum on the loop's chain)."""
    out: ast.expr | None = None
    for t in terms:
        out = t if out is None else ast.BinOp(out, ast.Add(), t)
    return last if out is None else ast.BinOp(out, ast.Add(), last)


def _work(temps: list[tuple[str, list[tuple[str, ast.expr]]]], finals: dict[str, _Form],
          aliases: dict[str, str]) -> float:
    """The work of the rewritten turn (by the cost model above)."""
    exprs = [v for _, pairs in temps for _, v in pairs] + \
        [c for f in finals.values() for c in f.coefs.values()]
    work = WORK_OP * sum(len(f.coefs) for f in finals.values())
    for n in (n for e in exprs for n in ast.walk(e)):
        if isinstance(n, ast.BinOp):
            work += WORK_DIVISION if isinstance(n.op, ast.Div) else WORK_OP
        elif isinstance(n, ast.Subscript):
            work += WORK_OP
        elif isinstance(n, ast.Call):
            name = n.func.id if isinstance(n.func, ast.Name) else ""
            work += WORK_DIVISION if aliases.get(name, name) == "_nt_fdiv" else WORK_CALL
    return work


def _bound_outside(fn: ast.FunctionDef, loop: ast.For | ast.While) -> set[str]:
    inside = {id(n) for stmt in loop.body for n in ast.walk(stmt)}
    return {n.id for n in ast.walk(fn) if isinstance(n, ast.Name) and
            not isinstance(n.ctx, ast.Load) and id(n) not in inside}


def _names_outside(fn: ast.FunctionDef, loop: ast.For | ast.While) -> set[str]:
    inside = {id(n) for stmt in loop.body for n in ast.walk(stmt)}
    return {n.id for n in ast.walk(fn) if isinstance(n, ast.Name) and id(n) not in inside}


def _evaluate(steps: list[list[tuple[str, ast.expr]]], s: set[str], aliases: dict[str, str],
              stores: dict[str, int], carried: set[str]
              ) -> tuple[dict[str, _Form], int, list[tuple[str, list[tuple[str, ast.expr]]]],
                         dict[str, set[str]], list[tuple[ast.expr, bool]]]:
    """The turn evaluated on forms: the final form of each name of `s`, the longest
    chain, the statements of values not made from S (in order: `("keep", pairs)`) with
    the factors' temporaries (`("temp", [(name, expr)])`), the intermediate forms by
    name, and the factors the operations on S multiply, divide or add them by (as
    settled: constants, names, temporaries). Raises `_NotAffine` with the names of S
    behind a value that is not affine."""
    env: dict[str, Value] = {}
    assigned: set[str] = set()
    stable: set[str] = set()  # names whose value at the end of the turn is the one read
    out: list[tuple[str, list[tuple[str, ast.expr]]]] = []
    pending: list[tuple[str, ast.expr]] = []  # (temporary, factor) to bind at this point
    counter = itertools.count()
    made: dict[str, str] = {}
    # (the factors of the operations on S, as settled; whether each is a divisor)
    leaves: list[tuple[ast.expr, bool]] = []

    basis: dict[str, str] = {}  # a name bound on the chain to `s + k`: its name of S

    def names_of(form: _Form) -> set[str]:
        return {basis.get(k, k) for k in form.coefs if k != _CONST}

    def fail(*forms: Value) -> _NotAffine:
        names: set[str] = set()
        for f in forms:
            if f is not None:
                names |= names_of(f)
        return _NotAffine(names)

    def steady(name: str) -> bool:
        return name not in stores or name in stable

    def settle(e: ast.expr) -> ast.expr:
        """`e` (a factor) as a constant, a stable name or a temporary bound here."""
        if isinstance(e, ast.Constant) or isinstance(e, ast.Name) and steady(e.id):
            return e
        if isinstance(e, ast.UnaryOp) and isinstance(e.op, ast.USub) and \
                isinstance(e.operand, (ast.Name, ast.Constant)) and \
                (isinstance(e.operand, ast.Constant) or steady(e.operand.id)):
            return e
        key = ast.dump(e)
        if key not in made:  # (one temporary per factor of a statement)
            made[key] = f"\0{next(counter)}"  # (named when emitted)
            pending.append((made[key], e))
        return ast.Name(made[key], ast.Load())

    def expr(e: ast.expr) -> Value:
        if isinstance(e, ast.Name):
            if e.id in env:
                return env[e.id]
            if e.id in s and e.id not in assigned:
                return _Form({e.id: ast.Constant(1.0)}, 0)
            return None
        if isinstance(e, ast.Constant):
            return None
        if isinstance(e, ast.BinOp) and isinstance(e.op, (ast.Add, ast.Sub, ast.Mult, ast.Div)):
            left, right = expr(e.left), expr(e.right)
            if left is None and right is None:
                return None
            if isinstance(e.op, (ast.Add, ast.Sub)):
                return add(left, e.left, right, e.right, isinstance(e.op, ast.Sub))
            if isinstance(e.op, ast.Mult):
                if left is not None and right is not None:
                    raise fail(left, right)
                if left is not None:
                    return scale(left, lambda c: _mul(c, factor(e.right)), LATENCY)
                assert right is not None
                return scale(right, lambda c: _mul(factor(e.left), c), LATENCY)
            if right is not None or left is None:
                raise fail(left, right)
            return divide(left, e.right, None)
        if isinstance(e, ast.UnaryOp) and isinstance(e.op, (ast.USub, ast.UAdd)):
            inner = expr(e.operand)
            if inner is None:
                return None
            return scale(inner, _neg, 1) if isinstance(e.op, ast.USub) else inner
        if isinstance(e, ast.Call) and isinstance(e.func, ast.Name) and not e.keywords \
                and len(e.args) == 2:
            helper = aliases.get(e.func.id, e.func.id)
            a, b = expr(e.args[0]), expr(e.args[1])
            if a is None and b is None:
                return None
            if helper in _ADDS:
                if a is None or b is None:  # (the other may be None: ZERO)
                    raise fail(a, b)
                return add(a, e.args[0], b, e.args[1], False)
            if helper == "_nt_fdiv":
                if b is not None or a is None:
                    raise fail(a, b)
                return divide(a, e.args[1], e.func)
            raise fail(a, b)
        # Anything else: made from S raises; else a value not made from S.
        forms = [expr(n) for n in ast.walk(e) if isinstance(n, ast.Name) and n is not e]
        if any(f is not None for f in forms):
            raise fail(*forms)
        return None

    def factor(e: ast.expr) -> ast.expr:
        settled = settle(copy.deepcopy(e))
        leaves.append((settled, False))
        return settled

    def divide(form: _Form, divisor: ast.expr, helper: ast.expr | None) -> _Form:
        """`form / divisor` (by `helper`, `_nt_fdiv`, where given): each factor divided,
        or, for more than one, times the reciprocal (one division a turn: it raises
        where the division would)."""
        def quotient(a: ast.expr, b: ast.expr) -> ast.expr:
            return ast.BinOp(a, ast.Div(), b) if helper is None else \
                ast.Call(copy.copy(helper), [a, b], [])
        d = factor(divisor)
        if len(form.coefs) == 1:
            leaves[-1] = (d, True)  # (its least magnitude tested: `_range_check`)
            return scale(form, lambda c: quotient(c, d), DIVISION)
        r = settle(quotient(ast.Constant(1.0), d))
        leaves.append((r, False))  # (a reciprocal at most 2**E: a divisor at least 2**-E)
        return scale(form, lambda c: _mul(c, r), DIVISION)

    def scale(form: _Form, how: Callable[[ast.expr], ast.expr], cost: int) -> _Form:
        # (a cost of more than one: a product or a quotient; one: a negation)
        return _Form({k: how(c) for k, c in form.coefs.items()}, form.depth + cost,
                     form.products + (cost > 1), form.sums)

    def add(left: Value, le: ast.expr, right: Value, re: ast.expr, sub: bool) -> _Form:
        if left is None:
            left = _Form({_CONST: factor(le)}, 0)
        if right is None:
            right = _Form({_CONST: factor(re)}, 0)
        coefs = dict(left.coefs)
        for k, c in right.coefs.items():
            c = _neg(c) if sub else c
            coefs[k] = ast.BinOp(coefs[k], ast.Add(), c) if k in coefs else c
        return _Form(coefs, max(left.depth, right.depth) + LATENCY,
                     max(left.products, right.products), max(left.sums, right.sums) + 1)

    depth = 0
    escaped: dict[str, set[str]] = {}
    for pairs in steps:
        values = [(name, expr(v)) for name, v in pairs]
        keep: list[tuple[str, ast.expr]] = []
        for (name, value), (_, source) in zip(values, pairs, strict=True):
            if value is None and name in s:  # (S given a value not made from S)
                value = _Form({_CONST: factor(source)}, 0)
            if value is None:
                if stores[name] > 1:
                    raise _NotAffine(set(s))  # (two values of one name: not reordered)
                keep.append((name, source))
                continue
            depth = max(depth, value.depth)
            # (its factors bound where they are made: they read the values of now)
            value = value.like({k: settle(c) for k, c in value.coefs.items()})
            if name not in s:
                if name in carried:  # (read by the next turn: it would not be assigned)
                    raise fail(value)
                escaped[name] = names_of(value)
                shifted = [k for k, c in value.coefs.items() if k != _CONST and
                           isinstance(c, ast.Constant) and c.value == 1.0]
                if len(value.coefs) == 2 and _CONST in value.coefs and shifted:
                    # (`s + k`: bound on the chain, one sum, and read as itself: its
                    # factors then go with one name, not two)
                    pending.append((name, ast.BinOp(ast.Name(shifted[0], ast.Load()),
                                                    ast.Add(), value.coefs[_CONST])))
                    basis[name] = basis.get(shifted[0], shifted[0])
                    value = value.like({name: ast.Constant(1.0)})
            env[name] = value
        if pending:
            out.append(("temp", list(pending)))
            pending.clear()
            made.clear()
        if keep:
            out.append(("keep", keep))
        for name, _ in pairs:
            assigned.add(name)
            if stores[name] == 1 and name not in s:
                stable.add(name)
    finals = {}
    for name in s:
        form = env.get(name)
        if not isinstance(form, _Form):
            raise _NotAffine({name})
        finals[name] = form
    return finals, depth, out, escaped, leaves


def _mul(a: ast.expr, b: ast.expr) -> ast.expr:
    """`a * b`, where a factor ±1 is a sign (exact either way)."""
    for one, other in ((a, b), (b, a)):
        if isinstance(one, ast.Constant) and type(one.value) is float and \
                abs(one.value) == 1.0:
            return other if one.value == 1.0 else _neg(other)
    return ast.BinOp(a, ast.Mult(), b)


def _neg(c: ast.expr) -> ast.expr:
    if isinstance(c, ast.Constant) and isinstance(c.value, (int, float)) and \
            not isinstance(c.value, bool):
        return ast.Constant(-c.value)
    if isinstance(c, ast.UnaryOp) and isinstance(c.op, ast.USub):
        return c.operand
    if isinstance(c, ast.BinOp) and isinstance(c.op, ast.Mult) and \
            isinstance(c.left, ast.Constant):  # (-(k * x): (-k) * x, exactly)
        return ast.BinOp(_neg(c.left), ast.Mult(), c.right)
    return ast.UnaryOp(ast.USub(), c)


def _emit(fn: ast.FunctionDef, loop: ast.For | ast.While, s: list[str], finals: dict[str, _Form],
          temps: list[tuple[str, list[tuple[str, ast.expr]]]],
          fresh: Iterator[str], check: _Check) -> None:
    """The loop's body as `if <S floats>: <the affine turn> else: <the original>`; the
    affine turn's `check` kept in a flag, which raises after the loop where it failed (a
    call that raises runs on the Python backend)."""
    names: dict[str, str] = {}

    def rename(e: ast.expr) -> ast.expr:
        for n in ast.walk(e):
            if isinstance(n, ast.Name) and n.id.startswith("\0"):
                if n.id not in names:
                    names[n.id] = next(fresh)
                n.id = names[n.id]
        return e

    new: list[ast.stmt] = []
    for kind, pairs in temps:
        if kind == "keep" and len(pairs) > 1:  # (a tuple's: bound together, as it was)
            new.append(ast.Assign(
                [ast.Tuple([cast(ast.expr, ast.Name(name, ast.Store())) for name, _ in pairs],
                           ast.Store())],
                ast.Tuple([copy.deepcopy(value) for _, value in pairs], ast.Load())))
            continue
        for name, value in pairs:
            target = rename(ast.Name(name, ast.Store())) if kind == "temp" else \
                ast.Name(name, ast.Store())
            new.append(ast.Assign([target], rename(copy.deepcopy(value))))
    targets: list[ast.expr] = []
    values: list[ast.expr] = []
    for name in s:
        coefs = finals[name].coefs
        terms = [_mul(c, ast.Name(k, ast.Load())) for k, c in coefs.items()
                 if k not in (_CONST, name)]
        if _CONST in coefs:
            terms.append(coefs[_CONST])
        if name in coefs:  # (its own term last: the chain through it one product, one sum)
            terms.append(_mul(coefs[name], ast.Name(name, ast.Load())))
        total: ast.expr = terms[0] if terms else ast.Constant(0.0)
        for t in terms[1:]:
            total = ast.BinOp(total, ast.Add(), t)
        targets.append(ast.Name(name, ast.Store()))
        values.append(rename(total))
    block = block_of(loop, parents(fn))
    at = next(i for i, stmt in enumerate(block) if stmt is loop)
    # (a name the loop reads but does not assign, bound before it on every path: a
    # parameter, or bound by a statement of the loop's own block: tested once, before)
    before = {a.arg for a in fn.args.args} | {
        n.id for stmt in block[:at] for n in ast.walk(stmt)
        if isinstance(n, ast.Name) and not isinstance(n.ctx, ast.Load)}
    flag = next(fresh)
    turn = check.turn + [t for name, t in check.before if name not in before]
    new.append(ast.Assign([ast.Name(flag, ast.Store())],
                          rename(_sum(turn, ast.Name(flag, ast.Load())))))
    hoisted = [t for name, t in check.before if name in before]
    init: list[ast.stmt] = [
        ast.Assign([ast.Name(flag, ast.Store())], _sum(hoisted, ast.Constant(0.0)))]
    reset: list[ast.stmt] = [ast.Assign([ast.Name(flag, ast.Store())], ast.Constant(0.0))]
    # (not `flag > bound`: a NaN fails it too)
    passed: ast.expr = ast.Compare(ast.Name(flag, ast.Load()), [ast.LtE()],
                                   [ast.Constant(check.bound)])
    if check.least or check.least_before:
        least = next(fresh)
        made = check.least + [t for name, t in check.least_before if name not in before]
        if made:
            new.append(ast.Assign([ast.Name(least, ast.Store())], rename(ast.Call(
                ast.Name("min", ast.Load()), [*made, ast.Name(least, ast.Load())], []))))
        given = [t for name, t in check.least_before if name in before]
        limit = ast.Constant(math.sqrt(check.bound))
        init.append(ast.Assign([ast.Name(least, ast.Store())], ast.Call(
            ast.Name("min", ast.Load()), [*given, limit], []) if given else limit))
        reset.append(ast.Assign([ast.Name(least, ast.Store())], copy.deepcopy(limit)))
        passed = ast.BoolOp(ast.And(), [passed, ast.Compare(
            ast.Name(least, ast.Load()), [ast.GtE()],
            [ast.Constant(1 / math.sqrt(check.bound))])])
    message = ("a loop-carried value or factor near the float range's ends (or not "
               "finite): the loop's reordered turn could differ in finiteness from the "
               "original; the call runs on the Python backend")
    raised = ast.If(ast.UnaryOp(ast.Not(), passed), [ast.Raise(ast.Call(
        ast.Name("FloatingPointError", ast.Load()), [ast.Constant(message)], []), None)], [])
    for n in ast.walk(raised):
        ast.copy_location(n, loop)
    block.insert(at + 1, raised)
    new.append(ast.Assign([ast.Tuple(targets, ast.Store())], ast.Tuple(values, ast.Load()))
               if len(targets) > 1 else ast.Assign([targets[0]], values[0]))
    first = loop.body[0] if loop.body else loop
    for stmt in new:
        for n in ast.walk(stmt):
            ast.copy_location(n, first)
    if all(_float_before(block[:at], name) for name in s):
        # (each bound to a float constant right before the loop: Numba's type for it is a
        # float's, or a complex's where the turn makes one: numbers either way)
        loop.body = new
        for stmt in init:
            for n in ast.walk(stmt):
                ast.copy_location(n, loop)
        block[at:at] = init
        return
    # (The test reads copies made before the loop: Numba decides `isinstance` by the type
    # only of a name bound once, and prunes the branch it rules out.)
    copies = [next(fresh) for _ in s]
    tests: list[ast.expr] = [
        ast.Call(ast.Name("isinstance", ast.Load()),
                 [ast.Name(c, ast.Load()), ast.Name("float", ast.Load())], [])
        for c in copies]
    test = ast.BoolOp(ast.And(), tests) if len(tests) > 1 else tests[0]
    # (the names read before the loop tested only where the turn is rewritten: arrays run
    # the original)
    inits = [*reset, ast.If(copy.deepcopy(test), init, [])]
    for stmt in inits:
        for n in ast.walk(stmt):
            ast.copy_location(n, loop)
    block[at:at] = [ast.copy_location(ast.Assign([ast.Name(c, ast.Store())],
                                                 ast.Name(name, ast.Load())), loop)
                    for c, name in zip(copies, s, strict=True)] + inits
    guard = ast.If(test, new, loop.body)
    ast.copy_location(guard, first)
    loop.body = [guard]


def _float_before(before: list[ast.stmt], name: str) -> bool:
    """Whether the last statement of `before` that binds `name` binds it to a float
    constant (alone, or as an item of a tuple of names)."""
    for stmt in reversed(before):
        if not any(isinstance(n, ast.Name) and n.id == name and not isinstance(n.ctx, ast.Load)
                   for n in ast.walk(stmt)):
            continue
        for target, value in _pairs(stmt) or []:
            if target == name:
                if isinstance(value, ast.UnaryOp) and isinstance(value.op, ast.USub):
                    value = value.operand
                return isinstance(value, ast.Constant) and type(value.value) is float
        return False
    return False

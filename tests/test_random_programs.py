"""Differential testing: random programs in the supported subset, run by CPython and by
`tl.jit`, must agree.

The generator writes Python source text for a small module: a few constants, helper
functions (some returning tuples, some taking a function argument) and an entry point
`f(x: float, y: float, n: int) -> float`. Programs use nested if/elif/else, bounded
`while` loops whose trip count depends on the data, `for` loops over `range` (and
tuples) with `break`/`continue`/`else`, early returns inside loops and branches,
closures (nested `def`s and lambdas reading enclosing variables), tuples (built and
unpacked), float/int/bool arithmetic, `and`/`or`/`not`, conditional expressions and
calls between helpers.

Invariants the generator keeps, so that CPython and tapeless must agree:
- every variable is assigned before use on every path (names first bound inside a
  block are not used after it), and never changes type;
- float values stay bounded (each expression carries a bound; assignments wrap it in
  a squashing function when it could exceed `FLOAT_BOUND`), so nothing overflows and
  the entry point returns a finite float (fit for a later gradient check), except
  where it raises on purpose (below);
- loops always terminate: `while` loops count iterations against a constant limit,
  `range` arguments are reduced modulo small constants;
- a variable read by a nested function is never assigned again, nor assigned inside a
  loop that encloses the nested function's definition (tapeless refuses those
  programs, because Python closures would see the later values);
- operations that may raise (division by a variable, `math.sqrt` of a possibly
  negative number, ...) appear only in the entry point's `return` expressions, whose
  value is always used (tapeless drops unused pure computations: see "Differences
  from CPython" in docs/language.md); `assert` statements raise too. The exception
  types must then agree.

`generate_program(choices)` is usable on its own (e.g. with `RandomChoices(seed)`) by
other tests, such as gradient checks on the float parameters `x` and `y`;
`load_program` writes a program to a file and imports it.
"""

from __future__ import annotations

import importlib.util
import itertools
import math
import random
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import random_regressions as regressions
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tapeless as tl

FLOAT_BOUND = 10.0
INT_BOUND = 100

# --- sources of choices ---------------------------------------------------------------


class RandomChoices:
    """Choices from a seeded `random.Random` (for use outside hypothesis)."""

    def __init__(self, seed: int):
        self.rng = random.Random(seed)

    def int(self, lo: int, hi: int) -> int:
        return self.rng.randint(lo, hi)

    def chance(self, percent: int) -> bool:
        return self.rng.randrange(100) < percent

    def pick(self, seq: list) -> Any:
        return seq[self.int(0, len(seq) - 1)]


class ByteChoices(RandomChoices):
    """Choices read from a byte string drawn by hypothesis (one draw per program is much
    faster than one per choice), so failing programs still shrink: a zero byte is the
    simplest option (the first list element, the smallest number, "no"), and so is
    every choice after the bytes run out."""

    def __init__(self, data: bytes):
        self.data = data
        self.pos = 0

    def _byte(self) -> int:
        if self.pos >= len(self.data):
            return 0
        self.pos += 1
        return self.data[self.pos - 1]

    def int(self, lo: int, hi: int) -> int:
        assert hi - lo < 256
        return lo + self._byte() % (hi - lo + 1)

    def chance(self, percent: int) -> bool:
        return self._byte() % 100 >= 100 - percent


# --- the generator --------------------------------------------------------------------

F, I, B, T2, T3 = "float", "int", "bool", "tuple2", "tuple3"
FN1, FN2 = "fn1", "fn2"  # functions of one or two floats returning a float


@dataclass
class Scope:
    """A function being generated."""

    parent: Scope | None
    risky: bool = False  # may use operations that raise (entry point returns only)
    frozen: set[str] = field(default_factory=set)  # read by a nested function
    loops: list[set[str]] = field(default_factory=list)  # names assigned per open loop
    depth: int = 0  # nesting of function definitions


@dataclass(frozen=True)
class Var:
    type: str
    owner: Scope
    readonly: bool = False


@dataclass
class Helper:
    name: str
    params: list[str]  # parameter types
    ret: str
    defaults: int = 0  # how many trailing parameters have defaults
    param_names: list[str] = field(default_factory=list)


Env = dict[str, Var]


@dataclass
class Program:
    source: str
    entry: str = "f"


class ProgramGenerator:
    def __init__(self, choices: RandomChoices, size: int = 14, draws: bool = False):
        self.ch = choices
        self.size = size
        # Random draws from NumPy's global generator (`np.random.uniform(-1.0, 1.0)`,
        # ...) among the float leaves and as statements whose value is unused.
        self.draws = draws
        self.seeded = False  # the entry point seeds the global generator first
        self.counter = itertools.count()
        self.helpers: list[Helper] = []
        self.consts: dict[str, float] = {}
        self.fuel = 0

    def fresh(self, prefix: str) -> str:
        return f"{prefix}{next(self.counter)}"

    # --- module ---------------------------------------------------------------------

    def program(self) -> Program:
        ch = self.ch
        out = ["import math", "", "import numpy as np", ""]
        for _ in range(ch.int(0, 2)):
            name = f"C{len(self.consts)}"
            self.consts[name] = ch.pick([0.75, -1.25, 2.0, 0.5, 3.0])
            out.append(f"{name} = {self.consts[name]!r}")
        out.append("")
        for _ in range(ch.int(0, 3)):
            out += ["", *self.helper(), ""]
        entry = self.function("f", ["x", "y", "n"], [F, F, I], F, Scope(None, risky=True),
                              {}, 0, self.size)
        if self.seeded:  # each call draws the same numbers (for finite differences)
            entry.insert(1, "    np.random.seed(n % 4)")
        out += ["", *entry]
        return Program("\n".join(out) + "\n")

    def helper(self) -> list[str]:
        ch = self.ch
        name = f"h{len(self.helpers)}"
        kind = ch.int(0, 3)
        if kind == 0:
            params, ret = [F, F], F
        elif kind == 1:
            params, ret = [F, I], F
        elif kind == 2:
            params, ret = [F, F], T2
        else:
            params, ret = [FN1, F], F
        names = [f"a{i}" if t != FN1 else f"fn{i}" for i, t in enumerate(params)]
        defaults = 1 if params[-1] == F and ch.chance(30) else 0
        helper = Helper(name, params, ret, defaults, names)
        lines = self.function(name, names, params, ret, Scope(None), {}, 0, ch.int(1, 5),
                              defaults=defaults)
        self.helpers.append(helper)  # defined after its body: no recursion
        return lines

    def function(self, name: str, params: list[str], types: list[str], ret: str,
                 scope: Scope, env: Env, indent: int, fuel: int,
                 defaults: int = 0) -> list[str]:
        env = dict(env)
        for p, t in zip(params, types, strict=True):
            env[p] = Var(t, scope)
        sig = list(params)
        for k in range(len(sig) - defaults, len(sig)):
            sig[k] += "=0.5"
        saved, self.fuel = self.fuel, fuel
        body = self.block(env, scope, indent + 1, ret, in_loop=False, terminal=True,
                          count=max(fuel, 1), must_return=True)
        self.fuel = saved
        return ["    " * indent + f"def {name}({', '.join(sig)}):", *body]

    # --- statements -----------------------------------------------------------------

    def block(self, env: Env, scope: Scope, indent: int, ret: str, in_loop: bool,
              terminal: bool, count: int, must_return: bool = False) -> list[str]:
        """A statement list. `terminal`: it may end with return/break/continue."""
        env = dict(env)
        lines: list[str] = []
        pad = "    " * indent
        for _ in range(count):
            if self.fuel <= 0:
                break
            self.fuel -= 1
            if terminal and not must_return and self.ch.chance(20):
                lines += self.terminal(env, scope, pad, ret, in_loop)
                return lines
            lines += self.statement(env, scope, indent, ret, in_loop)
        if must_return:
            value, _ = self.value(ret, env, scope, 3, top=True)
            floats = self.readable(env, (F,))
            if ret == F and floats and self.ch.chance(70):  # depend on the locals
                used = [self.read(self.ch.pick(floats), env, scope) for _ in range(3)]
                value, _ = self.squash(f"{value} + {' + '.join(used)}", math.inf)
            lines.append(f"{pad}return {value}")
        if not lines:
            lines.append(f"{pad}pass")
        return lines

    def terminal(self, env: Env, scope: Scope, pad: str, ret: str, in_loop: bool) -> list[str]:
        kind = self.ch.pick(["return", "break", "continue", "continue"]) if in_loop \
            else "return"
        if kind == "return":
            value, _ = self.value(ret, env, scope, 2, top=True)
            return [f"{pad}return {value}"]
        return [pad + kind]

    def statement(self, env: Env, scope: Scope, indent: int, ret: str,
                  in_loop: bool) -> list[str]:
        ch = self.ch
        pad = "    " * indent
        if self.draws and ch.chance(10):  # drawn for nothing, but drawn
            return [f"{pad}{ch.pick(DRAWS)[0]}"]
        kind = ch.pick(["assign", "assign", "reassign", "aug", "tuple", "if", "if",
                        "while", "for", "for", "def", "lambda", "assert", "pass"])
        if kind == "reassign":
            target = self.assignable(env, scope, (F, I, B))
            if target is not None:
                value, _ = self.value(env[target].type, env, scope, 3)
                return [f"{pad}{target} = {value}"]
            kind = "assign"
        if kind == "assign":
            t = ch.pick([F, F, I, B])
            value, _ = self.value(t, env, scope, 3)
            return [f"{pad}{self.bind(env, scope, t)} = {value}"]
        if kind == "aug":
            target = self.assignable(env, scope, (F, I))
            if target is None:
                return [f"{pad}pass"]
            if env[target].type == F:
                e, _ = self.fexpr(env, scope, 2)
                op = ch.pick(["+=", "-=", "*="])
                if op == "*=":
                    return [f"{pad}{target} *= {ch.pick(['0.5', '-0.75', '0.9'])}"]
                return [f"{pad}{target} {op} 0.5 * math.tanh({e})"]
            e, _ = self.iexpr(env, scope, 2)
            return [f"{pad}{target} {ch.pick(['+=', '-='])} ({e}) % 3"]
        if kind == "tuple":
            return self.tuple_statement(env, scope, pad)
        if kind == "if":
            return self.if_statement(env, scope, indent, ret, in_loop)
        if kind == "while":
            return self.while_statement(env, scope, indent, ret)
        if kind == "for":
            return self.for_statement(env, scope, indent, ret)
        if kind == "def" and scope.depth < 2:
            return self.def_statement(env, scope, indent)
        if kind == "lambda" and scope.depth < 2:
            arity = ch.int(1, 2)
            code = self.lambda_expr(env, scope, arity)
            return [f"{pad}{self.bind(env, scope, FN1 if arity == 1 else FN2)} = {code}"]
        if kind == "assert":
            c, _ = self.bexpr(env, scope, 1)
            return [f"{pad}assert {c} or True"] if ch.chance(80) else [f"{pad}assert {c}"]
        return [f"{pad}pass"]

    def tuple_statement(self, env: Env, scope: Scope, pad: str) -> list[str]:
        ch = self.ch
        kind = ch.int(0, 4)
        tuples = self.readable(env, (T2, T3))
        if kind == 1:
            t = ch.pick([T2, T3])
            value, _ = self.value(t, env, scope, 2)
            return [f"{pad}{self.bind(env, scope, t)} = {value}"]
        if kind == 2 and tuples:
            src = ch.pick(tuples)
            n = 2 if env[src].type == T2 else 3
            self.read(src, env, scope)
            names = [self.bind(env, scope, F) for _ in range(n)]
            return [f"{pad}{', '.join(names)} = {src}"]
        if kind == 3:
            a = self.assignable(env, scope, (F,))
            b = self.assignable(env, scope, (F,))
            if a is not None and b is not None and a != b:
                return [f"{pad}{a}, {b} = {b}, {a}"]
        if kind == 4:
            tuple_helpers = [h for h in self.helpers if h.ret == T2]
            if tuple_helpers:
                call, _ = self.call_helper(ch.pick(tuple_helpers), env, scope, 1)
                names = [self.bind(env, scope, F) for _ in range(2)]
                return [f"{pad}{', '.join(names)} = {call}"]
        values = [self.fexpr(env, scope, 2)[0] for _ in range(2)]
        types = [F, ch.pick([F, I])]
        if types[1] == I:
            values[1] = self.iexpr(env, scope, 2)[0]
        names = [self.bind(env, scope, t) for t in types]
        return [f"{pad}{', '.join(names)} = {', '.join(values)}"]

    def if_statement(self, env: Env, scope: Scope, indent: int, ret: str,
                     in_loop: bool) -> list[str]:
        ch = self.ch
        pad = "    " * indent
        lines = [f"{pad}if {self.condition(env, scope)}:"]
        lines += self.block(env, scope, indent + 1, ret, in_loop, True, ch.int(1, 3))
        for _ in range(ch.int(0, 2) if ch.chance(40) else 0):
            lines.append(f"{pad}elif {self.condition(env, scope)}:")
            lines += self.block(env, scope, indent + 1, ret, in_loop, True, ch.int(1, 2))
        if ch.chance(60):
            lines.append(f"{pad}else:")
            lines += self.block(env, scope, indent + 1, ret, in_loop, True, ch.int(1, 3))
        return lines

    def condition(self, env: Env, scope: Scope) -> str:
        if self.ch.chance(10):
            return self.value(self.ch.pick([F, I]), env, scope, 1)[0]  # truthiness
        return self.bexpr(env, scope, 2)[0]

    def loop_body(self, env: Env, scope: Scope, indent: int, ret: str,
                  assigned: set[str]) -> list[str]:
        scope.loops.append(assigned)
        try:
            return self.block(env, scope, indent, ret, True, False, self.ch.int(1, 4))
        finally:
            scope.loops.pop()

    def while_statement(self, env: Env, scope: Scope, indent: int, ret: str) -> list[str]:
        ch = self.ch
        pad = "    " * indent
        counter = self.fresh("w")
        limit = ch.int(1, 8)
        env = dict(env)
        env[counter] = Var(I, scope, readonly=True)
        assigned = {counter}
        scope.loops.append(assigned)  # the test runs in the loop, like the body
        cond = self.bexpr(env, scope, 2)[0]
        scope.loops.pop()
        lines = [f"{pad}{counter} = 0"]
        if ch.chance(25):  # while True with a break
            lines += [f"{pad}while True:", f"{pad}    {counter} += 1",
                      f"{pad}    if {counter} > {limit} or {cond}:", f"{pad}        break"]
        else:
            test = f"{counter} < {limit} and {cond}" if ch.chance(50) else \
                f"({cond}) and {counter} < {limit}"
            lines += [f"{pad}while {test}:", f"{pad}    {counter} += 1"]
        lines += self.loop_body(env, scope, indent + 1, ret, assigned)
        return lines

    def for_statement(self, env: Env, scope: Scope, indent: int, ret: str) -> list[str]:
        ch = self.ch
        pad = "    " * indent
        env = dict(env)
        target = self.fresh("i")
        kind = ch.int(0, 4)
        tuples = self.readable(env, (T2, T3))
        if kind == 3 and tuples:
            src = ch.pick(tuples)
            self.read(src, env, scope)
            header, tt = f"for {target} in {src}:", F
        elif kind == 4 and tuples:
            src = ch.pick(tuples)
            self.read(src, env, scope)
            elem = self.fresh("e")
            env[elem] = Var(F, scope, readonly=True)
            header, tt = f"for {target}, {elem} in enumerate({src}):", I
        else:
            header, tt = f"for {target} in {self.range_args(env, scope)}:", I
        env[target] = Var(tt, scope, readonly=True)
        assigned = {target} | ({elem} if kind == 4 and tuples else set())
        lines = [pad + header] + self.loop_body(env, scope, indent + 1, ret, assigned)
        if ch.chance(15):
            outer = {k: v for k, v in env.items() if k not in assigned}
            lines.append(f"{pad}else:")
            lines += self.block(outer, scope, indent + 1, ret, False, False, ch.int(1, 2))
        return lines

    def range_args(self, env: Env, scope: Scope) -> str:
        ch = self.ch
        kind = ch.int(0, 3)
        if kind == 0:
            return f"range({ch.int(0, 5)})"
        stop = f"({self.iexpr(env, scope, 1)[0]}) % {ch.int(2, 6)}"
        if kind == 1:
            return f"range({stop})"
        if kind == 2:
            return f"range({ch.int(-2, 2)}, {stop})"
        return f"range({ch.int(3, 6)}, {stop}, {ch.pick([-1, -2, 2])})"

    def def_statement(self, env: Env, scope: Scope, indent: int) -> list[str]:
        arity = self.ch.int(1, 2)
        name = self.fresh("c")
        params = [self.fresh("z") for _ in range(arity)]
        inner = Scope(scope, depth=scope.depth + 1)
        lines = self.function(name, params, [F] * arity, F, inner,
                              self.captured(env, scope), indent, self.ch.int(0, 3))
        env[name] = Var(FN1 if arity == 1 else FN2, scope)
        self.note_assigned(name, scope)
        return lines

    def lambda_expr(self, env: Env, scope: Scope, arity: int) -> str:
        params = [self.fresh("z") for _ in range(arity)]
        inner = Scope(scope, depth=scope.depth + 1)
        inner_env = self.captured(env, scope)
        for p in params:
            inner_env[p] = Var(F, inner)
        body, _ = self.fexpr(inner_env, inner, 2)
        return f"(lambda {', '.join(params)}: {body})"

    # --- variables ------------------------------------------------------------------

    def captured(self, env: Env, scope: Scope) -> Env:
        """What a function defined here may read: not the variables that an enclosing
        loop of this scope assigns (the closure would capture one iteration's value)."""
        in_loops = set().union(*scope.loops) if scope.loops else set()
        return {k: Var(v.type, v.owner, readonly=True) for k, v in env.items()
                if v.owner is not scope or k not in in_loops}

    def bind(self, env: Env, scope: Scope, t: str) -> str:
        name = self.fresh({F: "v", I: "k", B: "b", T2: "t", T3: "t", FN1: "g",
                           FN2: "g"}[t])
        env[name] = Var(t, scope)
        self.note_assigned(name, scope)
        return name

    def note_assigned(self, name: str, scope: Scope) -> None:
        for s in scope.loops:
            s.add(name)

    def assignable(self, env: Env, scope: Scope, types: tuple[str, ...]) -> str | None:
        names = [k for k, v in env.items() if v.type in types and v.owner is scope
                 and not v.readonly and k not in scope.frozen]
        if not names:
            return None
        name = self.ch.pick(sorted(names))
        self.note_assigned(name, scope)
        return name

    def readable(self, env: Env, types: tuple[str, ...]) -> list[str]:
        return sorted(k for k, v in env.items() if v.type in types)

    def read(self, name: str, env: Env, scope: Scope) -> str:
        """Read a variable; one of an enclosing function must never change again."""
        owner = env[name].owner
        if owner is not scope:
            owner.frozen.add(name)
        return name

    # --- expressions ----------------------------------------------------------------

    def value(self, t: str, env: Env, scope: Scope, depth: int,
              top: bool = False) -> tuple[str, float]:
        """An expression of type `t` whose magnitude is at most the bound for `t`."""
        if t == F:
            if top and scope.risky and self.ch.chance(20):
                if self.ch.chance(50):
                    return self.risky(env, scope, depth), math.inf
                return self.fexpr(env, scope, depth, risky=True)[0], math.inf
            return self.squash(*self.fexpr(env, scope, depth))
        if t == I:
            code, bound = self.iexpr(env, scope, depth)
            if bound > INT_BOUND:
                return f"({code}) % {self.ch.int(3, 17)}", INT_BOUND
            return code, bound
        if t == B:
            return self.bexpr(env, scope, depth)
        if t in (T2, T3):
            n = 2 if t == T2 else 3
            return "(" + ", ".join(self.value(F, env, scope, depth - 1)[0]
                                   for _ in range(n)) + ")", FLOAT_BOUND
        raise AssertionError(t)

    def squash(self, code: str, bound: float) -> tuple[str, float]:
        if bound <= FLOAT_BOUND:
            return code, bound
        kind = self.ch.int(0, 3)
        if kind == 0:
            return f"math.tanh({code})", 1.0
        if kind == 1:
            return f"np.tanh({code})", 1.0
        if kind == 2:
            return f"math.atan({code})", 2.0
        return f"math.sin({code})", 1.0

    def fexpr(self, env: Env, scope: Scope, depth: int,
              risky: bool = False) -> tuple[str, float]:
        ch = self.ch
        if depth <= 0 or ch.chance(25):
            return self.fleaf(env, scope)
        d = depth - 1
        kind = ch.int(0, 16)
        if kind <= 2:
            (a, ba), (b, bb) = self.fexpr(env, scope, d, risky), self.fexpr(env, scope, d)
            op = ch.pick(["+", "-", "*"])
            return f"({a} {op} {b})", ba * bb if op == "*" else ba + bb
        if kind == 3:
            a, ba = self.fexpr(env, scope, d, risky)
            fn = ch.pick(["math.tanh", "math.sin", "math.cos", "np.tanh", "np.sin",
                          "math.atan"])
            return f"{fn}({a})", 2.0
        if kind == 4:
            a, ba = self.fexpr(env, scope, d)
            if ba > 5:
                return f"math.exp(math.tanh({a}))", math.e
            return f"{ch.pick(['math.exp', 'np.exp'])}({a})", math.exp(ba)
        if kind == 5:
            a, ba = self.fexpr(env, scope, d, risky)
            return ch.pick([f"abs({a})", f"(-{a})", f"np.abs({a})"]), ba
        if kind == 6:
            (a, ba), (b, bb) = self.fexpr(env, scope, d, risky), self.fexpr(env, scope, d)
            if ch.chance(50):
                return f"({a} / (1.0 + {b} * {b}))", ba
            return f"({a} / (2.0 + math.sin({b})))", ba
        if kind == 7:
            a, ba = self.fexpr(env, scope, d)
            return f"math.sqrt(1.0 + {a} * {a})", math.sqrt(1 + ba * ba)
        if kind == 8:
            (a, ba), (b, bb) = self.fexpr(env, scope, d, risky), self.fexpr(env, scope, d)
            return f"{ch.pick(['min', 'max'])}({a}, {b})", max(ba, bb)
        if kind == 9:
            c, _ = self.bexpr(env, scope, d)
            (a, ba), (b, bb) = self.fexpr(env, scope, d, risky), self.fexpr(env, scope, d)
            return f"({a} if {c} else {b})", max(ba, bb)
        if kind == 10:
            (a, ba), (b, bb) = self.fexpr(env, scope, d, risky), self.fexpr(env, scope, d)
            return f"({a} {ch.pick(['and', 'or'])} {b})", max(ba, bb)
        if kind == 11:
            a, ba = self.fexpr(env, scope, d)
            if ba > 30:
                a, ba = f"math.tanh({a})", 1.0
            return f"({a} ** {ch.int(2, 3)})", max(ba, 1.0) ** 3
        if kind == 12:
            call = self.call(env, scope, d)
            if call is not None:
                return call
        if kind == 13:
            a, ba = self.iexpr(env, scope, d)
            if ch.chance(50):
                b, bb = self.fexpr(env, scope, d)
                return f"({b} + {a})", ba + bb
            return f"float({a})", ba
        if kind == 14 and risky:
            return self.risky(env, scope, d), math.inf
        if kind == 15:
            a, ba = self.fexpr(env, scope, d, risky)
            return f"round({a}, {ch.int(0, 2)})", ba + 1
        return self.fleaf(env, scope)

    def risky(self, env: Env, scope: Scope, depth: int) -> str:
        """An operation that raises for some inputs (ZeroDivisionError, ValueError,
        OverflowError), where the entry point's arguments make that likely."""
        ch = self.ch
        a, _ = self.fexpr(env, scope, depth)
        divisor = ch.pick(["y", "float(n)", "(x - y)", "(y * y - 1.0)",
                           self.fexpr(env, scope, 0)[0]])
        form = ch.int(0, 7)
        if form == 0:
            return f"({a} / {divisor})"
        if form == 1:
            return f"({a} // {divisor})"
        if form == 2:
            return f"({a} % {divisor})"
        if form == 3:
            return f"math.sqrt({ch.pick(['x', 'y', a])})"
        if form == 4:
            return f"math.log({ch.pick(['x', 'y', a])})"
        if form == 5:
            return f"math.acos({ch.pick(['x', 'y', a])})"
        if form == 6:
            return f"math.exp(400.0 * {ch.pick(['x', 'y', a])})"
        return f"float(int({a}) // {ch.pick(['n', 'n - 1', self.iexpr(env, scope, 1)[0]])})"

    def fleaf(self, env: Env, scope: Scope) -> tuple[str, float]:
        ch = self.ch
        kind = ch.int(0, 4)
        floats = self.readable(env, (F,))
        if kind <= 1 and floats:
            return self.read(ch.pick(floats), env, scope), FLOAT_BOUND
        if kind == 2 and self.consts:
            name = ch.pick(sorted(self.consts))
            return name, abs(self.consts[name])
        if kind == 3:
            tuples = self.readable(env, (T2, T3))
            if tuples:
                t = ch.pick(tuples)
                k = ch.int(-2, 1) if env[t].type == T2 else ch.int(-3, 2)
                return f"{self.read(t, env, scope)}[{k}]", FLOAT_BOUND
        if kind == 4:
            ints = self.readable(env, (I,))
            if ints:
                return f"float({self.read(ch.pick(ints), env, scope)})", INT_BOUND
        if self.draws and ch.chance(30):
            return ch.pick(DRAWS)
        c = ch.pick([0.5, 1.0, 0.0, -1.5, 2.0, 0.25, -0.125, 3.0])
        return (f"({c!r})" if c < 0 else repr(c)), abs(c)

    def call(self, env: Env, scope: Scope, depth: int) -> tuple[str, float] | None:
        ch = self.ch
        fns = self.readable(env, (FN1, FN2))
        helpers = [h for h in self.helpers if h.ret == F]
        options = []
        if fns:
            options.append("closure")
        if helpers:
            options.append("helper")
        if scope.depth < 2:
            options.append("inline")
        tuple_helpers = [h for h in self.helpers if h.ret == T2]
        if tuple_helpers:
            options.append("tuple_helper")
        if not options:
            return None
        kind = ch.pick(options)
        if kind == "closure":
            fn = ch.pick(fns)
            arity = 1 if env[fn].type == FN1 else 2
            args = [self.fexpr(env, scope, depth)[0] for _ in range(arity)]
            return f"{self.read(fn, env, scope)}({', '.join(args)})", FLOAT_BOUND
        if kind == "helper":
            return self.call_helper(ch.pick(helpers), env, scope, depth)
        if kind == "tuple_helper":
            code, _ = self.call_helper(ch.pick(tuple_helpers), env, scope, depth)
            return f"{code}[{ch.int(0, 1)}]", FLOAT_BOUND
        arity = ch.int(1, 2)
        args = [self.fexpr(env, scope, depth)[0] for _ in range(arity)]
        return f"{self.lambda_expr(env, scope, arity)}({', '.join(args)})", FLOAT_BOUND

    def call_helper(self, h: Helper, env: Env, scope: Scope,
                    depth: int) -> tuple[str, float]:
        ch = self.ch
        args = []
        n = len(h.params) - (h.defaults if ch.chance(50) else 0)
        for t in h.params[:n]:
            if t == FN1:
                args.append(self.function_arg(env, scope))
            else:
                args.append(self.value(t, env, scope, depth)[0])
        if n >= 2 and ch.chance(25):  # pass the last one by keyword
            args[-1] = f"{h.param_names[n - 1]}={args[-1]}"
        return f"{h.name}({', '.join(args)})", FLOAT_BOUND

    def function_arg(self, env: Env, scope: Scope) -> str:
        fns = self.readable(env, (FN1,))
        one_arg = [h.name for h in self.helpers if h.params == [F, F] and h.defaults
                   and h.ret == F]
        kind = self.ch.int(0, 2)
        if kind == 1 and fns:
            return self.read(self.ch.pick(fns), env, scope)
        if kind == 2 and one_arg:
            return self.ch.pick(one_arg)
        return self.lambda_expr(env, scope, 1)

    def iexpr(self, env: Env, scope: Scope, depth: int) -> tuple[str, float]:
        ch = self.ch
        if depth <= 0 or ch.chance(30):
            ints = self.readable(env, (I,))
            if ints and ch.chance(70):
                return self.read(ch.pick(ints), env, scope), INT_BOUND
            tuples = self.readable(env, (T2, T3))
            if tuples and ch.chance(20):
                return f"len({self.read(ch.pick(tuples), env, scope)})", 3
            c = ch.int(-3, 7)
            return (f"({c})" if c < 0 else str(c)), abs(c)
        d = depth - 1
        kind = ch.int(0, 7)
        if kind <= 1:
            (a, ba), (b, bb) = self.iexpr(env, scope, d), self.iexpr(env, scope, d)
            op = ch.pick(["+", "-", "*"])
            return f"({a} {op} {b})", ba * bb if op == "*" else ba + bb
        if kind == 2:
            a, ba = self.iexpr(env, scope, d)
            c = ch.int(2, 5)
            return f"({a} {ch.pick(['//', '%'])} {c})", ba
        if kind == 3:
            a, ba = self.fexpr(env, scope, d)
            fn = ch.pick(["int", "math.floor", "math.ceil", "round"])
            return f"{fn}({a})", ba + 1
        if kind == 4:
            (a, ba), (b, bb) = self.iexpr(env, scope, d), self.iexpr(env, scope, d)
            return f"{ch.pick(['min', 'max'])}({a}, {b})", max(ba, bb)
        if kind == 5:
            c, _ = self.bexpr(env, scope, d)
            (a, ba), (b, bb) = self.iexpr(env, scope, d), self.iexpr(env, scope, d)
            return f"({a} if {c} else {b})", max(ba, bb)
        if kind == 6:
            a, ba = self.iexpr(env, scope, d)
            return ch.pick([f"abs({a})", f"(-{a})"]), ba
        a, ba = self.iexpr(env, scope, d)
        return f"({a} ** 2)", ba * ba

    def bexpr(self, env: Env, scope: Scope, depth: int) -> tuple[str, float]:
        ch = self.ch
        if depth <= 0 or ch.chance(20):
            bools = self.readable(env, (B,))
            if bools and ch.chance(60):
                return self.read(ch.pick(bools), env, scope), 1
            a, _ = self.fexpr(env, scope, 0)
            b, _ = self.fexpr(env, scope, 0)
            return f"({a} {ch.pick(['<', '>', '<=', '>='])} {b})", 1
        d = depth - 1
        kind = ch.int(0, 6)
        if kind <= 1:
            a, _ = self.fexpr(env, scope, d)
            b, _ = self.fexpr(env, scope, d)
            return f"({a} {ch.pick(['<', '>', '<=', '>=', '==', '!='])} {b})", 1
        if kind == 2:
            a, _ = self.iexpr(env, scope, d)
            b, _ = self.iexpr(env, scope, d)
            return f"({a} {ch.pick(['<', '>', '==', '!=', '>='])} {b})", 1
        if kind == 3:
            a, _ = self.fexpr(env, scope, d)
            b, _ = self.fexpr(env, scope, d)
            c, _ = self.fexpr(env, scope, d)
            return f"({a} < {b} <= {c})", 1
        if kind == 4:
            return f"(not {self.bexpr(env, scope, d)[0]})", 1
        if kind == 5:
            a, b = self.bexpr(env, scope, d)[0], self.bexpr(env, scope, d)[0]
            return f"({a} {ch.pick(['and', 'or'])} {b})", 1
        a, _ = self.iexpr(env, scope, d)
        return f"(({a}) % 2 == {ch.int(0, 1)})", 1


# Draws from NumPy's global generator, each a float of bounded size: (source, bound).
DRAWS = [("np.random.uniform(-1.0, 1.0)", 1.0), ("np.random.random()", 1.0),
         ("math.tanh(np.random.normal(0.5, 2.0))", 1.0), ("float(np.random.randint(-2, 3))", 2.0),
         ("float(np.random.choice(3))", 2.0)]


def generate_program(choices: RandomChoices, size: int = 14, draws: bool = False,
                     seeded: bool = False) -> Program:
    """A random program; its entry point is `f(x: float, y: float, n: int) -> float`
    (with `draws`, it draws random numbers from NumPy's global generator, which with
    `seeded` it seeds first)."""
    generator = ProgramGenerator(choices, size, draws)
    generator.seeded = seeded
    return generator.program()


# --- running programs -----------------------------------------------------------------

_modules = itertools.count()


def load_program(program: Program, directory: Path) -> Any:
    """Write the program to a fresh file (tapeless reads the source) and import it."""
    index = next(_modules)
    path = directory / f"random_program_{index}.py"
    path.write_text(program.source)
    spec = importlib.util.spec_from_file_location(f"_random_program_{index}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def outcome(fn: Any, args: tuple) -> tuple[str, Any]:
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        try:
            return "value", fn(*args)
        except tl.TapelessError:
            raise
        except Exception as exc:  # noqa: BLE001
            return "raised", type(exc)


def same_value(a: Any, b: Any) -> bool:
    if type(a) is not type(b):
        return False
    if isinstance(a, tuple):
        return len(a) == len(b) and all(same_value(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, (bool, int, np.bool_, np.integer)):
        return a == b
    if isinstance(a, (float, np.floating)):
        if math.isnan(a) or math.isnan(b):
            return math.isnan(a) and math.isnan(b)
        return a == b or math.isclose(a, b, rel_tol=1e-12, abs_tol=0.0)
    return bool(a == b)


def seeded_outcome(fn: Any, args: tuple, seed: int | None) -> tuple[str, Any, Any]:
    """The outcome from NumPy's global generator seeded with `seed` (None: as it is),
    and the generator's next draw after it (where the program drew what CPython drew,
    in the same order, the two runs leave it in the same state)."""
    if seed is not None:
        np.random.seed(seed)
    result = outcome(fn, args)
    return (*result, np.random.random() if seed is not None else None)


def check_program(program: Program, inputs: list[tuple], directory: Path,
                  draws: bool = False) -> None:
    module = load_program(program, directory)
    fn = getattr(module, program.entry)
    compiled = tl.jit(fn)
    for k, args in enumerate(inputs):
        expected = seeded_outcome(fn, args, k if draws else None)
        got = seeded_outcome(compiled, args, k if draws else None)
        if expected[0] != got[0] or expected[2] != got[2] or not (
                expected[1] is got[1] if expected[0] == "raised"
                else same_value(expected[1], got[1])):
            pytest.fail(f"f{args}: CPython gave {expected}, tapeless gave {got}\n\n"
                        f"--- program ---\n{program.source}\n"
                        f"--- generated ---\n{compiled.source}")


def programs(size: int = 14, draws: bool = False) -> st.SearchStrategy[Program]:
    return st.binary(min_size=PROGRAM_BYTES, max_size=PROGRAM_BYTES).map(
        lambda data: generate_program(ByteChoices(data), size, draws))


PROGRAM_BYTES = 1024


floats = st.one_of(st.sampled_from([0.0, 1.0, -1.0, 0.5, -2.5, 3.0]),
                   st.floats(-5.0, 5.0, allow_nan=False, width=64))
inputs = st.lists(st.tuples(floats, floats, st.integers(-3, 8)), min_size=4, max_size=4)


@pytest.fixture(scope="module")
def program_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("random_programs")


SETTINGS = settings(max_examples=300, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.function_scoped_fixture])


# tapeless raises the recursion limit on its first call; hypothesis notices.
quiet = pytest.mark.filterwarnings("ignore:The recursion limit will not be reset")


@quiet
@SETTINGS
@given(program=programs(), args=inputs)
def test_random_programs_agree_with_cpython(program: Program, args: list[tuple],
                                           program_dir: Path) -> None:
    check_program(program, args, program_dir)


@pytest.mark.parametrize("seed", range(40))
def test_larger_random_programs(seed: int, program_dir: Path) -> None:
    """Larger programs from a seeded generator (no shrinking, wider coverage)."""
    rng = random.Random(1000 + seed)
    program = generate_program(RandomChoices(seed), size=30)
    args = [(rng.uniform(-4, 4), rng.choice([0.0, rng.uniform(-4, 4)]), rng.randint(-3, 8))
            for _ in range(5)]
    check_program(program, args, program_dir)


@quiet
@settings(SETTINGS, max_examples=150)
@given(program=programs(draws=True), args=inputs)
def test_random_programs_with_draws_agree_with_cpython(program: Program, args: list[tuple],
                                                      program_dir: Path) -> None:
    """Programs drawing from NumPy's global generator (in expressions, branches, loops,
    short-circuit operands, helpers, closures, and unused): the same numbers as CPython,
    in the same order, and the generator left in the same state."""
    check_program(program, args, program_dir, draws=True)


@pytest.mark.parametrize("seed", range(15))
def test_larger_random_programs_with_draws(seed: int, program_dir: Path) -> None:
    rng = random.Random(3000 + seed)
    program = generate_program(RandomChoices(500 + seed), size=30, draws=True)
    args = [(rng.uniform(-4, 4), rng.choice([0.0, rng.uniform(-4, 4)]), rng.randint(-3, 8))
            for _ in range(5)]
    check_program(program, args, program_dir, draws=True)


def test_generator_is_deterministic() -> None:
    a = generate_program(RandomChoices(7)).source
    assert a == generate_program(RandomChoices(7)).source
    compile(a, "<generated>", "exec")


# --- what the generator found -----------------------------------------------------------


@pytest.mark.parametrize("name", [n for n in dir(regressions) if not n.startswith("_")
                                  and callable(getattr(regressions, n))
                                  and getattr(regressions, n).__module__ == regressions.__name__])
def test_regressions_found_by_the_generator(name: str) -> None:
    fn = getattr(regressions, name)
    compiled = tl.jit(fn)
    for x, n in itertools.product((-1.5, 0.5, 2.0, 4.0), (0, 1, 2, 3, 5)):
        expected, got = outcome(fn, (x, n)), outcome(compiled, (x, n))
        assert expected[0] == got[0] and (expected[1] is got[1] if expected[0] == "raised"
                                          else same_value(expected[1], got[1])), \
            f"{name}{(x, n)}: CPython gave {expected}, tapeless gave {got}\n{compiled.source}"


FEATURES = {
    "if/elif/else": r"^\s*elif .*:$", "while": r"^\s*while ", "for": r"^\s*for ",
    "break": r"^\s*break$", "continue": r"^\s*continue$", "for-else": r"^\s*else:$",
    "return in a block": r"^\s{8,}return ", "nested def": r"^\s+def c\d+\(",
    "lambda": r"lambda z\d+", "tuple unpacking": r"^\s*\w+, \w+(, \w+)? = ",
    "helper call": r"\bh\d\(", "function argument": r"def h\d\(fn0",
    "and/or": r" (and|or) ", "not": r"\bnot ", "conditional expression": r" if .* else ",
    "assert": r"^\s*assert ", "may raise": r"math\.log\(|math\.acos\(|// \(?(y|n)",
}


def test_generator_covers_the_subset() -> None:
    import re

    sources = [generate_program(RandomChoices(seed)).source for seed in range(200)]
    for feature, pattern in FEATURES.items():
        count = sum(bool(re.search(pattern, s, re.M)) for s in sources)
        assert count >= 5, f"only {count} of 200 programs use {feature}"

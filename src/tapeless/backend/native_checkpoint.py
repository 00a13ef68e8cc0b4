"""Checkpointed loops in native code.

Where a gradient's loop may save more than `tl.config.loop_memory` bytes, the optimizer
makes its forward/backward pair `runtime.checkpoint_for` / `runtime.checkpoint_while`
(`opt/checkpoint.py`), which take the loop bodies as function values: the forward body
pushes its saved values on a linked stack, the backward body pops them. Numba passes no
function as a value and types no linked stack, so this module rewrites such a pair, in
the generated module's source, as the same algorithm written out:

- each body becomes a function of the module (its captures passed as a tuple, evaluated
  where the closure was made), the forward one returning the values an iteration saves
  where it pushed them, the backward one reading them where it popped them;
- the forward loop runs the body, measures the first iteration's saved values
  (`_nt_saved_bytes`, counted as `runtime.saved_bytes` counts them), and keeps them in a
  list where all iterations fit the budget, nothing otherwise;
- the backward loop reads that list from its end, or reverses the iterations by the
  bisection of `runtime.checkpoint_while`, written as a loop with an explicit list of
  snapshots instead of a recursion: the forward body runs again, without keeping
  anything, from the last snapshot to the middle of the iterations left (a new
  snapshot), until the rest fits a segment; that segment runs keeping its saved values,
  which the backward body then reads from the end; the snapshot is dropped and the
  iterations before it come next.

So the schedule, the memory bound (a segment's saved values, within the budget, and one
snapshot per halving) and the order of every operation are those of the Python backend.
A pair written otherwise than the optimizer writes it is refused (`Unlowered`, with the
line): the program then runs on the Python backend, with that reason.
"""

from __future__ import annotations

import ast
import copy
import itertools
import sys
from collections.abc import Callable, Iterator

from ..runtime import WHILE_SNAPSHOTS
from .native_ast import parents as _parents
from .native_loops import _calls, _is_name, _own_nodes, _statement_lists


class Unlowered(Exception):
    """A checkpointed loop pair this module does not rewrite, and why."""

    def __init__(self, reason: str, line: int | None):
        super().__init__(reason)
        self.reason = reason
        self.line = line


def lower_checkpointed_loops(tree: ast.Module) -> int:
    """Rewrite every `checkpoint_for` / `checkpoint_while` pair of `tree` (see the
    module's docstring); returns how many. Raises `Unlowered` for a pair it cannot."""
    counter = itertools.count(1)
    done = 0
    for fn in [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)]:
        for stmts in list(_statement_lists(fn)):
            for stmt in list(stmts):
                call = _helper_call(stmt, "checkpoint_for")
                if call is not None:
                    _Pair(tree, fn, stmts, stmt, call, next(counter)).lower()
                    done += 1
                call = _helper_call(stmt, "checkpoint_while_loop")
                if call is not None:
                    _Pair(tree, fn, stmts, stmt, call, next(counter)).lower_while()
                    done += 1
    leftover = next((n for n in ast.walk(tree) if _calls(n, "checkpoint_while") or
                     _calls(n, "checkpoint_for") or _calls(n, "checkpoint_while_loop")),
                    None)
    if leftover is not None:
        raise Unlowered("a checkpointed loop whose forward and backward loops are not in "
                        "one block of one function", getattr(leftover, "lineno", None))
    if done:
        _drop_helper_aliases(tree)
    return done


def _helper_call(stmt: ast.stmt, helper: str) -> ast.Call | None:
    """The call of the runtime helper `helper` that `stmt` assigns to a name, if any."""
    if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and \
            isinstance(stmt.targets[0], ast.Name) and _calls(stmt.value, helper):
        assert isinstance(stmt.value, ast.Call)
        return stmt.value
    return None


class _Pair:
    """One checkpointed loop pair: `R = checkpoint_for(start, stop, step, J, slot, budget,
    init)` at `stmt` in `stmts` (a block of `fn`), and the `checkpoint_while(cond, B,
    bslot, binit)` after it in the same block whose stack is `R[slot]`."""

    def __init__(self, tree: ast.Module, fn: ast.FunctionDef, stmts: list[ast.stmt],
                 stmt: ast.stmt, call: ast.Call, number: int):
        self.tree, self.fn, self.stmts, self.stmt, self.call = tree, fn, stmts, stmt, call
        self.prefix = f"_nt_ck{number}"
        self.line = getattr(stmt, "lineno", None)

    def refuse(self, reason: str, node: ast.AST | None = None) -> Unlowered:
        line = getattr(node, "lineno", None) if node is not None else None
        return Unlowered(f"a checkpointed loop (loop_checkpoint) {reason}", line or self.line)

    def lower(self) -> None:
        call = self.call
        if len(call.args) != 7 or call.keywords or \
                not isinstance(call.args[3], ast.Name) or \
                not isinstance(call.args[4], ast.Constant) or \
                not isinstance(call.args[6], ast.Tuple):
            raise self.refuse("whose forward loop is not written as the optimizer writes it")
        start, stop, step, body, slot_node, budget, init = call.args
        assert isinstance(body, ast.Name) and isinstance(init, ast.Tuple) and \
            isinstance(slot_node, ast.Constant)
        slot, back_stmt, cond, back_body, bslot, binit = self.pair_of(slot_node.value, init)
        assert isinstance(self.stmt, ast.Assign)
        result = _name(self.stmt)
        forward = self.lift(body.id, "fwd", lambda f: _saving(f, slot + 1, self))
        backward = self.lift(back_body.id, "back", lambda f: _reading(f, bslot, self))
        p = self.prefix
        item = f"{p}_item"
        s, b, r, run, rerun, pop = self.statements(
            len(init.elts), len(binit.elts), slot, bslot, forward, backward,
            f"{p}_start + {p}_k * {p}_step")
        forward_text = f"""
{p}_start = START
{p}_step = STEP
{p}_n = len(range({p}_start, STOP, {p}_step))
{p}_budget = BUDGET
{_assign(s, [f"INIT{j}" for j in range(len(init.elts)) if j != slot])}
{p}_first = {_tuple(s)}
{p}_saved = []
{p}_segment = 0
for {p}_k in range({p}_n):
    {run}
    if {p}_k == 0:
        {p}_bytes = _nt_saved_bytes({item}, 0)
        if {p}_bytes * {p}_n > {p}_budget:
            {p}_segment = max(1, {p}_budget // {p}_bytes)
    if {p}_segment == 0:
        {p}_saved.append({item})
{result} = {_tuple(_with_slot(s, slot, "None"))}
"""
        backward_text = self.backward_text(back_stmt, b, bslot, r, rerun, pop,
                                           [(f"{p}_first", "0", f"{p}_n")])
        holes: dict[str, ast.expr] = {"START": start, "STOP": stop, "STEP": step,
                                      "BUDGET": budget}
        holes.update({f"INIT{j}": e for j, e in enumerate(init.elts) if j != slot})
        back_holes = {f"BINIT{j}": e for j, e in enumerate(binit.elts) if j != bslot}
        self.replace(back_stmt, _filled(backward_text, back_holes, back_stmt))
        self.replace(self.stmt, _filled(forward_text, holes, self.stmt))
        for name in (body.id, back_body.id, cond.id):
            self.drop_if_unused(name)

    def statements(self, n: int, n_back: int, slot: int, bslot: int, forward: _Lifted,
                   backward: _Lifted, *lead: str
                   ) -> tuple[list[str], list[str], list[str], str, str, str]:
        """The names of the forward loop's state (but its stack), of the backward loop's,
        of the forward state as the backward loop runs it again; and the statements
        running a forward iteration on the first (`lead`: the index first, for a `for`
        loop's body), on the third, and a backward iteration on saved values."""
        p = self.prefix
        s = [f"{p}_s{j}" for j in range(n) if j != slot]
        b = [f"{p}_b{j}" for j in range(n_back) if j != bslot]
        r = [f"{p}_r{j}" for j in range(n) if j != slot]
        item = f"{p}_item"
        run = f"{_targets(_with_slot(s, slot, item))} = {forward.call(*lead, *s)}"
        rerun = f"{_targets(_with_slot(r, slot, item))} = {forward.call(*lead, *r)}"
        pop = (f"{_targets(_with_slot(b, bslot, f'{p}_rest'))} = "
               f"{backward.call(*_with_slot(b, bslot, f'{p}_saved[{p}_j]'))}")
        return s, b, r, run, rerun, pop

    def pair_of(self, slot: object, init: ast.Tuple
                ) -> tuple[int, ast.Assign, ast.Name, ast.Name, int, ast.Tuple]:
        """The forward loop's stack `slot` (checked) and its backward loop: the statement,
        its condition (checked), body, stack slot and state."""
        if not isinstance(slot, int) or not 0 <= slot < len(init.elts):
            raise self.refuse("whose forward loop is not written as the optimizer writes it")
        assert isinstance(self.stmt, ast.Assign) and isinstance(self.stmt.targets[0], ast.Name)
        back_stmt, back_call = self.backward(self.stmt.targets[0].id, slot)
        cond, back_body, bslot_node, binit = back_call.args
        assert isinstance(cond, ast.Name) and isinstance(back_body, ast.Name)
        assert isinstance(bslot_node, ast.Constant) and isinstance(binit, ast.Tuple)
        bslot = bslot_node.value
        assert isinstance(bslot, int)
        self.check_cond(cond.id, bslot)
        return slot, back_stmt, cond, back_body, bslot, binit

    def lower_while(self) -> None:
        """The pair of a forward `while` loop: `R = checkpoint_while_loop(C, J, slot,
        budget, init)` (`runtime.checkpoint_while_loop`'s schedule: saving while the
        saved values fit the budget, then a snapshot of the state every `stride`
        iterations, the stride doubling where there are more than the limit)."""
        call = self.call
        if len(call.args) != 5 or call.keywords or \
                not isinstance(call.args[0], ast.Name) or \
                not isinstance(call.args[1], ast.Name) or \
                not isinstance(call.args[2], ast.Constant) or \
                not isinstance(call.args[4], ast.Tuple):
            raise self.refuse("whose forward loop is not written as the optimizer writes it")
        fcond, body, slot_node, budget, init = call.args
        assert isinstance(fcond, ast.Name) and isinstance(body, ast.Name) and \
            isinstance(init, ast.Tuple) and isinstance(slot_node, ast.Constant)
        slot, back_stmt, cond, back_body, bslot, binit = self.pair_of(slot_node.value, init)
        assert isinstance(self.stmt, ast.Assign)
        result = _name(self.stmt)
        test = self.lift(fcond.id, "test", lambda f: _without(f, slot, self))
        forward = self.lift(body.id, "fwd", lambda f: _saving(f, slot, self, lead=0))
        backward = self.lift(back_body.id, "back", lambda f: _reading(f, bslot, self))
        p = self.prefix
        item = f"{p}_item"
        s, b, r, run, rerun, pop = self.statements(
            len(init.elts), len(binit.elts), slot, bslot, forward, backward)
        forward_text = f"""
{p}_budget = BUDGET
{_assign(s, [f"INIT{j}" for j in range(len(init.elts)) if j != slot])}
{p}_parts = [{_tuple(s)}]
{p}_saved = []
{p}_n = 0
{p}_cap = 0
{p}_limit = 2
{p}_segment = 0
{p}_stride = 0
while {test.call(*s)}:
    if {p}_segment == 0 and {p}_n > 0 and {p}_n == {p}_cap:
        {p}_segment = {p}_cap
        {p}_stride = {p}_cap
        del {p}_saved[:]
        {p}_parts.append({_tuple(s)})
    {run}
    {p}_n += 1
    if {p}_n == 1:
        {p}_bytes = _nt_saved_bytes({item}, 0)
        {p}_cap = max(1, {p}_budget // {p}_bytes)
        {p}_limit = max(2, min({WHILE_SNAPSHOTS},
                               {p}_budget // max(1, 2 * _nt_saved_bytes({p}_parts[0], 0))))
    if {p}_segment == 0:
        {p}_saved.append({item})
    elif {p}_n % {p}_stride == 0:
        {p}_parts.append({_tuple(s)})
        if len({p}_parts) > {p}_limit:
            {p}_kept = {p}_parts[:1]
            for {p}_j in range(2, len({p}_parts), 2):
                {p}_kept.append({p}_parts[{p}_j])
            del {p}_parts[:]  # (Numba 0.68 crashes thinning in place, and refuses
            for {p}_j in range(len({p}_kept)):  # `parts = kept` where types vary)
                {p}_parts.append({p}_kept[{p}_j])
            del {p}_kept[:]
            {p}_stride *= 2
{result} = {_tuple(_with_slot(s, slot, "None"))}
"""
        starts = [(f"{p}_parts[{p}_part]", f"{p}_part * {p}_stride",
                   f"min(({p}_part + 1) * {p}_stride, {p}_n)")]
        backward_text = self.backward_text(back_stmt, b, bslot, r, rerun, pop, starts,
                                           f"{p}_part")
        holes: dict[str, ast.expr] = {"BUDGET": budget}
        holes.update({f"INIT{j}": e for j, e in enumerate(init.elts) if j != slot})
        back_holes = {f"BINIT{j}": e for j, e in enumerate(binit.elts) if j != bslot}
        self.replace(back_stmt, _filled(backward_text, back_holes, back_stmt))
        self.replace(self.stmt, _filled(forward_text, holes, self.stmt))
        for name in (body.id, back_body.id, cond.id, fcond.id):
            self.drop_if_unused(name)

    def backward_text(self, back_stmt: ast.Assign, b: list[str], bslot: int, r: list[str],
                      rerun: str, pop: str, parts: list[tuple[str, str, str]],
                      part: str | None = None) -> str:
        """The backward loop's statements: the saved values read from the end where the
        forward loop kept them, else each part (its starting state, first and end
        iteration; with `part`, a loop over `{prefix}_parts` from the last, named so)
        reversed by bisection."""
        p = self.prefix
        [(first, lo0, hi)] = parts
        outer, indent = "", ""
        if part is not None:
            outer = f"\n    for {part} in range(len({p}_parts) - 1, -1, -1):"
            indent = "    "
        body = f"""
{indent}    {p}_snapshots = [{first}]
{indent}    {p}_starts = [{lo0}]
{indent}    {p}_hi = {hi}
{indent}    while {p}_hi > {p}_starts[0]:
{indent}        {p}_lo = {p}_starts[-1]
{indent}        {_assign(r, [f"{p}_snapshots[-1]"], unpack=True)}
{indent}        while {p}_hi - {p}_lo > {p}_segment:
{indent}            {p}_mid = ({p}_lo + {p}_hi) // 2
{indent}            for {p}_k in range({p}_lo, {p}_mid):
{indent}                {rerun}
{indent}            {p}_snapshots.append({_tuple(r)})
{indent}            {p}_starts.append({p}_mid)
{indent}            {p}_lo = {p}_mid
{indent}        for {p}_k in range({p}_lo, {p}_hi):
{indent}            {rerun}
{indent}            {p}_saved.append({p}_item)
{indent}        for {p}_j in range(len({p}_saved) - 1, -1, -1):
{indent}            {pop}
{indent}        del {p}_saved[:]  # (not .clear(): Numba 0.68 leaks the items it drops)
{indent}        if {p}_lo > {p}_starts[0]:
{indent}            {p}_snapshots.pop()
{indent}            {p}_starts.pop()
{indent}        {p}_hi = {p}_lo"""
        return f"""
{_assign(b, [f"BINIT{j}" for j in range(len(b) + 1) if j != bslot])}
if {p}_segment == 0:
    for {p}_j in range(len({p}_saved) - 1, -1, -1):
        {pop}
else:{outer}{body}
{_name(back_stmt)} = {_tuple(_with_slot(b, bslot, "None"))}
"""

    def backward(self, result: str, slot: int) -> tuple[ast.Assign, ast.Call]:
        """The statement of the backward loop that pops `result[slot]`, and its call."""
        stack_names = set()
        for stmt in self.stmts[self.stmts.index(self.stmt) + 1:]:
            if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and \
                    isinstance(stmt.targets[0], ast.Name) and _item_of(stmt.value, result, slot):
                stack_names.add(stmt.targets[0].id)
                continue
            call = _helper_call(stmt, "checkpoint_while")
            if call is None or len(call.args) != 4 or call.keywords or \
                    not isinstance(call.args[0], ast.Name) or \
                    not isinstance(call.args[1], ast.Name) or \
                    not isinstance(call.args[2], ast.Constant) or \
                    not isinstance(call.args[3], ast.Tuple):
                continue
            bslot, binit = call.args[2].value, call.args[3]
            assert isinstance(binit, ast.Tuple) and isinstance(stmt, ast.Assign)
            if isinstance(bslot, int) and 0 <= bslot < len(binit.elts):
                stack = binit.elts[bslot]
                if _item_of(stack, result, slot) or \
                        isinstance(stack, ast.Name) and stack.id in stack_names:
                    return stmt, call
        raise self.refuse("whose backward loop is not in the block of its forward loop")

    def check_cond(self, name: str, slot: int) -> None:
        """The backward loop's condition must be `stack is not None` (it pops until the
        stack is empty: the rewrite runs it as many times as the forward loop pushed)."""
        cond = self.function(name)
        params = [a.arg for a in cond.args.args]
        body = cond.body
        test = body[0].value if len(body) == 1 and isinstance(body[0], ast.Return) else None
        if not (isinstance(test, ast.Compare) and slot < len(params) and
                _is_name(test.left, params[slot]) and len(test.ops) == 1 and
                isinstance(test.ops[0], ast.IsNot) and
                isinstance(test.comparators[0], ast.Constant) and
                test.comparators[0].value is None):
            raise self.refuse("whose backward loop does not pop its stack until it is empty",
                              cond)

    def function(self, name: str) -> ast.FunctionDef:
        """The definition of `name`: a closure defined in the pair's function, or a
        function of the module."""
        found = [n for n in _own_nodes(self.fn) if isinstance(n, ast.FunctionDef) and
                 n.name == name] or \
            [n for n in self.tree.body if isinstance(n, ast.FunctionDef) and n.name == name]
        if len(found) != 1:
            raise self.refuse(f"whose body {name} is not one function of the module")
        return found[0]

    def lift(self, name: str, role: str, rewrite: Callable[[ast.FunctionDef], None]
             ) -> _Lifted:
        """A function of the module made from the body `name`, rewritten by `rewrite`,
        with its captures (if a closure) as a last parameter `_nt_captures`; where the
        closure was made, `name` is bound to the tuple of its captures instead."""
        original = self.function(name)
        fn = copy.deepcopy(original)
        args = fn.args
        if args.vararg or args.kwarg or args.defaults or args.posonlyargs:
            raise self.refuse(f"whose body {name} takes *args, **kwargs or defaults",
                              original)
        rewrite(fn)
        captures = list(zip(args.kwonlyargs, args.kw_defaults, strict=True))
        fn.name = f"{self.prefix}_{role}"
        args.kwonlyargs, args.kw_defaults = [], []
        load = ast.Load()
        if captures:
            args.args.append(ast.arg("_nt_captures"))
            unpack = ast.Assign([ast.Tuple([ast.Name(a.arg, ast.Store()) for a, _ in captures],
                                           ast.Store())], ast.Name("_nt_captures", load))
            fn.body.insert(0, ast.copy_location(unpack, fn.body[0]))
        if original not in self.tree.body:
            # (The captures' values where the closure was made, as its defaults were.)
            values = ast.Tuple([d if d is not None else ast.Constant(None)
                                for _, d in captures], load)
            pack = ast.Assign([ast.Name(name, ast.Store())], values)
            _replace_statement(self.fn, original, [ast.copy_location(pack, original)])
        if sys.version_info >= (3, 12) and not hasattr(fn, "type_params"):
            setattr(fn, "type_params", [])  # noqa: B010 - (a field since 3.12)
        self.tree.body.append(fn)
        return _Lifted(fn.name, name if captures else None)

    def drop_if_unused(self, name: str) -> None:
        """Remove the definition of the body or condition `name` where nothing names
        it any more."""
        if any(_is_name(n, name) for n in ast.walk(self.tree)):
            return
        for n in list(_own_nodes(self.fn)):
            if isinstance(n, ast.FunctionDef) and n.name == name:
                _replace_statement(self.fn, n, [])
                return
        for n in self.tree.body:
            if isinstance(n, ast.FunctionDef) and n.name == name:
                self.tree.body.remove(n)
                return

    def replace(self, stmt: ast.stmt, new: list[ast.stmt]) -> None:
        i = next(i for i, s in enumerate(self.stmts) if s is stmt)
        self.stmts[i:i + 1] = new


class _Lifted:
    """A loop body lifted to a function of the module, and the name of the tuple of its
    captures (None: it has none)."""

    def __init__(self, name: str, captures: str | None):
        self.name, self.captures = name, captures

    def call(self, *args: str) -> str:
        extra = [self.captures] if self.captures is not None else []
        return f"{self.name}({', '.join([*args, *extra])})"


def _name(stmt: ast.Assign) -> str:
    target = stmt.targets[0]
    assert isinstance(target, ast.Name)
    return target.id


def _targets(names: list[str]) -> str:
    return ", ".join(names) + ","


def _tuple(names: list[str]) -> str:
    return f"({', '.join(names)},)" if names else "()"


def _item_of(node: ast.AST, name: str, index: int) -> bool:
    """Whether `node` is `name[index]`."""
    return isinstance(node, ast.Subscript) and _is_name(node.value, name) and \
        isinstance(node.slice, ast.Constant) and node.slice.value == index


def _with_slot(names: list[str], slot: int, value: str) -> list[str]:
    return [*names[:slot], value, *names[slot:]]


def _assign(names: list[str], values: list[str], unpack: bool = False) -> str:
    """`a, b, = x, y,` (with `unpack`: `a, b, = t`); `pass` where there is no name."""
    if not names:
        return "pass"
    return f"{_targets(names)} = {', '.join(values)}{'' if unpack else ','}"


def _filled(text: str, holes: dict[str, ast.expr], at: ast.stmt) -> list[ast.stmt]:
    """The statements `text`, its names in `holes` replaced by those expressions, every
    node placed at `at`'s line (an error in them points at the user's loop)."""

    class Fill(ast.NodeTransformer):
        def visit_Name(self, node: ast.Name) -> ast.expr:
            return holes.get(node.id, node)

    filled = ast.parse(text.strip("\n"))
    Fill().visit(filled)
    for node in ast.walk(filled):
        if isinstance(node, (ast.stmt, ast.expr)):
            ast.copy_location(node, at)
            node.end_lineno, node.end_col_offset = getattr(at, "end_lineno", None), \
                getattr(at, "end_col_offset", None)
    return filled.body


def _replace_statement(fn: ast.FunctionDef, old: ast.stmt, new: list[ast.stmt]) -> None:
    for stmts in _all_statement_lists(fn):
        for i, s in enumerate(stmts):
            if s is old:
                stmts[i:i + 1] = new
                return
    raise AssertionError("statement not found")


def _all_statement_lists(fn: ast.FunctionDef) -> Iterator[list[ast.stmt]]:
    for node in ast.walk(fn):
        for field in ("body", "orelse", "finalbody"):
            stmts = getattr(node, field, None)
            if isinstance(stmts, list) and stmts and isinstance(stmts[0], ast.stmt):
                yield stmts


def _without(fn: ast.FunctionDef, position: int, pair: _Pair) -> None:
    """The forward loop's condition `fn(*state)` without its parameter at `position`
    (the stack, which it does not read)."""
    params = fn.args.args
    if position >= len(params) or any(_is_name(n, params[position].arg)
                                      for n in ast.walk(fn)):
        raise pair.refuse("whose forward condition reads its stack", fn)
    del params[position]


def _saving(fn: ast.FunctionDef, position: int, pair: _Pair, lead: int = 1) -> None:
    """The forward body `fn(i, *state)` (`fn(*state)` with `lead` 0) whose parameter at
    `position` is the stack it pushes on once (`stack = (saved, stack)`, at the top of
    its body) as `fn(i, *others)` that returns `saved` there instead."""
    params = fn.args.args
    if position >= len(params):
        raise pair.refuse("whose forward body has fewer parameters than its state", fn)
    stack = params[position].arg
    del params[position]
    # (The push reads the parameter: the first statement naming the stack, alone.)
    at = next((i for i, st in enumerate(fn.body) if any(_is_name(n, stack)
                                                       for n in ast.walk(st))), None)
    push_stmt = fn.body[at] if at is not None else None
    parents = _parents(fn)
    reads = [n for n in ast.walk(push_stmt) if isinstance(n, ast.Name) and n.id == stack
             and isinstance(n.ctx, ast.Load)] if push_stmt is not None else []
    push = parents.get(id(reads[0])) if len(reads) == 1 else None
    if at is None or not isinstance(push, ast.Tuple) or len(push.elts) != 2 or \
            push.elts[1] is not reads[0]:
        raise pair.refuse("whose forward body does not push on its stack once", fn)
    assert push_stmt is not None
    stores = isinstance(push_stmt, ast.Assign) and len(push_stmt.targets) == 1 and \
        _is_name(push_stmt.targets[0], stack) and push_stmt.value is push
    if not (stores or isinstance(push_stmt, ast.Return)):
        raise pair.refuse("whose forward body does not push on its stack once, in a "
                          "statement of its own", push_stmt)
    last = fn.body[-1]
    out = last.value.elts if isinstance(last, ast.Return) and \
        isinstance(last.value, ast.Tuple) else []
    slot = position - lead
    returned = slot < len(out) and (out[slot] is push or stores and _is_name(out[slot], stack))
    if not returned or any(isinstance(n, (ast.FunctionDef, ast.Lambda)) and n is not fn and
                           any(_is_name(m, stack) for m in ast.walk(n)) for n in ast.walk(fn)):
        raise pair.refuse("whose forward body does not return the stack it pushed on", fn)
    saved = push.elts[0]

    class Push(ast.NodeTransformer):
        def visit_Tuple(self, node: ast.Tuple) -> ast.expr:
            if node is push:
                return saved
            self.generic_visit(node)
            return node

    fn.body[at] = Push().visit(push_stmt)


def _reading(fn: ast.FunctionDef, position: object, pair: _Pair) -> None:
    """The backward body `fn(*state)` whose state at `position` is the stack it pops
    (reading `stack[0]`, the saved values, and `stack[1]`, the rest) as one whose
    parameter there is the saved values themselves (the rest: None)."""
    params = fn.args.args
    if not isinstance(position, int) or position >= len(params):
        raise pair.refuse("whose backward body has fewer parameters than its state", fn)
    stack = params[position].arg
    parents = _parents(fn)
    for node in ast.walk(fn):
        if not (isinstance(node, ast.Name) and node.id == stack):
            continue
        parent = parents.get(id(node))
        if not (isinstance(node.ctx, ast.Load) and isinstance(parent, ast.Subscript) and
                parent.value is node and isinstance(parent.slice, ast.Constant) and
                parent.slice.value in (0, 1)):
            raise pair.refuse("whose backward body uses its stack other than by "
                              "stack[0] and stack[1]", node)

    class Pop(ast.NodeTransformer):
        def visit_Subscript(self, node: ast.Subscript) -> ast.expr:
            if _is_name(node.value, stack):
                assert isinstance(node.slice, ast.Constant)
                value = ast.Name(stack, ast.Load()) if node.slice.value == 0 else \
                    ast.Constant(None)
                return ast.copy_location(value, node)
            self.generic_visit(node)
            return node

    Pop().visit(fn)


def _drop_helper_aliases(tree: ast.Module) -> None:
    """Remove `_checkpoint_for = _rt.checkpoint_for` (and `_while`) where nothing reads
    the alias any more."""
    for fn in [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)]:
        for stmts in list(_all_statement_lists(fn)):
            for stmt in list(stmts):
                if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and \
                        isinstance(stmt.targets[0], ast.Name) and \
                        isinstance(stmt.value, ast.Attribute) and \
                        _is_name(stmt.value.value, "_rt") and \
                        stmt.value.attr.startswith("checkpoint_"):
                    name = stmt.targets[0].id
                    if not any(isinstance(n, ast.Name) and n.id == name and
                               isinstance(n.ctx, ast.Load) for n in ast.walk(fn)):
                        stmts.remove(stmt)
                        if not stmts:
                            stmts.append(ast.copy_location(ast.Pass(), stmt))

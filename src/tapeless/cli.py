"""The `tapeless` command: `demo`, `show FILE.py:FUNC [--grad] [--backend native]`,
`check FILE.py... [--entry NAME]...`."""

from __future__ import annotations

import argparse
import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .errors import TapelessError


def _load_function(target: str) -> Any:
    path, _, name = target.rpartition(":")
    if not path or not name:
        raise SystemExit(f"expected FILE.py:FUNCTION, got {target!r}")
    module_name = f"_tapeless_show_{Path(path).stem}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise SystemExit(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    fn = module
    for part in name.split("."):
        fn = getattr(fn, part)
    return fn


def cmd_show(args: argparse.Namespace) -> int:
    from .api import graph_of, jit
    from .backend import compile_graph
    from .grad_api import grad
    from .ir import print_graph
    from .ir.clone import copy_module
    from .opt import PASS_ORDER, optimize, passes_up_to

    fn = _load_function(args.target)
    if args.backend == "native":
        return _show_native(fn, args)
    transformed = grad(fn) if args.grad else jit(fn)
    what = "the gradient of " if args.grad else ""
    graph = graph_of(transformed)
    stage = args.stage
    if stage in ("parse", "ad"):
        if stage == "parse" and args.grad:
            graph = graph_of(fn)
        print(f"# IR of {what}{fn.__name__} before optimization\n")
        print(print_graph(graph))
        return 0
    enabled = None if stage in (None, "opt", "source") else passes_up_to(stage)
    graph = copy_module(graph)
    log = optimize(graph, enabled)
    if args.passes:
        print("# what each pass changed (rewrites applied), in pass order\n")
        for name in PASS_ORDER:
            if enabled is None or name in enabled:
                print(f"{name:24s} {log.counts.get(name, 0)}")
        per_round = ", ".join(f"{m}/{n}" + (f" (+{k})" if k else "")
                              for (m, n), k in zip(log.rounds, log.skipped, strict=True))
        print(f"\n# {len(log.rounds)} rounds; nodes matched / nodes in the program (+ nodes"
              f" of functions already inlined everywhere, not matched), per round:"
              f" {per_round}\n")
    if stage not in ("source",):
        label = "all passes" if enabled is None else f"passes up to {stage}"
        print(f"# IR of {what}{fn.__name__} after {label}\n")
        print(print_graph(graph))
    if stage in (None, "opt", "source"):
        print(f"# generated Python source of {what}{fn.__name__}\n")
        print(compile_graph(graph).source)
    return 0


def _show_native(fn: Any, args: argparse.Namespace) -> int:
    """Which compiled programs run natively, and where and why the others fall back."""
    import math

    import numpy as np

    from .api import jit
    from .backend.native import NativeFunction, native_source
    from .grad_api import grad

    transformed = grad(fn, backend="native") if args.grad else jit(fn, backend="native")
    transformed.start_from_cache = False  # (built, to show it: not started from the cache)
    what = "the gradient of " if args.grad else ""
    if args.args is not None:
        values = eval(f"({args.args},)", {"np": np, "math": math})  # noqa: S307 - the user's
        transformed(*values)
        entries = list(transformed._compiled.values())
        when = f"called with ({args.args})"
    else:
        entries = [transformed._get()]
        when = "not called (pass --args to let Numba type it for arguments)"
    print(f"# native backend: {what}{fn.__name__}, {when}\n")
    for compiled in entries:
        entry = compiled.fn
        if not isinstance(entry, NativeFunction):
            continue
        if entry.fallback is not None:
            print(f"falls back: {entry.fallback}")
        elif entry.is_native and not entry.first:
            print(f"runs natively: {compiled.fn.module.root if entry.module else ''}")
        else:
            print("lowered for Numba; Numba types it at the first call")
        if entry.fallback is None:
            print("\n# the module Numba compiles\n")
            print(native_source(compiled))
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    from .frontend.check import check_file

    total = 0
    for path in args.files:
        notes: list[str] = []
        findings = check_file(path, args.entry, notes)
        for note in notes:
            print(f"note: {note}", file=sys.stderr)
        for f in findings:
            print(f)
            print()
        n = len(findings)
        total += n
        print(f"{n} finding{'s' if n != 1 else ''} in {path}")
    return 1 if total else 0


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    return run_demo()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tapeless", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    show = sub.add_parser("show", help="print the IR and generated code of a function")
    show.add_argument("target", help="FILE.py:FUNCTION")
    show.add_argument("--grad", action="store_true", help="show the gradient's code")
    show.add_argument("--stage", help="parse, ad, opt, source, or the name of an optimizer "
                      "pass: show the IR after it")
    show.add_argument("--passes", action="store_true",
                      help="list how many rewrites each optimizer pass made")
    show.add_argument("--backend", choices=["python", "native"], default="python",
                      help="native: say which compiled programs run as native code (Numba) "
                      "and why the others fall back to the Python backend, at file:line")
    show.add_argument("--args", metavar="EXPR", help="with --backend native: arguments to "
                      "call the function with (a Python expression; np and math are known)")
    show.set_defaults(run=cmd_show)
    check = sub.add_parser("check", help="report constructs tapeless cannot compile in the "
                           "functions of a file that are compiled")
    check.add_argument("files", nargs="+", metavar="FILE")
    check.add_argument("--entry", action="append", default=[], metavar="NAME",
                       help="also check this function (NAME or CLASS.METHOD) as compiled, "
                       "with what it calls; repeatable")
    check.set_defaults(run=cmd_check)
    demo = sub.add_parser("demo", help="compile an example model and run it")
    demo.set_defaults(run=cmd_demo)
    args = parser.parse_args(argv)
    run: Callable[[argparse.Namespace], int] = args.run
    try:
        return run(args)
    except TapelessError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

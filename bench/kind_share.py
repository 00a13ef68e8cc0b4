"""How much of a first call's compile time kind inference takes, and how much of it an
incremental inference (kinds kept across optimizer rounds) could at most save.

    python bench/kind_share.py                   # every workload, one fresh process each
    python bench/kind_share.py --only gmm,lstm   # some workloads (keys below)

Per workload, in a fresh process: the CPU time (`time.thread_time`) of the first call
(compile and one call) and of `optimize`; the optimizer's rounds; the CPU time spent
inferring kinds (outermost `kinds._kind` calls: memo hits are not counted), in all
rounds and in the rounds after the first; and, of the kind memo entries ((node id,
assumptions) -> kind) that the rounds after the first computed, the share an earlier
round had computed with the same result. That share of the later rounds' kind time is
what an exact incremental inference could at most keep (before the cost of its own
bookkeeping): the bound printed last, as a share of the first call. The script wraps
private functions of `tapeless.opt` to measure them: it fails loudly if they are renamed.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def _maml() -> tuple[Callable, tuple]:
    import numpy as np

    import tapeless as tl
    sys.path.insert(0, os.path.join(ROOT, "examples"))
    import maml

    from lib import data

    x, y = data.digits()
    rng = np.random.default_rng(0)
    episodes = [maml.sample_episode(rng, x, y, maml.META_TRAIN_CLASSES, 5, 5, 5)
                for _ in range(4)]
    model = maml.classifier(rng, [64, 64, 64], 5)
    return tl.value_and_grad(maml.meta_loss), (model, episodes, 3, 0.5, False, False)


def _workloads() -> dict[str, Callable[[], tuple[Callable, tuple]]]:
    sys.path.insert(0, HERE)
    import control_programs as C
    import workloads as W

    import tapeless as tl
    return {
        "gmm": lambda: (tl.grad(W.gmm_objective, argnums=(0, 1, 2, 3)),
                        W.gmm_data(1000, 10, 25)),
        "lstm": lambda: (tl.grad(W.lstm_objective, argnums=(0, 1)), W.lstm_data(2, 1024)),
        "scalar_loop": lambda: (tl.grad(W.scalar_loop), (0.5,)),
        "saddle": lambda: (tl.grad(C.saddle_value, argnums=(0, 1)), C.saddle_data()),
        "aimed_landing": lambda: (tl.grad(C.aimed_landing, argnums=0), C.particle_data()),
        "maml": _maml,
    }


KEYS = ["gmm", "lstm", "scalar_loop", "saddle", "aimed_landing", "maml"]


def measure(key: str) -> str:
    """One workload, in this process (which must not have compiled it yet)."""
    from tapeless import api
    from tapeless.opt import driver, kinds, loop_facts

    in_kinds = [0.0]
    depth = [0]
    infer = kinds._kind

    def timed_kind(*args: Any) -> Any:
        if depth[0]:
            return infer(*args)
        depth[0] = 1
        t = time.thread_time()
        try:
            return infer(*args)
        finally:
            in_kinds[0] += time.thread_time() - t
            depth[0] = 0

    kinds._kind = timed_kind  # (measuring)
    made: list[Any] = []
    facts_init = loop_facts.LoopFacts.__init__

    def init(self: Any, *args: Any, **kw: Any) -> None:
        facts_init(self, *args, **kw)
        made.append(self)

    loop_facts.LoopFacts.__init__ = init  # (measuring)
    one_round = driver._round
    rounds: list[tuple[float, dict]] = []

    def timed_round(*args: Any, **kw: Any) -> Any:
        first, before = len(made), in_kinds[0]
        out = one_round(*args, **kw)
        memo: dict = {}
        for f in made[first:]:
            memo.update(f.kinds)
        rounds.append((in_kinds[0] - before, memo))
        return out

    driver._round = timed_round  # (measuring)
    in_opt = [0.0]
    optimize = api.optimize

    def timed_optimize(*args: Any, **kw: Any) -> Any:
        t = time.thread_time()
        try:
            return optimize(*args, **kw)
        finally:
            in_opt[0] += time.thread_time() - t

    api.optimize = timed_optimize  # (measuring)
    fn, args = _workloads()[key]()
    t = time.thread_time()
    fn(*args)
    first = time.thread_time() - t
    total = sum(k for k, _ in rounds)
    later = total - rounds[0][0]
    seen: dict = {}
    same = count = 0
    for i, (_, memo) in enumerate(rounds):
        if i:
            same += sum(1 for k, v in memo.items() if k in seen and seen[k] == v)
            count += len(memo)
        seen.update(memo)
    kept = same / count if count else 0.0
    return (f"| {key} | {first:.2f} | {in_opt[0]:.2f} | {len(rounds)} | "
            f"{total:.3f} ({total / first:.0%}) | {later:.3f} ({later / first:.0%}) | "
            f"{kept:.0%} | {kept * later / first:.1%} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default=",".join(KEYS), help="comma-separated keys")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # (the fresh process's workload)
    args = parser.parse_args()
    if args.one:
        print(measure(args.one))
        return
    print("| workload | first call CPU s | optimize s | rounds | kinds s (of first call) "
          "| kinds in rounds 2+ s (of first call) | later rounds' kinds an earlier round "
          "had, same | bound on the saving (of first call) |")
    print("|---|---|---|---|---|---|---|---|")
    for key in args.only.split(","):
        if key not in KEYS:
            raise SystemExit(f"unknown workload {key!r}; workloads: {', '.join(KEYS)}")
        out = subprocess.run([sys.executable, os.path.abspath(__file__), "--one", key],
                             capture_output=True, text=True, cwd=ROOT)
        if out.returncode:
            raise SystemExit(out.stderr)
        print(out.stdout.strip().splitlines()[-1])


if __name__ == "__main__":
    main()

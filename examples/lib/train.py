"""A training loop: one compiled step (value, gradient and update in one call) and a tqdm
progress bar."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from tqdm import tqdm

import tapeless as tl


def train_step(value_and_grad, optimizer, params, state, *batch):
    """One step of `optimizer` with the cost's `value_and_grad` (`tl.value_and_grad(cost)`):
    returns (params, state, cost)."""
    value, grads = value_and_grad(params, *batch)
    params, state = optimizer.step(params, grads, state)
    return params, state, value


# (The cost's derivative is made by the caller, `tl.value_and_grad(cost)`, and passed in.
# Writing `tl.value_and_grad(cost)` here, on an argument `cost`, is refused by the
# compiler: "the function passed to tapeless.value_and_grad inside compiled code must be
# known when compiling".)
compiled_step = tl.jit(train_step)


def minibatches(rng: np.random.Generator, n: int, batch_size: int) -> Iterator[np.ndarray]:
    """Index arrays of shuffled minibatches of `batch_size` (the remainder is dropped, so
    every batch has one shape and one compiled step), forever."""
    while True:
        order = rng.permutation(n)
        for start in range(0, n - batch_size + 1, batch_size):
            yield order[start:start + batch_size]


@dataclass
class History:
    steps: list[int] = field(default_factory=list)
    values: list[float] = field(default_factory=list)
    seconds: float = 0.0


def fit(value_and_grad: Callable[..., Any], params: Any, optimizer: Any,
        data: tuple[np.ndarray, ...], steps: int, batch_size: int, rng: np.random.Generator,
        desc: str = "train", quiet: bool = False,
        log_every: int = 10) -> tuple[Any, History]:
    """Minimize `cost(params, *batch)`, given `value_and_grad = tl.value_and_grad(cost)`,
    over minibatches of the arrays in `data` (split along their first axis) for `steps`
    steps. Items of `data` that are not arrays (a random generator, a constant) are
    given whole to every step."""
    state = optimizer.init(params)
    history = History()
    n = next(len(d) for d in data if isinstance(d, np.ndarray))
    batches = minibatches(rng, n, min(batch_size, n))
    start = time.perf_counter()
    bar = tqdm(range(steps), desc=desc, disable=quiet, leave=False)
    for step in bar:
        idx = next(batches)
        batch = tuple(d[idx] if isinstance(d, np.ndarray) else d for d in data)
        params, state, value = compiled_step(value_and_grad, optimizer, params, state,
                                             *batch)
        if step % log_every == 0 or step == steps - 1:
            history.steps.append(step)
            history.values.append(float(value))
            bar.set_postfix(cost=f"{float(value):.4f}")
    history.seconds = time.perf_counter() - start
    return params, history

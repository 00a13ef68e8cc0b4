"""Optimizers over pytrees, written with `tl.tree_map` so one definition serves a tuple of
arrays, a dict or a model dataclass. Each is a frozen dataclass of hyperparameters with
`init(params) -> state` and `step(params, grads, state) -> (params, state)`; both
compile (the optimizer is passed to compiled code as data, so a new learning rate does not
compile again)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

import tapeless as tl


@dataclass(frozen=True)
class SGD:
    lr: float = 0.1

    def init(self, params):
        return 0

    def step(self, params, grads, state):
        return tl.tree_map(lambda p, g: p - self.lr * g, params, grads), state


@dataclass(frozen=True)
class Momentum:
    lr: float = 0.1
    beta: float = 0.9

    def init(self, params):
        return tl.tree_map(np.zeros_like, params)

    def step(self, params, grads, velocity):
        velocity = tl.tree_map(lambda v, g: self.beta * v + g, velocity, grads)
        return tl.tree_map(lambda p, v: p - self.lr * v, params, velocity), velocity


@dataclass(frozen=True)
class AdamState:
    m: object
    v: object
    step: float


@dataclass(frozen=True)
class Adam:
    lr: float = 1e-3
    b1: float = 0.9
    b2: float = 0.999
    eps: float = 1e-8

    def init(self, params):
        return AdamState(tl.tree_map(np.zeros_like, params), tl.tree_map(np.zeros_like, params),
                         0.0)

    def step(self, params, grads, state):
        step = state.step + 1.0
        m = tl.tree_map(lambda m, g: self.b1 * m + (1.0 - self.b1) * g, state.m, grads)
        v = tl.tree_map(lambda v, g: self.b2 * v + (1.0 - self.b2) * g * g, state.v, grads)
        scale = self.lr * np.sqrt(1.0 - self.b2 ** step) / (1.0 - self.b1 ** step)
        params = tl.tree_map(lambda p, m, v: p - scale * m / (np.sqrt(v) + self.eps),
                             params, m, v)
        return params, AdamState(m, v, step)

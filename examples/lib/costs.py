"""Costs: functions of outputs and targets returning a number. A cost of a model is
then `lambda model, x, y: cross_entropy(model(x), y)`, or any function like it."""

from __future__ import annotations

import numpy as np
from scipy.special import logsumexp


def log_softmax(logits):
    return logits - logsumexp(logits, axis=-1, keepdims=True)


def cross_entropy(logits, labels):
    """Mean negative log-likelihood of integer `labels` under softmax(`logits`)."""
    logp = log_softmax(logits)
    return -np.mean(logp[np.arange(logits.shape[0]), labels])


def cross_entropy_each(logits, labels):
    """The negative log-likelihood of each example."""
    logp = log_softmax(logits)
    return -logp[np.arange(logits.shape[0]), labels]


def soft_cross_entropy(logits, targets, weights):
    """Weighted cross-entropy against one-hot (or soft) `targets`: sum_i w_i nll_i, so
    the weights should sum to 1; examples with weight 0 (padding) count for nothing.

    (Normalizing here, `np.sum(weights * nll) / np.sum(weights)`, is what one would
    write, but its second derivative fails in tapeless -- "unsupported operand type(s)
    for /: '_Zero' and 'float'" -- when the loss is differentiated through a `tl.grad`
    of it: the callers normalize the weights instead.)"""
    nll = -np.sum(targets * log_softmax(logits), axis=-1)
    return np.sum(weights * nll)


def mse(predictions, targets):
    return np.mean((predictions - targets) ** 2)


def reconstruction(x_hat, x, eps=1e-7):
    """Cross-entropy reconstruction cost for inputs in [0, 1], summed over features and
    averaged over examples (the cost of Bengio et al. 2006 and Vincent et al. 2008)."""
    x_hat = np.clip(x_hat, eps, 1.0 - eps)
    return -np.mean(np.sum(x * np.log(x_hat) + (1.0 - x) * np.log(1.0 - x_hat), axis=-1))


def accuracy(logits: np.ndarray, labels: np.ndarray) -> float:
    return float(np.mean(np.argmax(logits, axis=-1) == labels))

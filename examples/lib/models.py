"""Models as frozen dataclasses whose fields are their parameters.

`tl.grad(loss)(model, x, y)` gives a model of the same class holding the gradients, and
`tl.tree_map` maps over the fields, so an optimizer never needs to know the class."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import expit


def sigmoid(z):
    return expit(z)


@dataclass(frozen=True)
class Dense:
    """An affine layer: x @ W + b."""

    W: np.ndarray
    b: np.ndarray

    def __call__(self, x):
        return x @ self.W + self.b


def dense(rng: np.random.Generator, n_in: int, n_out: int, scale: float | None = None) -> Dense:
    """Uniform initialization in +-sqrt(6 / (n_in + n_out)) (Glorot and Bengio, 2010)."""
    if scale is None:
        scale = float(np.sqrt(6.0 / (n_in + n_out)))
    return Dense(rng.uniform(-scale, scale, size=(n_in, n_out)), np.zeros(n_out))


@dataclass(frozen=True)
class MLP:
    """Dense layers with tanh between them, linear output."""

    layers: tuple

    def hidden(self, x):
        h = x
        for layer in self.layers[:-1]:
            h = np.tanh(layer(h))
        return h

    def __call__(self, x):
        return self.layers[-1](self.hidden(x))


@dataclass(frozen=True)
class SigmoidMLP:
    """Dense layers with logistic sigmoids between them, linear output (the networks of
    Bengio et al. 2006).

    (A separate class, not a `sigmoid: bool` field of MLP: `tl.value_and_grad(cost)`
    called from Python refuses a model with a bool field -- "it is (or contains) a bool,
    and only floating-point values can be differentiated" -- though the same gradient
    taken inside compiled code accepts it.)"""

    layers: tuple

    def hidden(self, x):
        h = x
        for layer in self.layers[:-1]:
            h = expit(layer(h))
        return h

    def __call__(self, x):
        return self.layers[-1](self.hidden(x))


def mlp(rng: np.random.Generator, sizes: list[int]) -> MLP:
    return MLP(tuple(dense(rng, a, b) for a, b in zip(sizes[:-1], sizes[1:], strict=True)))


@dataclass(frozen=True)
class Autoencoder:
    """One sigmoid layer of an autoencoder (Bengio et al. 2006; Vincent et al. 2008)."""

    encoder: Dense
    decoder: Dense

    # (Named `code`/`reconstruct`, not `encode`/`decode`: tapeless refuses a method
    # of a user's object that shares a name with a str method.)
    def code(self, x):
        return expit(self.encoder(x))

    def reconstruct(self, h):
        return expit(self.decoder(h))

    def __call__(self, x):
        return self.reconstruct(self.code(x))


def autoencoder(rng: np.random.Generator, n_in: int, n_hidden: int) -> Autoencoder:
    return Autoencoder(dense(rng, n_in, n_hidden), dense(rng, n_hidden, n_in))


@dataclass(frozen=True)
class RNNCell:
    """h' = tanh(x Wx + h Wh + b)."""

    Wx: np.ndarray
    Wh: np.ndarray
    b: np.ndarray

    def __call__(self, h, x):
        return np.tanh(x @ self.Wx + h @ self.Wh + self.b)


@dataclass(frozen=True)
class LSTMCell:
    """An LSTM cell (Hochreiter and Schmidhuber 1997, with a forget gate): the state is
    the pair (h, c); the four gates come from one matrix product."""

    Wx: np.ndarray
    Wh: np.ndarray
    b: np.ndarray

    def __call__(self, state, x):
        h, c = state
        n = h.shape[-1]
        z = x @ self.Wx + h @ self.Wh + self.b
        i = expit(z[..., :n])
        f = expit(z[..., n:2 * n])
        o = expit(z[..., 2 * n:3 * n])
        g = np.tanh(z[..., 3 * n:])
        c = f * c + i * g
        return o * np.tanh(c), c


def rnn_cell(rng: np.random.Generator, n_in: int, n_hidden: int) -> RNNCell:
    return RNNCell(dense(rng, n_in, n_hidden).W, dense(rng, n_hidden, n_hidden).W,
                   np.zeros(n_hidden))


def lstm_cell(rng: np.random.Generator, n_in: int, n_hidden: int) -> LSTMCell:
    b = np.zeros(4 * n_hidden)
    b[n_hidden:2 * n_hidden] = 1.0  # forget gates start open
    return LSTMCell(dense(rng, n_in, 4 * n_hidden).W, dense(rng, n_hidden, 4 * n_hidden).W, b)


@dataclass(frozen=True)
class WindowLM:
    """A character model over a window of the previous characters (Bengio et al. 2003):
    embed each character, concatenate, one tanh layer, logits over the vocabulary."""

    embed: np.ndarray
    hidden: Dense
    out: Dense

    def __call__(self, windows):
        e = self.embed[windows]                      # (batch, context, dim)
        h = np.tanh(self.hidden(e.reshape(e.shape[0], -1)))
        return self.out(h)


def window_lm(rng: np.random.Generator, vocab: int, context: int, dim: int,
              n_hidden: int) -> WindowLM:
    return WindowLM(rng.normal(0.0, 0.3, size=(vocab, dim)), dense(rng, context * dim, n_hidden),
                    dense(rng, n_hidden, vocab))


@dataclass(frozen=True)
class RecurrentLM:
    """A character model that reads the window with an LSTM and predicts the next
    character from its last state: a drop-in for WindowLM."""

    embed: np.ndarray
    cell: LSTMCell
    out: Dense

    def __call__(self, windows):
        n = self.cell.Wh.shape[0]
        state = (np.zeros((windows.shape[0], n)), np.zeros((windows.shape[0], n)))
        for t in range(windows.shape[1]):
            state = self.cell(state, self.embed[windows[:, t]])
        return self.out(state[0])


def recurrent_lm(rng: np.random.Generator, vocab: int, dim: int, n_hidden: int) -> RecurrentLM:
    return RecurrentLM(rng.normal(0.0, 0.3, size=(vocab, dim)), lstm_cell(rng, dim, n_hidden),
                       dense(rng, n_hidden, vocab))


@dataclass(frozen=True)
class CharRNN:
    """A recurrent character model: an LSTM over the embedded characters, logits at each
    step."""

    embed: np.ndarray
    cell: LSTMCell
    out: Dense

    def __call__(self, chars):
        batch, steps = chars.shape
        n = self.cell.Wh.shape[0]
        state = (np.zeros((batch, n)), np.zeros((batch, n)))
        logits = []
        for t in range(steps):
            state = self.cell(state, self.embed[chars[:, t]])
            logits.append(self.out(state[0]))
        return np.stack(logits, axis=1)


def char_rnn(rng: np.random.Generator, vocab: int, dim: int, n_hidden: int) -> CharRNN:
    return CharRNN(rng.normal(0.0, 0.3, size=(vocab, dim)), lstm_cell(rng, dim, n_hidden),
                   dense(rng, n_hidden, vocab))

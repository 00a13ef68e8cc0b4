"""Random numbers in compiled code: a compiled program draws exactly the numbers CPython
draws, in the same order, and leaves the generator in the same state (every test
compares a compiled run and a CPython run from generators made alike: the results and
the generator's state afterwards), with the optimizer on and off. Draws are not
differentiated, except reparameterized samples, whose gradients are checked against
finite differences with the generator made again for each evaluation."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from gradcheck import check_directional

import tapeless as tl
from tapeless import CompileError


def same(got, want) -> None:
    """Equal results: the same structure, types and values, bit for bit."""
    if isinstance(want, tuple):
        assert isinstance(got, tuple) and len(got) == len(want)
        for g, w in zip(got, want, strict=True):
            same(g, w)
        return
    assert type(got) is type(want), (type(got), type(want))
    if isinstance(want, np.ndarray):
        assert got.dtype == want.dtype and got.shape == want.shape
        np.testing.assert_array_equal(got, want)
    else:
        assert got == want or (got != got and want != want)


def state(rng):
    """The generator's state, comparable with `==`."""
    if isinstance(rng, np.random.Generator):
        return rng.bit_generator.state
    name, key, pos, has_gauss, gauss = rng.get_state()
    return name, key.tobytes(), pos, has_gauss, gauss


def assert_same_stream(f, *args, make=np.random.default_rng, seed=0, transform=tl.jit):
    """`transform(f)(*args, rng)` and `f(*args, rng)` give the same results and leave
    generators made alike in the same state (the next draws are equal too)."""
    compiled, plain = make(seed), make(seed)
    got = transform(f)(*args, compiled)
    want = f(*args, plain)
    same(got, want)
    assert state(compiled) == state(plain)
    same(compiled.random(4), plain.random(4))
    return got


# --- each method, with its keyword arguments ----------------------------------------


def generator_methods(x, rng):
    p = np.array([0.1, 0.2, 0.3, 0.4])
    return (rng.normal(), rng.normal(1.0, 2.0), rng.normal(loc=x, scale=0.5),
            rng.normal(size=3), rng.normal(0.5, scale=2.0, size=(2, 2)),
            rng.uniform(), rng.uniform(-1.0, 1.0, size=3), rng.uniform(low=x, high=x + 1.0),
            rng.integers(5), rng.integers(2, 9, size=4), rng.integers(0, 3, size=3,
                                                                      endpoint=True),
            rng.integers(low=1, high=4, size=2, dtype=np.int32),
            rng.choice(4), rng.choice(5, size=3), rng.choice(x, size=2, replace=False),
            rng.choice(4, size=5, p=p), rng.choice(x), rng.choice([1.0, 2.0, 3.0], 2),
            rng.permutation(5), rng.permutation(x),
            rng.standard_normal(), rng.standard_normal(3), rng.standard_normal(size=(2, 1)),
            rng.standard_normal(2, dtype=np.float32),
            rng.random(), rng.random(3), rng.random(size=(1, 2)),
            rng.binomial(10, 0.3), rng.binomial(5, 0.5, size=3), rng.binomial(n=4, p=0.2),
            rng.exponential(), rng.exponential(2.0, size=2), rng.poisson(3.0, size=2))


def test_each_generator_method_draws_as_cpython(optimize: str) -> None:
    assert_same_stream(generator_methods, np.array([0.5, -1.0, 2.0, 3.5]))


def matrix_draws(m, rng):
    return (rng.choice(m, size=2), rng.choice(m, size=2, axis=1), rng.permutation(m),
            rng.permutation(m, axis=1), rng.choice(m, 2, replace=False, shuffle=False))


def test_choice_and_permutation_along_an_axis(optimize: str) -> None:
    assert_same_stream(matrix_draws, np.arange(12.0).reshape(3, 4))


def random_state_methods(x, rng):
    return (rng.randn(), rng.randn(2, 3), rng.rand(3), rng.randint(5, size=3),
            rng.randint(1, 4), rng.random_sample(2), rng.random(), rng.normal(size=2),
            rng.uniform(0.0, x), rng.choice(x, 3), rng.permutation(4), rng.permutation(x),
            rng.standard_normal(2), rng.binomial(3, 0.5, 2))


def test_a_random_state_draws_as_cpython(optimize: str) -> None:
    assert_same_stream(random_state_methods, np.array([1.0, 2.0, 3.0]),
                       make=np.random.RandomState)


def legacy_functions(x):
    return (np.random.randn(), np.random.randn(2, 2), np.random.rand(3),
            np.random.normal(), np.random.normal(1.0, 2.0, size=2), np.random.normal(x, 0.1),
            np.random.uniform(), np.random.uniform(-1.0, high=x), np.random.randint(4),
            np.random.randint(1, 6, size=3), np.random.choice(5), np.random.choice(x, 2),
            np.random.choice(4, size=3, replace=False, p=[0.4, 0.3, 0.2, 0.1]),
            np.random.permutation(4), np.random.permutation(x), np.random.standard_normal(2),
            np.random.random(2), np.random.random_sample(), np.random.binomial(10, 0.5, 3),
            np.random.exponential(2.0), np.random.poisson(size=2))


def seeded_inside(x):
    np.random.seed(7)
    first = np.random.normal(size=3)
    np.random.seed(7)
    return first, np.random.normal(size=3) + x


def test_legacy_functions_draw_from_the_global_state(optimize: str) -> None:
    x = np.array([0.5, 1.5, 2.5])
    np.random.seed(3)
    got = tl.jit(legacy_functions)(x)
    after = np.random.random(3)
    np.random.seed(3)
    same(got, legacy_functions(x))
    same(after, np.random.random(3))
    got = tl.jit(seeded_inside)(x)
    same(got, seeded_inside(x))
    np.testing.assert_array_equal(got[0] + x, got[1])


# --- order, loops, branches, generators made inside ----------------------------------


def draws_in_control_flow(x, rng):
    total = np.zeros(3)
    for i in range(4):
        noise = rng.normal(size=3)
        if rng.random() < 0.5:
            total = total + noise * i
        else:
            total = total - rng.uniform(size=3)
    count = 0
    while rng.random() < 0.7:
        count += 1
        total = total + rng.integers(0, 3)
    return total + x, count, [rng.random() for _ in range(3)]


def test_draws_in_loops_and_branches(optimize: str) -> None:
    for seed in range(6):
        assert_same_stream(draws_in_control_flow, np.ones(3), seed=seed)


def unused_draws(x, rng):
    rng.normal(size=5)  # drawn for nothing, but drawn: it moves the stream
    a = rng.normal()
    b = rng.normal()
    rng.integers(10)
    return x + a - b, a == b


def test_draws_are_never_removed_or_shared(optimize: str) -> None:
    got = assert_same_stream(unused_draws, 1.0)
    assert got[1] is False  # two draws of one expression are two numbers
    src = tl.jit(unused_draws).source
    assert src.count("rng_normal") == 3 and src.count("rng_integers") == 1


def helper(rng, n):
    return rng.normal(size=n), rng.random()


def draws_in_comprehensions(x, rng):
    zs = [x * rng.normal() for _ in range(3)]
    a = rng.random()
    ys = [rng.uniform(0.0, v) for v in zs if v > 0]
    return sum(zs) * a + sum(ys)


def test_draws_in_comprehensions(optimize: str) -> None:
    for seed in range(3):
        assert_same_stream(draws_in_comprehensions, 1.5, seed=seed)
        check_grad_with_seed(draws_in_comprehensions, (1.5,), seed=seed)


def draws_in_calls(x, rng):
    a, b = helper(rng, 2)
    c, d = helper(rng, 3)
    return x * b + np.sum(a) + np.sum(c) * d


def test_draws_in_called_functions(optimize: str) -> None:
    assert_same_stream(draws_in_calls, 2.0)


def made_inside(seed, x):
    rng = np.random.default_rng(seed)
    other = np.random.default_rng(seed)
    return rng.normal(size=2) + x, other.normal(size=2), rng.normal(size=2)


def test_generators_made_inside(optimize: str) -> None:
    got = tl.jit(made_inside)(5, 1.0)
    same(got, made_inside(5, 1.0))
    np.testing.assert_array_equal(got[0] - 1.0, got[1])  # two generators, not one


GLOBAL_RNG = np.random.default_rng(11)


def global_generator(x):
    return x + GLOBAL_RNG.normal(size=2)


def test_a_generator_held_in_a_global(optimize: str) -> None:
    f = tl.jit(global_generator)
    before = GLOBAL_RNG.bit_generator.state
    got = f(1.0)
    after = GLOBAL_RNG.bit_generator.state
    GLOBAL_RNG.bit_generator.state = before
    same(got, global_generator(1.0))
    assert GLOBAL_RNG.bit_generator.state == after
    assert not np.array_equal(f(1.0), got)  # the next call draws the next numbers


def test_one_build_per_argument_signature_not_per_generator() -> None:
    f = tl.jit(draws_in_control_flow)
    g = tl.grad(lambda w, rng: np.sum(w * rng.normal(size=3)))
    for seed in range(4):
        f(np.ones(3), np.random.default_rng(seed))
        g(np.ones(3), np.random.default_rng(seed))
    assert f.compile_count == 1 and g.compile_count == 1


# --- gradients: draws inside a differentiated function --------------------------------


def dae_loss(W, x, rng):
    """A denoising autoencoder: the input corrupted by noise drawn inside the loss."""
    corrupted = x + 0.3 * rng.normal(size=x.shape)
    mask = rng.random(x.shape) < 0.8
    h = np.tanh((corrupted * mask) @ W)
    return np.mean((h @ W.T - x) ** 2)


W0 = np.random.default_rng(1).normal(size=(4, 3)) * 0.5
X0 = np.random.default_rng(2).normal(size=(5, 4))


def check_grad_with_seed(f, args, argnums=0, seed=0, make=np.random.default_rng):
    """value_and_grad against CPython (value, generator state) and against finite
    differences of f with the generator made again for each evaluation."""
    compiled, plain = make(seed), make(seed)
    value, grads = tl.value_and_grad(f, argnums=argnums)(*args, compiled)
    same(value, f(*args, plain))
    assert state(compiled) == state(plain)  # the forward pass drew once, the backward none
    nums = (argnums,) if isinstance(argnums, int) else argnums

    def fresh(*diff):
        full = list(args)
        for i, a in zip(nums, diff, strict=True):
            full[i] = a
        return f(*full, make(seed))

    check_directional(grads if not isinstance(argnums, int) else (grads,), fresh,
                      tuple(args[i] for i in nums), tuple(range(len(nums))),
                      np.random.default_rng(99), rtol=1e-5, what=f.__name__)


def test_denoising_autoencoder_gradient(optimize: str) -> None:
    check_grad_with_seed(dae_loss, (W0, X0))


def noisy_loop(w, x, rng):
    total = 0.0
    for _ in range(3):
        noise = rng.normal(size=x.shape)
        if rng.random() < 0.5:
            total = total + np.sum(np.tanh((x + noise) @ w) ** 2)
        else:
            total = total + np.sum(w ** 2) * rng.uniform(0.5, 1.5)
    while rng.random() < 0.8:
        total = total + 0.1 * np.sum(w * rng.standard_normal(w.shape))
    return total


def test_gradient_with_draws_in_loops_and_branches(optimize: str) -> None:
    for seed in range(4):
        check_grad_with_seed(noisy_loop, (W0[:3, :2], X0[:, :3]), seed=seed)


def reparameterized(mu, log_sigma, rng):
    z = mu + np.exp(log_sigma) * rng.normal(size=mu.shape)
    return np.sum(np.sin(z) * z)


def normal_in_loc_scale(mu, sigma, rng):
    return np.sum(np.cos(rng.normal(mu, sigma)) + rng.normal(loc=mu, scale=sigma, size=(2, 3)))


def uniform_in_low_high(low, high, rng):
    return np.sum(np.sin(rng.uniform(low, high, size=(4, 3))) * rng.uniform(low, 2.0))


def exponential_in_scale(scale, rng):
    return np.sum(np.log1p(rng.exponential(scale, size=(2, 3))))


def choice_of_rows(m, rng):
    rows = rng.choice(m, size=5)
    cols = rng.choice(m, size=2, axis=1, replace=False)
    return np.sum(rows ** 2) + np.sum(np.sin(cols)) + np.sum(rng.permutation(m)[0] ** 3) + \
        np.sum(rng.permutation(m, axis=1)[:, 0])


MU = np.array([0.3, -0.7, 1.1])
SIGMA = np.array([0.5, 1.5, 0.8])


def test_reparameterized_gradients(optimize: str) -> None:
    check_grad_with_seed(reparameterized, (MU, np.log(SIGMA)), argnums=(0, 1))
    check_grad_with_seed(normal_in_loc_scale, (MU, SIGMA), argnums=(0, 1))
    check_grad_with_seed(uniform_in_low_high, (MU, MU + SIGMA), argnums=(0, 1))
    check_grad_with_seed(exponential_in_scale, (SIGMA,))
    check_grad_with_seed(choice_of_rows, (np.arange(12.0).reshape(3, 4) / 5,))


def legacy_reparameterized(mu, sigma):
    np.random.seed(4)
    z = np.random.normal(mu, sigma) + np.random.uniform(mu, mu + sigma, size=(2, 3))
    picked = np.random.choice(mu, 4) + np.random.permutation(sigma)[:1]
    return np.sum(z ** 2) + np.sum(np.sin(picked)) + np.sum(np.random.exponential(sigma))


def test_legacy_reparameterized_gradients(optimize: str) -> None:
    value, grads = tl.value_and_grad(legacy_reparameterized, argnums=(0, 1))(MU, SIGMA)
    same(value, legacy_reparameterized(MU, SIGMA))
    check_directional(grads, legacy_reparameterized, (MU, SIGMA), (0, 1),
                      np.random.default_rng(99), rtol=1e-5)


def test_second_order_through_a_reparameterized_draw(optimize: str) -> None:
    def f(mu, rng):
        return np.sum(np.sin(rng.normal(mu, 2.0, size=3)) * mu)

    rng = np.random.default_rng
    gg = tl.grad(tl.grad(f))
    for mu in (0.3, -1.2):
        compiled, plain = rng(2), rng(2)
        second = gg(mu, compiled)
        f(mu, plain)
        assert state(compiled) == state(plain)  # drawn once, at every order
        eps = 1e-5
        fd = (tl.grad(f)(mu + eps, rng(2)) - tl.grad(f)(mu - eps, rng(2))) / (2 * eps)
        np.testing.assert_allclose(second, fd, rtol=1e-6, atol=1e-8)


def test_draws_are_not_differentiated_in_their_parameters(optimize: str) -> None:
    def f(p, rng):
        return p * rng.binomial(20, 0.5) + rng.standard_normal() + rng.integers(1, 5)

    assert tl.grad(f)(0.3, np.random.default_rng(0)) == np.random.default_rng(0).binomial(20, 0.5)


def test_vjp_backward_pass_does_not_draw(optimize: str) -> None:
    rng = np.random.default_rng(8)
    out, back = tl.vjp(lambda mu: np.sin(rng.normal(mu, 1.0, size=3)), MU)
    before = rng.bit_generator.state
    first, = back(np.ones(3))
    again, = back(np.ones(3))
    assert rng.bit_generator.state == before
    np.testing.assert_array_equal(first, again)


def test_grad_inside_compiled_code_draws_once(optimize: str) -> None:
    def step(w, x, rng):
        g = tl.grad(dae_loss)(w, x, rng)
        return w - 0.1 * g

    assert_same_stream(lambda w, x, rng: step(w, x, rng), W0, X0,
                       transform=lambda f: tl.jit(step))


# --- what is refused, and where ------------------------------------------------------


def shuffles(x, rng):
    rng.shuffle(x)
    return x


def shuffles_globally(x):
    np.random.shuffle(x)
    return x


def unsupported_distribution(x):
    return x + np.random.gamma(2.0)


def test_unsupported_calls_are_refused_where_they_are(optimize: str) -> None:
    rng = np.random.default_rng(0)
    with pytest.raises(CompileError, match=r"test_random.py:\d+:\d+: the method .shuffle\(\) "
                       r"of a random generator changes its argument in place(.|\n)*"
                       r"rng.permutation\(x\)"):
        tl.jit(shuffles)(np.ones(3), rng)
    with pytest.raises(CompileError, match=r"test_random.py:\d+:\d+: .*shuffle changes its "
                       r"argument in place(.|\n)*np.random.permutation\(x\)"):
        tl.jit(shuffles_globally)(np.ones(3))
    with pytest.raises(CompileError, match=r"test_random.py:\d+:\d+: .*gamma is not "
                       r"supported"):
        tl.jit(unsupported_distribution)(1.0)


@dataclasses.dataclass
class Shape:
    width: float

    def normal(self, x):
        return x * self.width


SHAPE = Shape(2.0)


def users_method(x):
    return SHAPE.normal(x)


def users_method_of_an_argument(x, shape):
    return shape.normal(x)


def test_a_users_method_of_the_same_name(optimize: str) -> None:
    # Known when compiling: the user's method. Known only at run time: a draw, which
    # says so when its object is not a generator (never a silent wrong number).
    assert tl.jit(users_method)(3.0) == 6.0
    assert tl.grad(users_method)(3.0) == 2.0
    with pytest.raises(TypeError, match="compiled as the method of a NumPy random generator"):
        tl.jit(users_method_of_an_argument)(3.0, SHAPE)


def effects_in_order(x):
    print("c1")
    z = middle(x) * middle(x)
    print("c2")
    ys = [inner(v) for v in (x, 2.0 * x)]
    print("c3")
    args = (x,)
    w = branchy(*args)
    print("c4")
    return z + ys[1] + w + branchy(-x)


def branchy(x):
    if x > 0:
        print("positive")
        return x
    print("not positive")
    return -x


def middle(x):
    print("b1")
    y = inner(x) + inner(x * 2)
    print("b2")
    return y


def inner(x):
    print("a1")
    print("a2")
    return x


def test_effects_of_nested_calls_run_once_in_order(optimize: str, capsys) -> None:
    effects_in_order(1.0)
    want = capsys.readouterr().out
    tl.jit(effects_in_order)(1.0)
    assert capsys.readouterr().out == want
    tl.grad(tl.grad(effects_in_order))(1.0)
    assert capsys.readouterr().out == want


def test_degenerate_and_tiny_scales_give_the_standard_variates(optimize: str) -> None:
    # Where the standard variates cannot be recovered from the sample (a scale of 0, or
    # tiny beside the location), derivative code draws them again from a copy of the
    # generator's state: the derivative in the scale is still exact.
    weights = np.array([1.0, 2.0, 3.0])

    def normal(mu, sigma, rng):
        return np.sum(rng.normal(mu, sigma, size=3) * weights)

    def uniform(low, high, rng):
        return np.sum(rng.uniform(low, high, size=3) * weights)

    def exponential(scale, rng):
        return np.sum(rng.exponential(scale, size=3) * weights)

    z = np.random.default_rng(3).standard_normal(3)
    for mu, sigma in ((1.0, 0.0), (1e9, 1e-6), (0.5, 2.0)):
        compiled, plain = np.random.default_rng(3), np.random.default_rng(3)
        d_mu, d_sigma = tl.grad(normal, argnums=(0, 1))(mu, sigma, compiled)
        normal(mu, sigma, plain)
        assert state(compiled) == state(plain)
        assert d_mu == 6.0
        np.testing.assert_allclose(d_sigma, np.sum(z * weights), rtol=1e-14)
    unit = np.random.default_rng(3).random(3)
    for low, high in ((2.0, 2.0), (1e9, 1e9 + 1e-6)):
        d_low, d_high = tl.grad(uniform, argnums=(0, 1))(low, high, np.random.default_rng(3))
        np.testing.assert_allclose([d_low, d_high], [np.sum((1 - unit) * weights),
                                                     np.sum(unit * weights)], rtol=1e-14)
    e = np.random.default_rng(3).standard_exponential(3)
    np.testing.assert_allclose(tl.grad(exponential)(0.0, np.random.default_rng(3)),
                               np.sum(e * weights), rtol=1e-14)


def test_a_generator_is_not_differentiated() -> None:
    def loss(w, rng):
        return np.sum(w * rng.normal(size=3))

    with pytest.raises(tl.GradError, match="argument 1: it is .*a random generator"):
        tl.grad(loss, argnums=1)(np.ones(3), np.random.default_rng(0))

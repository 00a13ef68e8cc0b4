"""Forward-over-reverse (Hessian-vector product) code of a mixture-like objective: a
log-sum-exp over components written with `np.max` (whose reverse rule splits the
sensitivity of the max among its ties: a bool mask and its count) and points offset by
per-component centres. Each test checks the product against finite differences of the
gradient and against the unoptimized program, and the shape of the optimized code."""

import numpy as np

import tapeless as tl
from tapeless.fwd_api import _jvp_function


def _lse(a):
    top = np.max(a, axis=0, keepdims=True)
    return np.log(np.sum(np.exp(a - top), axis=0)) + np.squeeze(top, axis=0)


def mixture(w, c, X):
    z = X[None, :, :] - c[:, None, :]            # components x points x dims
    zw = z @ w
    main = -0.5 * np.sum(zw * zw, axis=2)         # components x points
    return np.sum(_lse(main))


def _data():
    rng = np.random.default_rng(0)
    w = rng.standard_normal((3, 3))
    c = rng.standard_normal((4, 3))
    X = rng.standard_normal((50, 3))
    args = (w, c, X)
    tans = (rng.standard_normal(w.shape), rng.standard_normal(c.shape), np.zeros_like(X))
    return args, tans


def _hvp(fn, args, tans):
    return tl.jvp(tl.grad(fn, argnums=(0, 1)), args, tans)


def _check(fn, monkeypatch):
    monkeypatch.delenv("TAPELESS_OPTIMIZE", raising=False)
    args, tans = _data()
    grads, hv = _hvp(fn, args, tans)
    monkeypatch.setenv("TAPELESS_OPTIMIZE", "0")
    plain = _hvp(fn, args, tans)
    monkeypatch.delenv("TAPELESS_OPTIMIZE")
    for a, b in zip((grads, hv), plain, strict=True):
        for x, y in zip(a, b, strict=True):
            np.testing.assert_allclose(x, y, rtol=1e-10, atol=1e-10)
    g = tl.grad(fn, argnums=(0, 1))
    eps = 1e-6
    up = g(*(a + eps * t for a, t in zip(args, tans, strict=True)))
    down = g(*(a - eps * t for a, t in zip(args, tans, strict=True)))
    for h, u, d in zip(hv, up, down, strict=True):
        np.testing.assert_allclose(h, (u - d) / (2 * eps), rtol=1e-5, atol=1e-5)
    return _jvp_function(g).source_for(*args, *tans)


def test_tangent_of_a_sum_over_points_sums_before_the_product(monkeypatch):
    """The tangent of the centres' gradient, `-(d_zw_dot @ w.T + d_zw @ w_dot.T)` summed
    over the points, sums each term before its product (one row, not one per point):
    which needs the tangent of the max's tie mask (zeros made for a bool array) to be
    known float64. Checked in the jvp of the gradient as differentiated (what runs where
    user rules keep the gradient from being optimized first)."""
    monkeypatch.setenv("TAPELESS_JVP_OF_OPTIMIZED", "0")
    source = _check(mixture, monkeypatch)
    tangent = [line for line in source.splitlines() if "d_c_dot =" in line]
    assert tangent and "keepdims=True) @" in tangent[0], source


def test_tangent_of_a_sum_over_points_of_the_optimized_gradient(monkeypatch):
    """The same in the jvp of the optimized gradient (`tapeless.fwd_api`, the default):
    the optimized gradient of the centres is `-(row @ zw @ w.T).sum(axis=1)`, the
    per-point weights as one row per component contracting the points first, and its
    tangent keeps that form: each product with `w.T` or `w_dot.T` takes one row per
    component, and the only transposes are w's and w_dot's (no `np.swapaxes(...)` of a
    product of one row per point)."""
    source = _check(mixture, monkeypatch)
    tangent = [line for line in source.splitlines() if "tangent =" in line]
    assert tangent, source
    centres = tangent[0].split(".sum(axis=0), ", 1)[1]  # (after the weights' tangent)
    assert "[:, None, :] @ zw" in centres and "w_dot.T" in centres, source
    assert centres.count("@") == 4 and "swapaxes" not in centres, source


def test_ties(monkeypatch):
    """Ties in the max (equal components) split its sensitivity: still the derivative."""
    def tied(w, c, X):
        z = X[None, :, :] - np.concatenate([c, c], axis=0)[:, None, :]
        zw = z @ w
        return np.sum(_lse(-0.5 * np.sum(zw * zw, axis=2)))

    _check(tied, monkeypatch)


def test_power_of_two_scalings_fold(monkeypatch):
    """The tangent of a squared norm's gradient, `2.0 * (a[:, :, None] * zw + ...)`, and
    of the norm, `np.sum(2.0 * (zw_dot * zw), axis=2) * -0.5`: the scalings move onto the
    smaller factors and the sums' results, where they cancel or fold (exact: powers of
    two)."""
    source = _check(mixture, monkeypatch)
    assert "2.0" not in source, source


def test_scalings_that_are_not_powers_of_two_stay(monkeypatch):
    """A scaling by 3.0 does not round exactly: it is not moved (the derivative is the
    same either way)."""
    def cubed(w, c, X):
        z = X[None, :, :] - c[:, None, :]
        zw = z @ w
        return np.sum(_lse(-np.sum(3.0 * (zw * zw) * zw, axis=2) / 3.0))

    _check(cubed, monkeypatch)


def test_tangent_of_the_tie_count_is_gone(monkeypatch):
    """The tangent of `np.sum(hit)` (hit the max's bool tie mask) is zeros: no zeros of
    the mask's shape are made and summed, and the share of the max's sensitivity among
    its ties, `d_top / count`, gets the plain quotient's tangent `d_top_dot / count`
    (in the jvp of the gradient as differentiated; the optimized gradient's tie share
    is `where_zero(hit, d)` summed, whose tangent is the same with d's tangent)."""
    monkeypatch.setenv("TAPELESS_JVP_OF_OPTIMIZED", "0")
    source = _check(mixture, monkeypatch)
    assert "ZERO, hit" not in source, source
    assert "d_top_dot / count * hit" in source, source
    monkeypatch.delenv("TAPELESS_JVP_OF_OPTIMIZED")
    source = _check(mixture, monkeypatch)
    assert "ZERO" not in source and "zeros" not in source, source
    assert "where_zero(hit, " in source and ") / count" in source, source


def test_products_of_equal_rows(monkeypatch):
    """With the points closed over (tangents for w and the centres only), the tangent of
    the offsets is `-c_dot[:, None, :]` broadcast to the points: its products take one
    row (`np.broadcast_to(row @ w, shape)`), and its transpose's products sum the other
    factor's rows first, instead of one row per point."""
    args, tans = _data()
    X = args[2]

    def closed(w, c):
        return mixture(w, c, X)

    monkeypatch.delenv("TAPELESS_OPTIMIZE", raising=False)
    g = tl.grad(closed, argnums=(0, 1))
    grads, hv = tl.jvp(g, args[:2], tans[:2])
    source = _jvp_function(g).source_for(*args[:2], *tans[:2])
    assert "np.broadcast_to(" in source and "broadcast_like(-c_dot" not in source, source
    row = [line.split(" = ")[0].strip() for line in source.splitlines()
           if line.strip().endswith("= -c_dot[:, None, :]")]
    assert row and f"np.broadcast_to({row[0]} @ w," in source, source
    assert f"np.swapaxes({row[0]}, -1, -2) @ " in source, source
    monkeypatch.setenv("TAPELESS_OPTIMIZE", "0")
    plain = tl.jvp(tl.grad(closed, argnums=(0, 1)), args[:2], tans[:2])
    monkeypatch.delenv("TAPELESS_OPTIMIZE")
    for a, b in zip((grads, hv), plain, strict=True):
        for x, y in zip(a, b, strict=True):
            np.testing.assert_allclose(x, y, rtol=1e-10, atol=1e-10)
    eps = 1e-6
    up = g(*(a + eps * t for a, t in zip(args[:2], tans[:2], strict=True)))
    down = g(*(a - eps * t for a, t in zip(args[:2], tans[:2], strict=True)))
    for h, u, d in zip(hv, up, down, strict=True):
        np.testing.assert_allclose(h, (u - d) / (2 * eps), rtol=1e-5, atol=1e-5)

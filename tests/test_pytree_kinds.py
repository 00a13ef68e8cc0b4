"""Specialization to the structure of tuple arguments (kinds "tuple<K1|K2|...>") and to
lists of one kind of item ("list<K>"): the kinds themselves, gradients through tuples and
lists of known structure against finite differences and against the unoptimized
gradient, and recompilation for arguments of another structure (never reusing code made
for a different tuple or list)."""

from __future__ import annotations

import os
from typing import Any, NamedTuple

import numpy as np
import pytest

import tapeless as tl
import tapeless.grad_api
from tapeless.api import _signature
from tapeless.opt.kinds import MAX_TUPLE_ITEMS, items_of, tuple_of, value_kind


def test_tuple_kinds_split_nested_items() -> None:
    k = value_kind(((np.zeros((2, 3)), 1.5), (np.zeros(3), 2, "name"), ()))
    assert k == "tuple<tuple<arrayf8[2,3]|float>|tuple<arrayf8[3]|int|?>|tuple<>>"
    assert items_of(k) == ("tuple<arrayf8[2,3]|float>", "tuple<arrayf8[3]|int|?>", "tuple<>")
    assert items_of("tuple<?>") == (None,) and items_of("tuple<>") == ()
    assert items_of(tuple_of([None, "list<float>", "float"])) == (None, "list<float>", "float")
    assert items_of("list<float>") is None and items_of(None) is None


def test_only_plain_tuples_get_tuple_kinds() -> None:
    class Pair(NamedTuple):
        a: float
        b: float

    assert value_kind(Pair(1.0, 2.0)) is None
    assert value_kind(tuple(range(MAX_TUPLE_ITEMS + 1))) is None


def test_lists_of_one_kind_get_list_kinds() -> None:
    assert value_kind([1.0, 2.0]) == "list<float>"
    assert value_kind([np.zeros(3), np.ones(3)]) == "list<arrayf8[3]>"
    assert value_kind((1.0, [2.0])) == "tuple<float|list<float>>"
    # items of several kinds, containers, empty or long lists: no kind (generic code)
    for v in ([1.0, 2], [np.zeros(3), np.zeros(4)], [(1.0,)], [[1.0]], [],
              [1.0] * (MAX_TUPLE_ITEMS + 1)):
        assert value_kind(v) is None, v


def layers(params, x):
    h = x
    for w, b in params[:-1]:
        h = np.tanh(h @ w + b)
    w, b = params[-1]
    return np.sum((h @ w + b) ** 2)


def mixed(t):
    a, (v, n), rest = t[0], t[1], t[2:]
    total = a * np.sum(v ** 2) * n
    if isinstance(rest[0], (tuple, list)):
        total = total + np.sum(rest[0][0] * v)
    else:
        total = total + np.sum(rest[0]) * a
    return total + len(rest) * a


def concat(t, u):
    both = t + u + (2.0,)
    out = 0.0
    for x in both:
        out = out + np.sum(np.sin(x))
    return out * both[-2][0]


def unused_items(t):
    return np.sum(t[0] * 3.0)


def static_items(t, config):
    scale, (k, label) = config
    out = t[0] * scale
    for _ in range(k):
        out = np.sin(out) + t[1]
    return np.sum(out) if label == "sum" else np.max(out)


def recurrent(w, xs):
    """A loop over a list argument (floats or same-shape arrays)."""
    total = 0.0
    for x in xs:
        h = x
        for _ in range(2):
            h = np.tanh(w * h + x)
        total = total + np.sum(h * h)
    return total + np.sum(xs[0] * w)


def _layer_params(r: np.random.Generator, sizes: list[int]) -> tuple:
    return tuple((r.normal(size=(m, n)) / 2, r.normal(size=n))
                 for m, n in zip(sizes, sizes[1:], strict=False))


CASES: dict[str, tuple[Any, Any] | tuple[Any, Any, tuple[int, ...]]] = {
    "layers2": (layers, lambda r: (_layer_params(r, [3, 4, 2]), r.normal(size=(5, 3)))),
    "layers3": (layers, lambda r: (_layer_params(r, [3, 4, 4, 1]), r.normal(size=(2, 3)))),
    "mixed_array": (mixed, lambda r: ((0.7, (r.normal(size=3), 2.0), r.normal(size=3), 1.0),)),
    "mixed_tuple": (mixed, lambda r: ((0.7, (r.normal(size=3), 3.0), (r.normal(size=3),)),)),
    "mixed_list": (mixed, lambda r: ((1.3, (r.normal(size=2), 1.0), [r.normal(size=2)], 0.5),)),
    "concat": (concat, lambda r: ((r.normal(size=2), 0.3), (r.normal(size=(2, 2)),
                                                            r.normal(size=3)))),
    "unused": (unused_items, lambda r: ((r.normal(size=2), r.normal(size=(3, 2)), 4.0, 5.0),)),
    "float_list": (recurrent, lambda r: (0.7, [float(v) for v in r.normal(size=3)])),
    "array_list": (recurrent, lambda r: (r.normal(size=2), [r.normal(size=2) for _ in range(3)])),
    "mixed_list_items": (recurrent, lambda r: (0.7, [0.3, r.normal(size=2), -0.4])),
    "static": (static_items, lambda r: ((r.normal(size=3), r.normal(size=3)), (2.0, (3, "sum"))),
               (0,)),
}


def _leaves(tree: Any) -> list[Any]:
    if isinstance(tree, (tuple, list)):
        return [leaf for item in tree for leaf in _leaves(item)]
    return [tree]


def _assert_same(a: Any, b: Any, rtol: float, atol: float) -> None:
    assert type(a) is type(b) or (np.isscalar(a) and np.isscalar(b)), (a, b)
    if isinstance(a, (tuple, list)):
        assert len(a) == len(b)
        for x, y in zip(a, b, strict=True):
            _assert_same(x, y, rtol, atol)
    else:
        assert np.shape(a) == np.shape(b)
        np.testing.assert_allclose(a, b, rtol=rtol, atol=atol)


def _perturbed(tree: Any, target: int, h: float, counter: list[int]) -> Any:
    """`tree` with its `target`-th float leaf entry (counting array entries) moved by h."""
    if isinstance(tree, (tuple, list)):
        items = [_perturbed(x, target, h, counter) for x in tree]
        return items if isinstance(tree, list) else tuple(items)
    if isinstance(tree, np.ndarray):
        out = tree.copy()
        if counter[0] <= target < counter[0] + out.size:
            out.flat[target - counter[0]] += h
        counter[0] += out.size
        return out
    if type(tree) is float:
        counter[0] += 1
        return tree + h if counter[0] - 1 == target else tree
    return tree


@pytest.mark.parametrize("name", sorted(CASES))
def test_tuple_argument_gradients(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    fn, make, *given = CASES[name]
    args = make(np.random.default_rng(7))
    argnums = given[0] if given else tuple(range(len(args)))
    ours = tl.grad(fn, argnums)(*args)
    ours = (ours,) if len(argnums) == 1 else ours
    # against finite differences, entry by entry
    for a, d in zip(argnums, ours, strict=True):
        n = sum(np.size(x) for x in _leaves(args[a]) if isinstance(x, (float, np.ndarray)))
        got = [v for leaf, arg in zip(_leaves(d), _leaves(args[a]), strict=True)
               if isinstance(arg, (float, np.ndarray)) for v in np.ravel(leaf)]
        assert len(got) == n, (got, n)
        h = 1e-6
        for i in range(n):
            plus, minus = list(args), list(args)
            plus[a] = _perturbed(args[a], i, h, [0])
            minus[a] = _perturbed(args[a], i, -h, [0])
            fd = (fn(*plus) - fn(*minus)) / (2 * h)
            assert got[i] == pytest.approx(fd, rel=1e-6, abs=1e-8), (name, a, i)
    # against the unoptimized gradient: the same structure, the same numbers
    monkeypatch.setenv("TAPELESS_OPTIMIZE", "0")
    plain = tl.grad(fn, argnums)(*args)
    _assert_same(ours, (plain,) if len(argnums) == 1 else plain, rtol=1e-12, atol=1e-14)


def test_other_structures_recompile(monkeypatch: pytest.MonkeyPatch) -> None:
    """A compiled function called with tuples of another length, item kind or shape gets
    new code (and the right answer), never the code specialized for another tuple."""
    r = np.random.default_rng(3)
    f = tl.jit(layers)
    g = tl.grad(layers)
    x = r.normal(size=(2, 3))
    calls = [_layer_params(r, [3, 4, 2]), _layer_params(r, [3, 4, 4, 2]),
             _layer_params(r, [3, 5, 2]), _layer_params(r, [3, 4, 2])]
    for params in calls:
        assert f(params, x) == pytest.approx(layers(params, x), rel=1e-13)
        grads = g(params, x)
        assert len(grads) == len(params)
        for d, p in zip(grads, params, strict=True):
            assert [np.shape(v) for v in d] == [np.shape(v) for v in p]
    assert f.compile_count == 3 and g.compile_count == 3
    # an item that is a float where an array was, then a NamedTuple of the same items
    h = tl.jit(mixed)
    v = r.normal(size=3)
    for t in ((0.5, (v, 2), v, 1.0), (0.5, (v, 2), 2.0, 1.0), (0.5, (v, 2.0), 2.0, 1.0),
              (0.5, (v, 2.0), 2.0, 1.0)):
        assert h(t) == pytest.approx(mixed(t), rel=1e-13)
    assert h.compile_count == 3

    # lists: of floats, of arrays of one shape or another, of several kinds
    k = tl.grad(recurrent, argnums=(0, 1))
    cases = ((0.5, [0.1, 0.2]), (0.5, [0.3, -0.2, 0.4]), (v, [v, v]), (v[:2], [v[:2], v[:2]]),
             (v, [0.5, v]), (0.5, [0.1, 0.2]))
    got = [k(w, xs) for w, xs in cases]
    # (a list's signature is its items' one signature, without the length: lists of 2
    # and 3 floats share code; another item kind or shape recompiles)
    assert k.compile_count == 4
    with monkeypatch.context() as m:
        m.setenv("TAPELESS_OPTIMIZE", "0")
        plain = [tl.grad(recurrent, argnums=(0, 1))(w, xs) for w, xs in cases]
    for ours, ref in zip(got, plain, strict=True):
        assert type(ours[1]) is list
        _assert_same(ours, ref, rtol=1e-12, atol=1e-14)

    class Pair(NamedTuple):
        w: Any
        b: Any

    params = (Pair(*calls[0][0]), Pair(*calls[0][1]))
    d = g(params, x)
    assert type(d[0]) is Pair and type(d[1]) is Pair
    expected = g(calls[0], x)
    for got_layer, ref_layer in zip(d, expected, strict=True):
        for got, ref in zip(got_layer, ref_layer, strict=True):
            np.testing.assert_allclose(got, ref, rtol=1e-13)


@pytest.mark.skipif(os.environ.get("TAPELESS_OPTIMIZE", "") not in ("", "all"),
                    reason="the folding is the optimizer's")
def test_specialized_tuple_gradient_has_no_structure_helpers() -> None:
    """Indexing, slicing and type tests of tuples of known kinds fold: the gradient is a
    tuple display of the items' gradients."""
    r = np.random.default_rng(5)
    t = (0.7, (r.normal(size=3), 3.0), (r.normal(size=3),))
    source = tl.grad(mixed).source_for(t)
    for helper in ("tuple_sens", "getitem_sens", "scatter_sens", "isinstance", "len(", "ZERO"):
        assert helper not in source, (helper, source)
    assert "_rt.to_structure(d_t" not in source, source
    source = tl.grad(unused_items).source_for((r.normal(size=2), r.normal(size=(3, 2)), 4.0))
    assert "getitem_sens" not in source and "to_structure(_rt.ZERO, t[1])" in source, source


def weighted(w, xs):
    """Uses the list's length and its first and last items: code shared by lists of
    several lengths must not have folded any of them."""
    total = 0.0
    for x in xs:
        total = total + np.sin(w * x) * x
    return total + xs[0] * xs[-1] * w + len(xs) * w


def _weighted_grad(w: float, xs: list[float]) -> tuple[float, list[float]]:
    """By hand."""
    n = len(xs)
    dw = sum(np.cos(w * x) * x * x for x in xs) + xs[0] * xs[-1] + n
    dxs = [np.cos(w * x) * w * x + np.sin(w * x) for x in xs]
    dxs[0] += w * xs[-1]
    dxs[-1] += w * xs[0]
    return dw, dxs


def test_lists_of_one_kind_share_code_whatever_their_length(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Lists of 1 to MAX_TUPLE_ITEMS floats have one kind, list<float>, so one signature
    and one compiled version; the gradients are right for every length."""
    r = np.random.default_rng(11)
    f = tl.jit(weighted)
    g = tl.grad(weighted, argnums=(0, 1))
    lengths = (1, 2, 3, 7, MAX_TUPLE_ITEMS, 2)
    calls = [(0.7, [float(v) for v in r.normal(size=n)]) for n in lengths]
    got = []
    for w, xs in calls:
        assert value_kind(xs) == "list<float>"
        assert f(w, xs) == pytest.approx(weighted(w, xs), rel=1e-13)
        got.append(g(w, xs))
        dw, dxs = _weighted_grad(w, xs)
        assert type(got[-1][1]) is list and len(got[-1][1]) == len(xs)
        assert got[-1][0] == pytest.approx(dw, rel=1e-12)
        np.testing.assert_allclose(got[-1][1], dxs, rtol=1e-12, atol=1e-14)
    assert f.compile_count == 1 and g.compile_count == 1
    # a longer list has no kind: it gets the generic build (compiled once more)
    xs = [float(v) for v in r.normal(size=MAX_TUPLE_ITEMS + 1)]
    assert value_kind(xs) is None
    dw, dxs = g(0.7, xs)
    assert dw == pytest.approx(_weighted_grad(0.7, xs)[0], rel=1e-12)
    np.testing.assert_allclose(dxs, _weighted_grad(0.7, xs)[1], rtol=1e-12, atol=1e-14)
    assert g.compile_count == 2
    # against finite differences and the unoptimized gradient
    h = 1e-6
    w, xs = calls[3]
    for i in range(len(xs)):
        plus, minus = list(xs), list(xs)
        plus[i] += h
        minus[i] -= h
        fd = (weighted(w, plus) - weighted(w, minus)) / (2 * h)
        assert got[3][1][i] == pytest.approx(fd, rel=1e-6, abs=1e-8)
    monkeypatch.setenv("TAPELESS_OPTIMIZE", "0")
    plain = tl.grad(weighted, argnums=(0, 1))
    for (w, xs), ours in zip(calls, got, strict=True):
        _assert_same(ours, plain(w, xs), rtol=1e-12, atol=1e-14)


def test_lists_of_other_items_compile_separately(monkeypatch: pytest.MonkeyPatch) -> None:
    """Lists of same-shape arrays share code whatever their length; items of another
    shape, of several shapes or kinds, or lists of containers never run it."""
    r = np.random.default_rng(12)
    v2, v3 = r.normal(size=2), r.normal(size=3)
    cases = [
        (v2, [r.normal(size=2) for _ in range(2)]),      # list<arrayf8[2]>
        (v2, [r.normal(size=2) for _ in range(5)]),      # the same kind: shared
        (v3, [r.normal(size=3) for _ in range(2)]),      # list<arrayf8[3]>
        (v3, [r.normal(size=3) for _ in range(4)]),      # shared
        (v2, [r.normal(size=2), r.normal(size=3)[:1]]),  # shapes (2,) and (1,): no kind
        (0.5, [0.3, r.normal(size=2), -0.4]),            # float and array: no kind
        (0.5, [0.3, r.normal(size=2), 0.2, -0.4]),       # no kind, another length
        (v2, [r.normal(size=2) for _ in range(MAX_TUPLE_ITEMS + 3)]),  # too long: generic
    ]
    keys = [_signature(xs) for _, xs in cases]
    kinds = [value_kind(xs) for _, xs in cases]
    assert kinds[:4] == ["list<arrayf8[2]>"] * 2 + ["list<arrayf8[3]>"] * 2
    assert kinds[4:] == [None] * 4
    # the signatures of lists with items of several signatures keep them all
    assert len({keys[0], keys[2], keys[4], keys[5], keys[6], keys[7]}) == 6
    assert keys[0] == keys[1] and keys[2] == keys[3]
    g = tl.grad(recurrent, argnums=(0, 1))
    got = [g(w, xs) for w, xs in cases]
    assert g.compile_count == 6
    monkeypatch.setenv("TAPELESS_OPTIMIZE", "0")
    plain = tl.grad(recurrent, argnums=(0, 1))
    for (w, xs), ours in zip(cases, got, strict=True):
        assert type(ours[1]) is list and len(ours[1]) == len(xs)
        _assert_same(ours, plain(w, xs), rtol=1e-12, atol=1e-14)
    # one entry against finite differences, for each shared version and the mixed list
    h = 1e-6
    for (w, xs), ours in zip(cases, got, strict=True):
        plus = [x.copy() if isinstance(x, np.ndarray) else x for x in xs]
        minus = [x.copy() if isinstance(x, np.ndarray) else x for x in xs]
        last = xs[-1]
        if isinstance(last, np.ndarray):
            plus[-1][0] += h
            minus[-1][0] -= h
            d = ours[1][-1][0]
        else:
            plus[-1] += h
            minus[-1] -= h
            d = ours[1][-1]
        fd = (recurrent(w, plus) - recurrent(w, minus)) / (2 * h)
        assert d == pytest.approx(fd, rel=1e-6, abs=1e-8)


def pair_sum(ps):
    out = 0.0
    for p in ps:
        out = out + np.sum(p[0] * p[1]) + np.sum(np.asarray(p[0]) ** 2)
    return out


def test_lists_of_containers_share_generic_code(monkeypatch: pytest.MonkeyPatch) -> None:
    """A list of tuples (or of lists) has no kind, whatever its length: lists of tuples
    of one structure share the generic build, and the gradients are right."""
    r = np.random.default_rng(13)
    cases = [[(r.normal(size=2), float(r.normal())) for _ in range(n)] for n in (1, 3, 4)]
    cases += [[[float(v) for v in r.normal(size=2)] for _ in range(n)] for n in (2, 3)]
    cases += [[[0.5, 0.3, -0.2], [0.1, 0.2]]]  # (inner lists of several lengths)
    assert all(value_kind(ps) is None for ps in cases)
    g = tl.grad(pair_sum)
    got = [g(ps) for ps in cases]
    assert g.compile_count == 2
    monkeypatch.setenv("TAPELESS_OPTIMIZE", "0")
    plain = tl.grad(pair_sum)
    for ps, ours in zip(cases, got, strict=True):
        _assert_same(ours, plain(ps), rtol=1e-12, atol=1e-14)
    d = got[1]
    for (a, b), (da, db) in zip(cases[1], d, strict=True):
        np.testing.assert_allclose(da, b + 2 * a, rtol=1e-12)
        assert db == pytest.approx(np.sum(a), rel=1e-12)


def item_sum(t, key):
    return np.sum(np.asarray(t[key])) * 2.0


def test_integer_leaves_in_containers_are_refused_on_later_calls(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The check for integer leaves: for containers whose signature does not show their
    leaves (dicts, dataclasses, NamedTuples, long lists) it runs on every call, so an
    integer is refused after a first call with floats; for floats, arrays and tuples and
    lists of them the signature shows there is none, and arguments are not walked
    again."""
    class Pair(NamedTuple):
        a: Any
        b: Any

    walks = []  # what the check walks (each item of a container, too)
    walk = tapeless.grad_api._integer_leaf

    def counted(x: Any) -> str | None:
        walks.append(x)
        return walk(x)

    monkeypatch.setattr(tapeless.grad_api, "_integer_leaf", counted)
    long = [1.0] * (MAX_TUPLE_ITEMS + 2)
    fits = [
        ([1.0, 2.0], [1.0, 2.0, 3]),
        ({"a": 1.0, "b": 2.0}, {"a": 1.0, "b": 2}),
        ({"a": [1.0, 2.0]}, {"a": [1.0, np.arange(2)]}),
        (Pair(1.0, 2.0), Pair(1.0, True)),
        (long, long[:-1] + [3]),
        (long, long[:-1] + [np.int64(3)]),
        ((long,), (long[:-1] + [np.arange(2)],)),
    ]
    for good, bad in fits:
        g = tl.grad(item_sum)
        key = "a" if isinstance(good, dict) else 0
        assert g(good, key) is not None
        with pytest.raises(tl.GradError, match=r"argument 0: it is \(or contains\) (an int|a "
                           r"bool|an array of dtype int64)"):
            g(bad, key)
        # and the floats still work (the code was not replaced)
        assert g(good, key) is not None
    # a list of floats or a tuple of arrays: walked on the first call only
    for arg in ([1.0, 2.0, 3.0], (np.ones(2), (np.ones(3), 2.0)), [np.ones(2)] * 3):
        g = tl.grad(item_sum)
        walks.clear()
        for _ in range(3):
            g(arg, 0)
        assert sum(w is arg for w in walks) == 1, arg
    # a dict: on every call
    g = tl.grad(item_sum)
    d = {"a": 1.0, "b": 2.0}
    for _ in range(3):
        g(d, "a")
    assert sum(w is d for w in walks) == 3
    # a list of floats then a list of ints of the same length: another signature, checked
    g = tl.grad(item_sum)
    g([1.0, 2.0], 0)
    with pytest.raises(tl.GradError, match=r"argument 0: it is \(or contains\) an int"):
        g([1, 2], 0)
    with pytest.raises(tl.GradError, match=r"argument 0: it is \(or contains\) a bool"):
        g([1.0, True], 0)

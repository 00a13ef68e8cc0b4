"""Specialization to the structure of tuple arguments (kinds `TupleKind`, printed
"tuple<K1|K2|...>"), to lists of one kind of item (`ListKind`, "list<K>") and to dicts,
NamedTuples and dataclasses (`DictKind`, "dict<k:K|...>"; `RecordKind`,
"namedtuple<Name#n|f:K|...>", "dataclass<Name#n|f:K|...>"): the kinds themselves,
gradients through containers of known structure against finite differences and against
the unoptimized gradient, and recompilation for arguments of another structure (never
reusing code made for a different container)."""

from __future__ import annotations

import dataclasses
import os
from typing import Any, NamedTuple

import numpy as np
import pytest

import tapeless as tl
import tapeless.grad_api
from tapeless.api import _signature
from tapeless.opt.kinds import (
    EMPTY_LIST,
    FLOAT,
    INT,
    MAX_TUPLE_ITEMS,
    DictKind,
    ListItemsKind,
    ListKind,
    RecordKind,
    TupleKind,
    array,
    as_tuple,
    class_of_kind,
    element_of,
    field_kind,
    fields_of,
    is_container,
    is_list,
    is_namedtuple,
    is_tuple,
    items_of,
    list_of,
    record_class,
    tuple_of,
    value_kind,
)


def test_tuple_kinds_split_nested_items() -> None:
    k = value_kind(((np.zeros((2, 3)), 1.5), (np.zeros(3), 2, "name"), ()))
    pair, triple = tuple_of([array("f8", (2, 3)), FLOAT]), tuple_of([array("f8", (3,)), INT, None])
    assert k == TupleKind((pair, triple, TupleKind(())))
    assert str(k) == "tuple<tuple<arrayf8[2,3]|float>|tuple<arrayf8[3]|int|?>|tuple<>>"
    assert items_of(k) == (pair, triple, tuple_of([]))
    assert items_of(tuple_of([None])) == (None,) and items_of(tuple_of([])) == ()
    assert items_of(tuple_of([None, list_of(FLOAT), FLOAT])) == (None, list_of(FLOAT), FLOAT)
    assert items_of(list_of(FLOAT)) is None and items_of(None) is None
    assert hash(k) == hash(value_kind(((np.ones((2, 3)), 2.5), (np.ones(3), 3, None), ())))


def test_only_plain_tuples_get_tuple_kinds() -> None:
    class Pair(NamedTuple):
        a: float
        b: float

    k = value_kind(Pair(1.0, 2.0))
    assert not is_tuple(k) and items_of(k) is None and is_namedtuple(k)
    assert value_kind(tuple(range(MAX_TUPLE_ITEMS + 1))) is None


def test_lists_of_one_kind_get_list_kinds() -> None:
    assert value_kind([1.0, 2.0]) == ListKind(FLOAT) == list_of(FLOAT)
    assert value_kind([np.zeros(3), np.ones(3)]) == list_of(array("f8", (3,)))
    assert value_kind((1.0, [2.0])) == tuple_of([FLOAT, list_of(FLOAT)])
    assert str(value_kind((1.0, [np.zeros(3)]))) == "tuple<float|list<arrayf8[3]>>"
    assert is_list(EMPTY_LIST) and str(EMPTY_LIST) == "list<>" and EMPTY_LIST != list_of(FLOAT)
    # empty or long lists: no kind (generic code)
    for v in ([], [1.0] * (MAX_TUPLE_ITEMS + 1)):
        assert value_kind(v) is None, v
    # items of several kinds, or containers (a list of layers: a structure, whose
    # signature keeps every item, as a tuple's does): item-wise kinds, which no list
    # operation but a read at a constant index (or at any int, items of one kind) and
    # the length sees
    for v in ([1.0, 2], [np.zeros(3), np.zeros(4)], [(1.0,), 2.0], [(1.0,)], [[1.0]],
              [(np.zeros(2), 1.0)] * 3):
        k = value_kind(v)
        assert k == ListItemsKind(tuple(value_kind(x) for x in v)) and not is_list(k), v
        assert element_of(k) is None and items_of(k) is None


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
        assert value_kind(xs) == list_of(FLOAT)
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
        (v2, [r.normal(size=2), r.normal(size=3)[:1]]),  # shapes (2,) and (1,): by item
        (0.5, [0.3, r.normal(size=2), -0.4]),            # float and array: by item
        (0.5, [0.3, r.normal(size=2), 0.2, -0.4]),       # by item, another length
        (v2, [r.normal(size=2) for _ in range(MAX_TUPLE_ITEMS + 3)]),  # too long: generic
    ]
    keys = [_signature(xs) for _, xs in cases]
    kinds = [value_kind(xs) for _, xs in cases]
    assert kinds[:4] == [list_of(array("f8", (2,)))] * 2 + [list_of(array("f8", (3,)))] * 2
    assert kinds[4:7] == [ListItemsKind(tuple(value_kind(x) for x in xs))
                          for _, xs in cases[4:7]]
    assert kinds[7] is None
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


def test_lists_of_containers_are_structures(monkeypatch: pytest.MonkeyPatch) -> None:
    """A list of tuples (or of lists) is a structure, as in a pytree: its signature and
    its kind keep every item, its length with them (`ListItemsKind`), so lists of 1, 3
    and 4 tuples of one structure each get their own build, and the gradients are
    right."""
    r = np.random.default_rng(13)
    cases = [[(r.normal(size=2), float(r.normal())) for _ in range(n)] for n in (1, 3, 4)]
    cases += [[[float(v) for v in r.normal(size=2)] for _ in range(n)] for n in (2, 3)]
    cases += [[[0.5, 0.3, -0.2], [0.1, 0.2]]]  # (inner lists of several lengths)
    for ps in cases:
        assert value_kind(ps) == ListItemsKind(tuple(value_kind(p) for p in ps))
    g = tl.grad(pair_sum)
    got = [g(ps) for ps in cases]
    # (two lists of two lists of floats share one: a list of floats' length is not in its
    # signature)
    assert g.compile_count == len(cases) - 1
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
        (Pair(1.0, 2.0), Pair(1.0, 2)),
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
    # a dict with string keys: its signature shows its leaves, walked on the first call
    # only; a dict with other keys, on every call
    for d, key in (({"a": 1.0, "b": 2.0}, "a"), ({1: 1.0, "b": 2.0}, 1)):
        g = tl.grad(item_sum)
        walks.clear()
        for _ in range(3):
            g(d, key)
        assert sum(w is d for w in walks) == (1 if key == "a" else 3)
    # a list of floats then a list of ints of the same length: another signature, checked
    g = tl.grad(item_sum)
    g([1.0, 2.0], 0)
    with pytest.raises(tl.GradError, match=r"argument 0: it is \(or contains\) an int"):
        g([1, 2], 0)
    # a bool inside: a constant, given back as it is (and a bool itself is refused)
    assert g([1.0, True], 0) == [2.0, True]
    with pytest.raises(tl.GradError, match=r"argument 0: it is \(or contains\) a bool"):
        tl.grad(lambda b: 2.0 * b)(True)


# --- dicts, NamedTuples, dataclasses --------------------------------------------------------


class Params(NamedTuple):
    W1: Any
    b1: Any
    W2: Any
    b2: Any


class Twin(NamedTuple):  # the same fields as Params, another class
    W1: Any
    b1: Any
    W2: Any
    b2: Any


@dataclasses.dataclass(frozen=True)
class Frozen:
    W1: Any
    b1: Any
    W2: Any
    b2: Any


@dataclasses.dataclass
class Mutable:  # (never changed by a tapeless program: `x.a = v` is refused)
    W1: Any
    b1: Any
    W2: Any
    b2: Any


class Indexed(NamedTuple):  # indexing is not a tuple's: no kind
    a: Any
    b: Any

    def __getitem__(self, i: Any) -> Any:
        return tuple.__getitem__(self, 1 - i)


def mlp_tuple(p, X):
    W1, b1, W2, b2 = p
    return np.sum(np.tanh(W2 @ np.tanh(W1 @ X + b1) + b2))


def mlp_dict(p, X):
    return np.sum(np.tanh(p["W2"] @ np.tanh(p["W1"] @ X + p["b1"]) + p["b2"]))


def mlp_fields(p, X):
    return np.sum(np.tanh(p.W2 @ np.tanh(p.W1 @ X + p.b1) + p.b2))


def _mlp(r: np.random.Generator, n: int = 4, batch: int = 3) -> tuple[tuple, Any]:
    return (r.normal(size=(n, n)) / 2, r.normal(size=(n, 1)), r.normal(size=(n, n)) / 2,
            r.normal(size=(n, 1))), r.normal(size=(n, batch))


def test_dict_and_record_kinds() -> None:
    a = np.zeros((2, 3))
    k = value_kind({"W": a, "b": 1.5, "t": (a, 2)})
    a23 = array("f8", (2, 3))
    assert k == DictKind((("W", a23), ("b", FLOAT), ("t", tuple_of([a23, INT]))))
    assert str(k) == "dict<W:arrayf8[2,3]|b:float|t:tuple<arrayf8[2,3]|int>>"
    assert fields_of(k) == (("W", a23), ("b", FLOAT), ("t", tuple_of([a23, INT])))
    assert field_kind(k, "t") == tuple_of([a23, INT]) and field_kind(k, "x") is None
    assert value_kind({"b": 1.5, "W": a}) != value_kind({"W": a, "b": 1.5})  # (in order)
    assert value_kind({}) == DictKind(()) and fields_of(DictKind(())) == ()
    assert value_kind({"a": "text"}) == DictKind((("a", None),))
    assert str(value_kind({"a": "text"})) == "dict<a:?>"
    assert fields_of(value_kind({"a": "text"})) == (("a", None),)
    # keys that are not plain strings, dict subclasses: no kind
    for d in ({1: a}, {"a|b": a}, {"a:b": 1.0}, {"<": 1.0}, dict.fromkeys("abc", 1.0) | {2: 1.0}):
        assert value_kind(d) is None, d
    import collections

    assert value_kind(collections.OrderedDict(a=1.0)) is None
    p, t, f, m = (cls(a, 1.0, a, {"x": 2.0}) for cls in (Params, Twin, Frozen, Mutable))
    kinds = [value_kind(v) for v in (p, t, f, m)]
    assert len(set(kinds)) == 4  # two classes never share a kind
    assert type(kinds[0]) is RecordKind and kinds[0].kind == "namedtuple"
    assert type(kinds[2]) is RecordKind and kinds[2].kind == "dataclass"
    assert str(kinds[0]).startswith("namedtuple<Params#") and \
        str(kinds[2]).startswith("dataclass<Frozen#")
    assert str(kinds[0]) == f"namedtuple<Params#{kinds[0].number}|W1:arrayf8[2,3]|b1:float" \
        "|W2:arrayf8[2,3]|b2:dict<x:float>>"
    assert [record_class(k) for k in kinds] == [Params, Twin, Frozen, Mutable]
    assert [class_of_kind(k) for k in kinds] == [Params, Twin, Frozen, Mutable]
    assert all(field_kind(k, "b2") == DictKind((("x", FLOAT),)) for k in kinds)
    assert as_tuple(kinds[0]) == tuple_of([a23, FLOAT, a23, DictKind((("x", FLOAT),))])
    assert as_tuple(kinds[2]) == kinds[2]  # (a dataclass is no tuple)
    assert all(is_container(k) for k in kinds + [value_kind({"a": 1.0})])
    assert value_kind(Indexed(1.0, 2.0)) is None
    assert value_kind(((p,),)) == tuple_of([tuple_of([kinds[0]])])
    assert str(value_kind(((p,),))) == f"tuple<tuple<{kinds[0]}>>"
    # one class, two layouts of fields: two kinds
    assert value_kind(Params(a, 1.0, a, 2.0)) != kinds[0]


@pytest.mark.parametrize("cls", [dict, Params, Frozen, Mutable, "unpacked"])
def test_record_gradients_are_the_tuple_gradients(
        cls: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """A dict, a NamedTuple (read by field or unpacked) and a dataclass of weights: the
    same gradient as the tuple version, in the argument's structure, and the same as the
    unoptimized gradient; the optimized code has none of the run-time shape tests."""
    r = np.random.default_rng(11)
    weights, X = _mlp(r)
    names = ("W1", "b1", "W2", "b2")
    if cls is dict:
        fn, p = mlp_dict, dict(zip(names, weights, strict=True))
    elif cls == "unpacked":
        fn, p, cls = mlp_tuple, Params(*weights), Params
    else:
        fn, p = mlp_fields, cls(*weights)
    g = tl.grad(fn)
    ours = g(p, X)
    assert type(ours) is cls
    got = [ours[k] for k in names] if cls is dict else [getattr(ours, k) for k in names]
    ref = tl.grad(mlp_tuple)(weights, X)
    for a, b, w in zip(got, ref, weights, strict=True):
        assert type(a) is np.ndarray and a.shape == w.shape and a is not w
        np.testing.assert_allclose(a, b, rtol=1e-13, atol=1e-15)
    if cls is dict:
        assert list(ours) == list(names)
    # one entry against finite differences
    h = 1e-6
    plus = {k: v.copy() for k, v in zip(names, weights, strict=True)}
    minus = {k: v.copy() for k, v in zip(names, weights, strict=True)}
    plus["b1"][2, 0] += h
    minus["b1"][2, 0] -= h
    fd = (mlp_dict(plus, X) - mlp_dict(minus, X)) / (2 * h)
    assert got[1][2, 0] == pytest.approx(fd, rel=1e-6, abs=1e-8)
    if os.environ.get("TAPELESS_OPTIMIZE", "") in ("", "all"):
        source = g.source_for(p, X)
        for helper in ("np.ndim", "isinstance", "unbroadcast", "getattr_sens", "gadd"):
            assert helper not in source, (helper, source)
    monkeypatch.setenv("TAPELESS_OPTIMIZE", "0")
    plain = tl.grad(fn)(p, X)
    assert type(plain) is cls
    for k in names:
        a, b = (ours[k], plain[k]) if cls is dict else (getattr(ours, k), getattr(plain, k))
        np.testing.assert_allclose(a, b, rtol=1e-13, atol=1e-15)


def _record_values(d: Any) -> list[Any]:
    if isinstance(d, dict):
        return [v for item in d.values() for v in _record_values(item)]
    if dataclasses.is_dataclass(d):
        return [v for f in dataclasses.fields(d) for v in _record_values(getattr(d, f.name))]
    if isinstance(d, (tuple, list)):
        return [v for item in d for v in _record_values(item)]
    return [d]


def _check_against_plain(fn: Any, cases: list[tuple], monkeypatch: pytest.MonkeyPatch,
                         compiles: int, argnums: Any = 0) -> None:
    g = tl.grad(fn, argnums)
    got = [g(*args) for args in cases]
    assert g.compile_count == compiles
    with monkeypatch.context() as m:
        m.setenv("TAPELESS_OPTIMIZE", "0")
        plain = [tl.grad(fn, argnums)(*args) for args in cases]
    for ours, ref in zip(got, plain, strict=True):
        assert type(ours) is type(ref)
        a, b = _record_values(ours), _record_values(ref)
        assert len(a) == len(b)
        for x, y in zip(a, b, strict=True):
            assert np.shape(x) == np.shape(y)
            np.testing.assert_allclose(x, y, rtol=1e-12, atol=1e-14)


def some_items(p, X):
    out = np.sum(p["W1"] @ X) * len(p)
    if "b2" in p:
        out = out + np.sum(p["b2"] ** 2)
    return out


def test_other_dicts_and_records_recompile(monkeypatch: pytest.MonkeyPatch) -> None:
    """A dict with other keys, in another order, or with an item of another shape or
    type, a NamedTuple or a dataclass of another class with the same fields: new code
    each, and the right gradient."""
    r = np.random.default_rng(5)
    weights, X = _mlp(r)
    small, X3 = _mlp(r, n=3)
    names = ("W1", "b1", "W2", "b2")
    full = dict(zip(names, weights, strict=True))
    cases = [
        (full, X),
        (dict(zip(names, small, strict=True)), X3),  # other shapes
        ({k: full[k] for k in ("b2", "W2", "b1", "W1")}, X),  # another order
        ({**full, "b2": 0.5}, X),  # a float item
        ({"W1": full["W1"], "b1": full["b1"], "W2": full["W2"]}, X),  # fewer keys
        (full, X),
    ]
    _check_against_plain(some_items, cases, monkeypatch, compiles=5)
    _check_against_plain(mlp_dict, [c for c in cases if "b2" in c[0]], monkeypatch,
                         compiles=4)
    records = [(cls(*weights), X) for cls in (Params, Twin, Frozen, Mutable, Params)]
    records.append((Frozen(*small), X3))
    _check_against_plain(mlp_fields, records, monkeypatch, compiles=5)
    g = tl.grad(mlp_fields)
    assert [type(g(p, x)) for p, x in records] == [Params, Twin, Frozen, Mutable, Params, Frozen]


def rebuilt(p, X):
    # dicts built in the function from the argument's items (no dict is changed in place:
    # `p[k] = v` is refused), then read; a NamedTuple built by calling its class
    q = {"W1": p["W1"] * 2.0, "b1": p["b1"]}
    s = 0.0
    for key in q:
        s = s + np.sum(q[key])
    q = {"W1": q["W1"], "b1": q["b1"] * 3.0, "n": len(q)}
    t = Params(p["W2"], q["b1"], p["W2"], p["b2"])
    return np.sum(np.tanh(q["W1"] @ X + q["b1"])) + s + np.sum(t[1] * t.b2) * q["n"]


def type_tests(p, x):
    if isinstance(p, dict):
        return np.sum(p["a"] * x)
    if isinstance(p, tuple):
        a, b = p
        return np.sum(a * b * x)
    return np.sum(p.a * x) * 2.0


def test_dicts_built_inside_and_type_tests(monkeypatch: pytest.MonkeyPatch) -> None:
    r = np.random.default_rng(9)
    weights, X = _mlp(r)
    names = ("W1", "b1", "W2", "b2")
    cases = [(dict(zip(names, weights, strict=True)), X),
             ({k: w.copy() for k, w in zip(names, weights, strict=True)}, X)]
    _check_against_plain(rebuilt, cases, monkeypatch, compiles=1)

    @dataclasses.dataclass(frozen=True)
    class One:
        a: Any

    class Two(NamedTuple):
        a: Any
        b: Any

    v = r.normal(size=3)
    cases = [({"a": v}, v), (Two(v, v * 2), v), (One(v), v), ((v, v), v)]
    _check_against_plain(type_tests, cases, monkeypatch, compiles=4)
    g = tl.grad(type_tests, argnums=1)
    for p, x in cases:
        expected = type_tests(p, x + 1e-6) - type_tests(p, x - 1e-6)
        assert np.sum(g(p, x)) * 2e-6 == pytest.approx(expected, rel=1e-6)


def test_namedtuple_that_indexes_otherwise_shares_generic_code(
        monkeypatch: pytest.MonkeyPatch) -> None:
    def first(t):
        return np.sum(t[0] * 2.0) + np.sum(t.b)

    v, w = np.arange(3.0), np.arange(3.0) + 1
    assert value_kind(Indexed(v, w)) is None
    assert tl.jit(first)(Indexed(v, w)) == first(Indexed(v, w))
    _check_against_plain(first, [(Indexed(v, w),), (Indexed(w, v),)], monkeypatch,
                         compiles=1)

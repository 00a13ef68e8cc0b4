"""A small inference of what kind of value a node holds: enough to fold the type tests
derivative rules make (`isinstance(a, (tuple, list))`, `np.ndim(a) == 1`) and the
broadcasting bookkeeping where shapes are known. Parameters of a compiled function get a
kind from the arguments it is specialized for (Python float or int, NumPy array of a
given dtype and shape); loop state gets one by induction.

Kinds are small frozen values (hashable, compared by value; None where nothing is
known): the singletons FLOAT (a Python float), INT (a Python int), SCALAR (a NumPy
scalar) and NUMERIC (some number or array); `ArrayKind(dtype, shape)` for arrays (dtype
"f8", "i8", "b1" or "?" for another one); `ListKind(element)` for a list whose elements
all have kind `element` (`EMPTY_LIST`, element None: the empty list); and
`TupleKind(items)` for a tuple (exactly `tuple`: not a NamedTuple) whose items have these
kinds (None for an item of unknown kind; no items for the empty tuple).

Dicts, NamedTuples and dataclasses (records) have kinds that name their items:
`DictKind(items)`, items the (key, kind) pairs of a dict (exactly `dict`) with these
string keys, in this order; `RecordKind(kind, number, fields)` ("namedtuple" or
"dataclass") for an instance of the NamedTuple or dataclass class numbered `number`
(`record_class(k)`: numbers are given out once per class and never reused, so two
classes never share a kind; its `name`, the class's, is only for reading) whose fields,
all of them in the class's order, have these kinds. Only keys and field names without
any of the characters `<>[]|:#` get kinds (a dict with another key has none), so that
`str(k)` prints every kind readably and unambiguously: "float", "arrayf8[3,4]",
"list<float>", "list<>", "tuple<float|?>", "dict<k1:K1|k2:K2>",
"namedtuple<Name#n|f1:K1|...>". A NamedTuple class gets kinds only if it indexes,
iterates and reads fields like a tuple (`record_fields`). A NamedTuple of a known kind is
a tuple of its fields' kinds wherever it is indexed, sliced, concatenated or unpacked.
Tapeless programs never change a dict or a record (`d[k] = v` and `x.a = v` are
refused), so an argument's kind holds for every read of it.

Only primal values get container kinds: a container's sensitivity may hold symbolic zeros
or miss items (a display of sensitivities gets a kind, each item the kind of its node,
which says what it is when it is not ZERO; `gadd` and `sens_of` never give one, nor
`to_structure` except where the value it is like is a tuple or list of float64 arrays,
whose gradient it fills with zeros). A value of a container kind (tuple, list, dict or
record) is never ZERO and never numeric."""

from __future__ import annotations

import collections
import itertools
import math
import operator
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, TypeGuard, cast

from ..ir.edit import keeping_users, users_of
from ..ir.nodes import Apply, Constant, Graph, Node, Parameter, graph_nodes, is_inside
from ..primitives import PRIMITIVES, Primitive
from ..primitives.core import COMPARISON_OPERATORS

if TYPE_CHECKING:
    from .loop_facts import LoopFacts, LoopInfo


class Kind:
    """What is known of a value's type (see the module's documentation)."""

    __slots__ = ()


@dataclass(frozen=True, eq=False, repr=False, slots=True)
class ScalarKind(Kind):
    """A kind of number: FLOAT, INT, SCALAR or NUMERIC, one instance each (compared by
    identity)."""

    name: str

    def __str__(self) -> str:
        return self.name

    def __repr__(self) -> str:
        return self.name.upper()

    def __reduce__(self) -> str:
        return self.name.upper()  # (copied and pickled as the module's singleton)


FLOAT = ScalarKind("float")      # a Python float
INT = ScalarKind("int")          # a Python int
SCALAR = ScalarKind("scalar")    # a NumPy scalar (what a full reduction returns), or loop
#                                  state that starts as a Python float and becomes one: a
#                                  0-d number, no array
NUMERIC = ScalarKind("numeric")  # a number or an array: never a tuple, list, dict or function
_NUMBERS = (FLOAT, INT, SCALAR)
# `Primitive.result_kind` (declared below the optimizer, as a name) as a kind.
_RESULT_KINDS = {"float": FLOAT, "int": INT}


@dataclass(frozen=True, slots=True)
class ArrayKind(Kind):
    """A NumPy array of this dtype ("f8", "i8", "b1", or "?" for any other) and shape."""

    dtype: str
    shape: tuple[int, ...]

    def __str__(self) -> str:
        return f"array{self.dtype}[{','.join(str(n) for n in self.shape)}]"


@dataclass(frozen=True, slots=True)
class ListKind(Kind):
    """A list (exactly `list`) whose elements all have kind `element` (None: the empty
    list, `EMPTY_LIST`, which joins with a list of any kind of element)."""

    element: Kind | None

    def __str__(self) -> str:
        return f"list<{'' if self.element is None else self.element}>"


@dataclass(frozen=True, slots=True)
class ListItemsKind(Kind):
    """A list (exactly `list`) argument of these items' kinds, of which at least two
    differ (a list of layers of different shapes) or which are containers (a list of
    `(W, b)` layers of one shape: a structure, as a tuple is): its signature keeps every
    item (`api._signature`), and an argument is never changed in place, so item k has
    kind `items[k]` wherever it is read. Only reads at a constant index, reads at an int
    index where the items share a kind, and its length see the items (`list_items_of`);
    other operations give values of unknown kind."""

    items: tuple[Kind | None, ...]

    def __str__(self) -> str:
        return f"list<{_joined(self.items)}>"  # (two items or more: a '|' at the top)


@dataclass(frozen=True, slots=True)
class TupleKind(Kind):
    """A tuple (exactly `tuple`) whose items have these kinds (None: unknown)."""

    items: tuple[Kind | None, ...]

    def __str__(self) -> str:
        return f"tuple<{_joined(self.items)}>"


@dataclass(frozen=True, slots=True)
class DictKind(Kind):
    """A dict (exactly `dict`) with these plain string keys, in this order, whose items
    have these kinds (None: unknown)."""

    items: tuple[tuple[str, Kind | None], ...]

    def __str__(self) -> str:
        return f"dict<{_joined_fields(self.items)}>"


@dataclass(frozen=True, slots=True)
class RecordKind(Kind):
    """An instance of the NamedTuple or dataclass class numbered `number` (see
    `record_of`), whose fields, all of them in the class's order, have these kinds (None:
    unknown). `name` is the class's name, for reading only (the number says the class)."""

    kind: Literal["namedtuple", "dataclass"]
    number: int
    fields: tuple[tuple[str, Kind | None], ...]
    name: str = field(default="", compare=False)

    def __str__(self) -> str:
        fields = "".join(f"|{f}:{'?' if k is None else k}" for f, k in self.fields)
        return f"{self.kind}<{self.name}#{self.number}{fields}>"


def _joined(items: tuple[Kind | None, ...]) -> str:
    return "|".join("?" if k is None else str(k) for k in items)


def _joined_fields(items: tuple[tuple[str, Kind | None], ...]) -> str:
    return "|".join(f"{key}:{'?' if k is None else k}" for key, k in items)


EMPTY_LIST = ListKind(None)
_CONTAINERS = (TupleKind, ListKind, ListItemsKind, DictKind, RecordKind)


def array(dtype: str, shape: tuple[int, ...]) -> ArrayKind:
    return ArrayKind(dtype, tuple(shape))


def shape_of(k: Kind | None) -> tuple[int, ...] | None:
    return k.shape if type(k) is ArrayKind else None


def dtype_of(k: Kind | None) -> str | None:
    return k.dtype if type(k) is ArrayKind else None


def ndim_of(k: Kind | None) -> int | None:
    return len(k.shape) if type(k) is ArrayKind else None


def list_of(element: Kind) -> ListKind:
    return ListKind(element)


def element_of(k: Kind | None) -> Kind | None:
    """The elements' kind of a list kind, else None (also for the empty list: see
    `is_list`)."""
    return k.element if type(k) is ListKind else None


def is_list(k: Kind | None) -> bool:
    """A list kind (the empty list's included)."""
    return type(k) is ListKind


def _join_lists(a: Kind | None, b: Kind | None) -> Kind | None:
    if type(a) is not ListKind or type(b) is not ListKind:
        return None
    if a.element is None or a.element == b.element:
        return b
    return a if b.element is None else None


def _list_of_items(kinds: list[Kind | None]) -> ListKind | None:
    """The kind of a list display whose elements have these kinds."""
    if not kinds:
        return EMPTY_LIST
    return list_of(kinds[0]) if kinds[0] is not None and _common(kinds) else None


# Arguments are specialized to tuples of at most this many items, this deep: beyond, a
# tuple shares generic code (its kind and its signature say only "a tuple").
MAX_TUPLE_ITEMS = 32
MAX_TUPLE_DEPTH = 6


def tuple_of(items: list[Kind | None] | tuple[Kind | None, ...]) -> TupleKind:
    """The kind of a tuple whose items have these kinds (None: unknown)."""
    return TupleKind(tuple(items))


def is_tuple(k: Kind | None) -> bool:
    return type(k) is TupleKind


def is_container(k: Kind | None) -> bool:
    """A tuple, list, dict or record kind: a value that is not a number or an array."""
    return type(k) in _CONTAINERS


_NOT_IN_NAMES = frozenset("<>[]|:#")


def _plain_name(name: str) -> bool:
    """Whether a key or field name can be written in a kind."""
    return _NOT_IN_NAMES.isdisjoint(name)


def dict_of(keys: list[str], items: list[Kind | None]) -> DictKind:
    """The kind of a dict with these keys (plain strings), whose items have these kinds."""
    return DictKind(tuple(zip(keys, items, strict=True)))


def is_dict(k: Kind | None) -> TypeGuard[DictKind]:
    return type(k) is DictKind


def is_namedtuple(k: Kind | None) -> TypeGuard[RecordKind]:
    return type(k) is RecordKind and k.kind == "namedtuple"


def is_record(k: Kind | None) -> TypeGuard[RecordKind]:
    """A NamedTuple or dataclass kind."""
    return type(k) is RecordKind


# Classes numbered for record kinds, both ways (the classes are kept: a kind may be read
# back into its class as long as the process runs).
_CLASS_NUMBERS: dict[type, int] = {}
_NUMBERED_CLASSES: dict[int, type] = {}
_class_numbers = itertools.count(1)
# The field names of each class seen (None: not a record, or one that gets no kind).
_RECORD_FIELDS: dict[type, tuple[str, ...] | None] = {}


def record_fields(cls: type) -> tuple[str, ...] | None:
    """The field names of a NamedTuple or dataclass class that gets record kinds, else
    None (cached per class: `tapeless.api._signature` asks on every call). A NamedTuple
    class qualifies if tuple methods are its own (indexing, iterating, length,
    concatenation, attribute lookup) and each field is read by the field descriptor of its
    position; a dataclass if its fields' names are plain."""
    try:
        return _RECORD_FIELDS[cls]
    except KeyError:
        pass
    import dataclasses

    names: tuple[str, ...] | None = None
    if isinstance(cls, type) and issubclass(cls, tuple) and \
            type(fields := getattr(cls, "_fields", None)) is tuple:
        names = tuple(fields)
        if any(getattr(cls, m, None) is not getattr(tuple, m) for m in _TUPLE_METHODS) or \
                hasattr(cls, "__getattr__") or hasattr(cls, "__radd__") or not all(
                    type(d := getattr(cls, f, None)) is _FIELD_GETTER and
                    d.__reduce__()[1][0] == i for i, f in enumerate(names)):
            names = None
    elif isinstance(cls, type) and dataclasses.is_dataclass(cls):
        names = tuple(f.name for f in dataclasses.fields(cls))
    if names is not None and (len(names) > MAX_TUPLE_ITEMS or not all(
            type(f) is str and _plain_name(f) for f in names)):
        names = None
    _RECORD_FIELDS[cls] = names
    return names


# The descriptor type of NamedTuple fields.
_FIELD_GETTER = type(vars(collections.namedtuple("_Pair", "a"))["a"])
_TUPLE_METHODS = ("__getitem__", "__iter__", "__len__", "__add__", "__mul__", "__rmul__",
                  "__getattribute__", "__eq__", "__hash__")


def record_of(cls: type, items: list[Kind | None]) -> RecordKind:
    """The kind of an instance of a record class (`record_fields(cls)` is not None) whose
    fields have these kinds."""
    n = _CLASS_NUMBERS.get(cls)
    if n is None:
        n = _CLASS_NUMBERS[cls] = next(_class_numbers)  # (atomic: never given twice)
        _NUMBERED_CLASSES[n] = cls
    name = cls.__name__ if _plain_name(cls.__name__) else ""
    head: Literal["namedtuple", "dataclass"] = \
        "namedtuple" if issubclass(cls, tuple) else "dataclass"
    names = record_fields(cls)
    assert names is not None
    return RecordKind(head, n, tuple(zip(names, items, strict=True)), name)


def record_class(k: Kind | None) -> type | None:
    """The class of a record kind, else None."""
    return _NUMBERED_CLASSES.get(k.number) if type(k) is RecordKind else None


_CLASS_OF_KIND: dict[type, type] = {TupleKind: tuple, ListKind: list, ListItemsKind: list,
                                     DictKind: dict}


def class_of_kind(k: Kind | None) -> type | None:
    """The exact class of the values of a container kind, else None."""
    cls = _CLASS_OF_KIND.get(type(k))
    return cls if cls is not None else record_class(k)


def fields_of(k: Kind | None) -> tuple[tuple[str, Kind | None], ...] | None:
    """The (key or field name, kind) pairs of a dict or record kind (None for an item of
    unknown kind), in order, else None."""
    if type(k) is DictKind:
        return k.items
    return k.fields if type(k) is RecordKind else None


def field_kind(k: Kind | None, name: object) -> Kind | None:
    """The kind of item `name` of a dict kind, or of field `name` of a record kind."""
    for f, item in fields_of(k) or ():
        if f == name:
            return item
    return None


def as_tuple(k: Kind | None) -> Kind | None:
    """A NamedTuple kind as the kind of the plain tuple of its fields (what indexing,
    slicing, concatenating and unpacking see); other kinds as they are."""
    if type(k) is RecordKind and k.kind == "namedtuple":
        return TupleKind(tuple(item for _, item in k.fields))
    return k


def list_items_of(k: Kind | None) -> tuple[Kind | None, ...] | None:
    """The items' kinds of a list argument's kind that has them (`ListItemsKind`)."""
    return k.items if type(k) is ListItemsKind else None


def items_of(k: Kind | None) -> tuple[Kind | None, ...] | None:
    """The items' kinds of a tuple kind (None for an unknown item), else None."""
    return k.items if type(k) is TupleKind else None


def value_kind(value: object, depth: int = 0) -> Kind | None:
    """The kind of a run-time value (for specializing on arguments: a function of
    `tapeless.api._signature(value)`)."""
    if type(value) is float:
        return FLOAT
    if type(value) is int:
        return INT
    if type(value).__name__ == "float64" and type(value).__module__ == "numpy":
        return SCALAR  # (its signature is its type: code for it never runs on a float)
    if type(value) is tuple:
        if len(value) > MAX_TUPLE_ITEMS or depth >= MAX_TUPLE_DEPTH:
            return None
        return tuple_of([value_kind(v, depth + 1) for v in value])
    if type(value) is list:
        # A list whose items all have one kind (a list of floats, of same-shape arrays).
        if not value or len(value) > MAX_TUPLE_ITEMS or depth >= MAX_TUPLE_DEPTH:
            return None
        each = [value_kind(v, depth + 1) for v in value]
        kinds = set(each)
        if len(kinds) > 1 or is_container(each[0]):
            # (Items of different kinds have different signatures, and a list of
            # containers, as a list of layers, is a structure, not data: the list's
            # signature keeps them, its length with them.)
            return ListItemsKind(tuple(each))
        k = kinds.pop()
        return list_of(k) if k is not None else None
    if type(value) is dict:
        if len(value) > MAX_TUPLE_ITEMS or depth >= MAX_TUPLE_DEPTH or \
                not all(type(key) is str and _plain_name(key) for key in value):
            return None
        return dict_of(list(value), [value_kind(v, depth + 1) for v in value.values()])
    fields = record_fields(type(value))
    if fields is not None:
        items = list(value) if isinstance(value, tuple) else \
            [getattr(value, f) for f in fields]
        if depth >= MAX_TUPLE_DEPTH or len(items) != len(fields):
            return None
        return record_of(type(value), [value_kind(v, depth + 1) for v in items])
    if type(value).__name__ == "ndarray" and type(value).__module__ == "numpy":
        # (A NumPy array, told by its type's name: kinds do not import NumPy.)
        nd: Any = value
        dtype = {"<f8": "f8", "=f8": "f8", "<i8": "i8", "=i8": "i8", "|b1": "b1"}.get(
            nd.dtype.str, "?")
        return array(dtype, nd.shape)
    return None


def _scalar_shape(k: Kind | None) -> tuple[int, ...] | None:
    """Shapes for broadcasting: scalars are ()."""
    # (Type and identity tests: `k in (FLOAT, INT, SCALAR)` calls an array kind's
    # dataclass `__eq__` three times, and this runs for every argument of every array
    # operation inferred.)
    if type(k) is ArrayKind:
        return k.shape
    return () if type(k) is ScalarKind and k is not NUMERIC else None


def _dtype(kinds: list[Kind | None]) -> str:
    """The dtype of an arithmetic result: float64 where a float64 array (or, with int and
    bool arrays only, a Python float) takes part."""
    # (Type and identity tests only: the scalar kinds are singletons, and comparing an
    # array kind with one calls its dataclass `__eq__`.)
    f8_array = any(type(k) is ArrayKind and k.dtype == "f8" for k in kinds)
    has_float = has_array = False
    for k in kinds:
        t = type(k)
        if t is ArrayKind:
            if k.dtype not in ("f8", "i8", "b1"):  # type: ignore[union-attr]
                return "?"
            has_array = True
        elif t is not ScalarKind or k is NUMERIC:
            return "?"
        elif k is SCALAR and not f8_array:
            return "?"
        elif k is FLOAT:
            has_float = True
    return "f8" if f8_array or has_float or not has_array else "?"


def _where_kind(args: list[Kind | None], inputs: list[Node]) -> Kind | None:
    """`np.where(condition, x, y)`: an array of the three shapes broadcast, of x's and
    y's dtype (a 0-d result is a 0-d array, not a NumPy scalar: no kind)."""
    shapes = [s for a in args if (s := _scalar_shape(a)) is not None]
    if dtype_of(args[0]) != "b1" or len(shapes) != len(args):
        return None  # (a boolean array condition only)
    shape = _broadcast(shapes)
    x, y = args[1:]
    # (of two arrays of one dtype, that dtype: a step count kept by a masked loop)
    dtype = x.dtype if type(x) is ArrayKind and type(y) is ArrayKind and \
        x.dtype == y.dtype else _dtype(args[1:])
    return array(dtype, shape) if shape else None


def _keep_dtype(k: Kind | None) -> str:
    """The dtype of a rearrangement (transpose, indexing) of a value of kind k."""
    d = dtype_of(k)
    return d if d in ("f8", "i8", "b1") else _dtype([k])


def _broadcast(shapes: list[tuple[int, ...]]) -> tuple[int, ...] | None:
    ndim = max(len(s) for s in shapes)
    out = []
    for i in range(ndim):
        sizes = {s[len(s) - ndim + i] for s in shapes if len(s) - ndim + i >= 0}
        sizes.discard(1)
        if len(sizes) > 1:
            return None
        out.append(sizes.pop() if sizes else 1)
    return tuple(out)


def normalized_axes(axis: object, ndim: int) -> tuple[int, ...] | None:
    """The axes a constant `axis` argument (an int or a tuple of ints) names in an array of
    `ndim` dimensions, non-negative and sorted, as NumPy reads them; None where NumPy
    raises (an axis out of range, one named twice) and for arguments of other types
    (None, whose meaning is each caller's; bools, lists and NumPy ints, which are not
    guessed at)."""
    axes = (axis,) if type(axis) is int else axis if type(axis) is tuple else None
    if axes is None or not all(type(a) is int and -ndim <= a < ndim for a in axes):
        return None
    out = tuple(sorted({a % ndim for a in axes}))
    return out if len(out) == len(axes) else None


def _any_of_type(kinds: list[Kind | None], t: type) -> bool:
    """Whether any of `kinds` is of type `t` exactly (a loop, not a generator: this runs
    for every array operation inferred)."""
    for k in kinds:
        if type(k) is t:
            return True
    return False


def _const(node: Node) -> object:
    return node.value if isinstance(node, Constant) else _MISSING


_MISSING = object()


def _array_kind(prim: Primitive, node: Apply, args: list[Kind | None],
                facts: LoopFacts | None, depth: int, assumed: Assumptions | None) -> Kind | None:
    """Kinds of array operations whose shape follows from their inputs' shapes (`depth`:
    the caller's, for the index inference some of them recurse into)."""
    if not _any_of_type(args, ArrayKind):
        return None
    name = prim.name
    shapes = [_scalar_shape(a) for a in args]
    if prim.elementwise:
        known = [s for s in shapes if s is not None]
        if len(known) != len(shapes):
            return None
        shape = _broadcast(known)
        dtype = "b1" if prim.comparison else "i8" if _int_arithmetic(name, args) else \
            _dtype(args)
        if shape == ():
            return SCALAR  # ufuncs return NumPy scalars, not 0-d arrays
        return array(dtype, shape) if shape is not None else None
    first = shapes[0]
    if first is None:
        return None
    if prim.shaped_like is not None:
        other = args[prim.shaped_like] if len(args) > prim.shaped_like else None
        if other in (FLOAT, INT):
            return FLOAT if args[0] in (FLOAT, INT) else None
        dtype = _keep_dtype(args[0]) if shape_of(args[0]) is not None else _dtype(args[:1])
        other_shape = shape_of(other)
        return array(dtype, other_shape) if other_shape is not None else None
    if name == "getitem" and len(first) >= 1:
        index = node.inputs[2]
        if args[1] == INT:
            rest = first[1:]
            if rest:
                return array(_keep_dtype(args[0]), rest)
            # (an item of an object or string array may be anything)
            return SCALAR if dtype_of(args[0]) in ("f8", "i8", "b1") else None
        bounds = _constant_slice(index, facts, depth + 1, assumed)
        if bounds is not None:
            n = len(range(*bounds.indices(first[0])))
            return array(_keep_dtype(args[0]), (n,) + first[1:])
        shape = _index_shape(first, index, facts, depth + 1, assumed)
        if shape is None:
            return None
        if not shape:  # an element (`A[i, j]`): a NumPy scalar
            return SCALAR if dtype_of(args[0]) in ("f8", "i8", "b1") else None
        return array(_keep_dtype(args[0]), shape)
    if prim.reduction:
        axis, keepdims = _const(node.inputs[2]), _const(node.inputs[-1])
        if axis is None and keepdims is False:
            return SCALAR
        if type(keepdims) is not bool:
            return None
        # (NumPy takes axis 0 of a 0-d array, and makes it a scalar: not guessed.)
        axes = tuple(range(len(first))) if axis is None else normalized_axes(axis, len(first))
        if axes is None:
            return None
        shape = tuple(1 if i in axes else n for i, n in enumerate(first)) if keepdims else \
            tuple(n for i, n in enumerate(first) if i not in axes)
        dtype = _dtype(args[:1])
        if dtype_of(args[0]) in ("i8", "b1") and name in ("np.sum", "method.sum") and \
                len(node.inputs) > 3 and _const(node.inputs[3]) is None:
            dtype = "i8"
        # A reduction to no axes at all gives a NumPy scalar, not a 0-d array.
        return array(dtype, shape) if shape else SCALAR
    return None


def _int_arithmetic(name: str, args: list[Kind | None]) -> bool:
    """`+ - * //` of int64 arrays and Python ints (a step count under `tl.vmap`): an
    int64 array, as NumPy gives."""
    return name in _INT_ARITHMETIC and all(
        a is INT or (type(a) is ArrayKind and a.dtype == "i8") for a in args)


def _array_shapes(args: list[Kind | None]) -> list[tuple[int, ...] | None] | None:
    """The arguments' shapes (a number's is ()) where one of them is an array and the
    first one's shape is known, else None: where a shape rule applies."""
    if not any(type(a) is ArrayKind for a in args):
        return None
    shapes = [_scalar_shape(a) for a in args]
    return shapes if shapes[0] is not None else None


# Shape rules of primitives, registered as their `abstract_eval` (see the end of the
# module): (arguments' kinds, argument nodes) -> the result's kind, or None where the rule
# does not apply.

def _matmul_kind(args: list[Kind | None], inputs: list[Node]) -> Kind | None:
    """`a @ b`, `np.matmul(a, b)`: NumPy's rules for vectors and (stacks of) matrices."""
    shapes = _array_shapes(args)
    if shapes is None or shapes[1] is None:
        return None
    a, b = shapes[0], shapes[1]
    assert a is not None
    if len(a) == 0 or len(b) == 0:
        return None
    if len(a) == 1 and len(b) == 1:
        return SCALAR
    if len(a) == 1:
        return array(_dtype(args[:2]), b[:-2] + b[-1:])
    if len(b) == 1:
        return array(_dtype(args[:2]), a[:-1])
    batch = _broadcast([a[:-2], b[:-2]])
    return array(_dtype(args[:2]), batch + (a[-2], b[-1])) if batch is not None else None


def _dot_kind(args: list[Kind | None], inputs: list[Node]) -> Kind | None:
    """`np.dot(a, b)`: a product where either is a number; a sum over the last axis of
    `a` and the second-to-last of `b` (the last, for a vector) otherwise."""
    shapes = _array_shapes(args)
    if shapes is None or shapes[1] is None:
        return None
    a, b = shapes[0], shapes[1]
    assert a is not None
    if len(a) == 0 or len(b) == 0:
        shape = _broadcast([a, b])
        return array(_dtype(args[:2]), shape) if shape is not None else None
    if len(a) == 1 and len(b) == 1:
        return SCALAR
    if len(b) == 1:
        return array(_dtype(args[:2]), a[:-1])
    return array(_dtype(args[:2]), a[:-1] + b[:-2] + b[-1:])


def _einsum_kind(args: list[Kind | None], inputs: list[Node]) -> Kind | None:
    """`np.einsum(subscripts, *operands)` with constant subscripts of letters (no
    ellipsis) and float64 operands of known shapes that give each label one size (or 1,
    broadcast): float64 of the output labels' sizes, the explicit output's or, without
    `->`, the labels used once, sorted (NumPy's order)."""
    spec = _const(inputs[0])
    if type(spec) is not str or "." in spec or len(args) < 2:
        return None
    # (the operands as the call's parameters, or packed in one tuple, `*operands`)
    operands = list(items_of(args[1]) or ()) if len(args) == 2 and is_tuple(args[1]) \
        else args[1:]
    spec = spec.replace(" ", "")
    terms, arrow, out = spec.partition("->")
    parts = terms.split(",")
    if len(parts) != len(operands) or not all(is_f8(a) for a in operands):
        return None
    sizes: dict[str, int] = {}
    for part, k in zip(parts, operands, strict=True):
        shape = shape_of(k)
        if shape is None or len(shape) != len(part) or not part.isalpha():
            return None
        for c, n in zip(part, shape, strict=True):
            m = sizes.get(c, 1)
            if m != 1 and n not in (1, m):
                return None  # (NumPy raises)
            sizes[c] = max(m, n)
    if not arrow:
        letters = terms.replace(",", "")
        out = "".join(sorted(c for c in set(letters) if letters.count(c) == 1))
    if not all(c in sizes for c in out) or len(set(out)) != len(out):
        return None
    return array("f8", tuple(sizes[c] for c in out))


def _swapaxes_kind(args: list[Kind | None], inputs: list[Node]) -> Kind | None:
    """`np.swapaxes(a, i, j)`, constant axes in range: a's shape with the two swapped."""
    shapes = _array_shapes(args)
    if shapes is None:
        return None
    first = shapes[0]
    assert first is not None
    i, j = _const(inputs[1]), _const(inputs[2])
    if isinstance(i, int) and isinstance(j, int) and -len(first) <= min(i, j) and \
            max(i, j) < len(first):
        s = list(first)
        s[i], s[j] = s[j], s[i]
        return array(_keep_dtype(args[0]), tuple(s))
    return None


def _reversed_kind(args: list[Kind | None]) -> Kind | None:
    """The transpose of the first argument: its shape reversed."""
    shapes = _array_shapes(args)
    if shapes is None:
        return None
    first = shapes[0]
    assert first is not None  # (see _array_shapes)
    return array(_keep_dtype(args[0]), tuple(reversed(first)))


def _transpose_kind(args: list[Kind | None], inputs: list[Node]) -> Kind | None:
    """`np.transpose(a)`, no axes given (the shape reversed), or `np.transpose(a, axes)`
    with constant axes, one for each of a's (as batched code transposes each element)."""
    axes = _const(inputs[1])
    if axes is None:
        return _reversed_kind(args)
    shapes = _array_shapes(args)
    if shapes is None or not isinstance(axes, (tuple, list)):
        return None
    first = shapes[0]
    assert first is not None  # (see _array_shapes)
    n = len(first)
    if not all(type(a) is int and -n <= a < n for a in axes):
        return None
    order = [a % n for a in axes]
    if sorted(order) != list(range(n)):
        return None
    return array(_keep_dtype(args[0]), tuple(first[i] for i in order))


def _attribute_kind(args: list[Kind | None], inputs: list[Node]) -> Kind | None:
    """`x.T` (the fields of dicts and records: see `_infer`)."""
    return _reversed_kind(args) if _const(inputs[1]) == "T" else None


def _expand_dims_kind(args: list[Kind | None], inputs: list[Node]) -> Kind | None:
    """`np.expand_dims(a, axis)`, a constant axis or tuple of axes: the axes are the
    result's, as many more dimensions as the tuple has items."""
    shapes = _array_shapes(args)
    if shapes is None:
        return None
    first = shapes[0]
    assert first is not None
    axis = _const(inputs[1])
    ndim = len(first) + (len(axis) if type(axis) is tuple else 1)
    axes = normalized_axes(axis, ndim)
    if axes is None:
        return None
    rest = iter(first)
    return array(_keep_dtype(args[0]), tuple(1 if i in axes else next(rest)
                                         for i in range(ndim)))


def _squeeze_kind(args: list[Kind | None], inputs: list[Node]) -> Kind | None:
    """`np.squeeze(a, axis)`, `a.squeeze(axis)`, constant axes of length 1."""
    shapes = _array_shapes(args)
    if shapes is None:
        return None
    first = shapes[0]
    assert first is not None
    axes = normalized_axes(_const(inputs[1]), len(first))
    if axes is None or any(first[a] != 1 for a in axes):
        return None  # (NumPy refuses to squeeze an axis of another length)
    return array(_keep_dtype(args[0]), tuple(n for i, n in enumerate(first)
                                             if i not in axes))


def _index_parts(index: Node) -> list[Node] | None:
    if isinstance(index, Constant) and type(index.value) is tuple:
        return [Constant(v) for v in index.value]
    if isinstance(index, Apply) and prim_name(index) == "make_tuple":
        return list(index.inputs[1:])
    return None


def _index_shape(shape: tuple[int, ...], index: Node, facts: LoopFacts | None, depth: int,
                 assumed: Assumptions | None) -> tuple[int, ...] | None:
    """The shape of `x[index]` for a tuple of `None`s, constant slices, ints and int64
    arrays, where x has `shape`; None where unknown. As NumPy does: where there is an
    array, the arrays and ints are one advanced index whose shapes broadcast together;
    its axes replace theirs where they are adjacent, else come first. (One int64 array
    alone is an index of one part.)"""
    parts = _index_parts(index)
    if parts is None:
        if dtype_of(kind(index, facts, depth + 1, assumed)) != "i8":
            return None
        parts = [index]
    out: list[int] = []
    advanced: list[tuple[int, ...]] = []  # the shapes of the arrays and ints
    places: list[int] = []  # where each of them is among the parts
    arrays = False
    where = 0
    axis = 0
    for place, p in enumerate(parts):
        if isinstance(p, Constant) and p.value is None:
            out.append(1)
            continue
        if axis >= len(shape):
            return None
        bounds = _constant_slice(p, facts, depth + 1, assumed)
        if bounds is not None:
            out.append(len(range(*bounds.indices(shape[axis]))))
            axis += 1
            continue
        k = kind(p, facts, depth + 1, assumed)
        s = () if k == INT else shape_of(k) if dtype_of(k) == "i8" else None
        if s is None:
            return None
        arrays = arrays or k != INT
        if not advanced:
            where = len(out)
        advanced.append(s)
        places.append(place)
        axis += 1
    out.extend(shape[axis:])
    if not arrays:
        return tuple(out)
    broadcast = _broadcast(advanced)
    if broadcast is None:
        return None
    if places != list(range(places[0], places[0] + len(places))):
        where = 0  # (arrays apart: NumPy puts their axes first)
    out[where:where] = broadcast
    return tuple(out)


def _constant_slice(index: Node, facts: LoopFacts | None = None, depth: int = 0,
                    assumed: Assumptions | None = None) -> slice | None:
    if isinstance(index, Constant) and isinstance(index.value, slice):
        return index.value
    if isinstance(index, Apply) and prim_name(index) == "make_slice":
        bounds: list[int | None] = []
        for i in index.inputs[1:]:
            if isinstance(i, Constant) and i.value is None:
                bounds.append(None)
                continue
            v = int_value(i, facts, depth + 1, assumed)
            if v is None:
                return None
            bounds.append(v)
        return slice(*bounds)
    return None


def int_value(node: Node, facts: LoopFacts | None = None, depth: int = 0,
              assumed: Assumptions | None = None) -> int | None:
    """The value of an int computed from constants and known shapes (`x.shape[0] * 2`),
    else None."""
    if isinstance(node, Constant):
        value: object = node.value
        return value if type(value) is int else None
    if depth > 40:
        _cut_short(facts)
        return None
    name = prim_name(node)
    if name in _INT_ARITHMETIC and isinstance(node, Apply):
        a, b = (int_value(x, facts, depth + 1, assumed) for x in node.inputs[1:3])
        if a is None or b is None or (name == "floordiv" and b == 0):
            return None
        return _INT_ARITHMETIC[name](a, b)
    if name in ("getitem", "tuple_getitem") and isinstance(node, Apply):
        seq, i = node.inputs[1:3]
        # (`x.shape[i]`, `np.shape(x)[i]`)
        if isinstance(seq, Apply) and (prim_name(seq) == "np.shape" or (
                prim_name(seq) == "getattr" and isinstance(seq.inputs[2], Constant) and
                seq.inputs[2].value == "shape")) and isinstance(i, Constant) and \
                type(i.value) is int:
            shape = shape_of(kind(seq.inputs[1], facts, depth + 1, assumed))
            if shape is not None and -len(shape) <= i.value < len(shape):
                return shape[i.value]
    if name == "np.size" and isinstance(node, Apply) and len(node.inputs) == 2:
        # (a number's size is 1: `tl.jacrev` of a function returning one)
        shape = _scalar_shape(kind(node.inputs[1], facts, depth + 1, assumed))
        return math.prod(shape) if shape is not None else None
    return None


def _known_shape(node: Node, facts: LoopFacts | None, depth: int,
                 assumed: Assumptions | None) -> tuple[int, ...] | None:
    """The value of a shape computed from constants and known shapes (`(n,) +
    np.shape(x)`, as a batched value's is), else None."""
    if isinstance(node, Constant):
        value = node.value
        return value if type(value) is tuple and all(type(n) is int for n in value) else None
    if not isinstance(node, Apply):
        return None
    if depth > 40:
        _cut_short(facts)
        return None
    name = prim_name(node)
    if name == "make_tuple":
        dims = [int_value(i, facts, depth + 1, assumed) for i in node.inputs[1:]]
        return None if None in dims else tuple(cast(list[int], dims))
    if name == "add":
        a, b = (_known_shape(x, facts, depth + 1, assumed) for x in node.inputs[1:3])
        return None if a is None or b is None else a + b
    if name == "np.shape":  # (a number's shape is ())
        return _scalar_shape(kind(node.inputs[1], facts, depth + 1, assumed))
    return None


def _broadcast_to_kind(node: Apply, facts: LoopFacts | None, depth: int,
                       assumed: Assumptions | None) -> Kind | None:
    """`np.broadcast_to(a, shape)`: an array of a's dtype and that shape, where known."""
    if len(node.inputs) != 3:
        return None
    a = kind(node.inputs[1], facts, depth + 1, assumed)
    dtype = dtype_of(a) if isinstance(a, ArrayKind) else "f8" if a is FLOAT else \
        "i8" if a is INT else None
    shape = _known_shape(node.inputs[2], facts, depth + 1, assumed)
    return array(dtype, shape) if dtype is not None and shape is not None else None


def sequence_items(node: Node, facts: LoopFacts | None = None) -> list[Node] | None:
    """The element nodes of a tuple or list display (or `list(...)` of one). With loop
    facts, a display a forward loop saved, for a backward loop's read of it: then the
    elements are the forward loop's nodes, good for their kinds only."""
    if facts is not None and isinstance(node, Apply) and prim_name(node) == "tuple_getitem" \
            and isinstance(node.inputs[2], Constant) and type(node.inputs[2].value) is int:
        item = item_nodes(node.inputs[1], node.inputs[2].value, facts)
        if item is not None and len(item) == 1 and item[0] is not node:
            return sequence_items(item[0], facts)
    if not (isinstance(node, Apply) and isinstance(node.inputs[0], Constant)):
        return None
    name = getattr(node.inputs[0].value, "name", None)
    if name in ("make_tuple", "make_list"):
        return node.inputs[1:]
    if name == "list" and len(node.inputs) == 2:
        return sequence_items(node.inputs[1], facts)
    return None


def _concatenate_kind(node: Apply, facts: LoopFacts | None, depth: int,
                      assumed: Assumptions | None) -> Kind | None:
    """np.concatenate of a display of float64 arrays along axis 0 (the default)."""
    items = sequence_items(node.inputs[1])
    axis = _const(node.inputs[2]) if len(node.inputs) > 2 else 0
    if not items or type(axis) is not int:
        return None
    found = [shape_of(kind(i, facts, depth + 1, assumed)) for i in items]
    kinds = [kind(i, facts, depth + 1, assumed) for i in items]
    shapes = [s for s in found if s is not None and len(s) != 0]
    if len(shapes) != len(found) or any(dtype_of(k) != "f8" for k in kinds):
        return None
    ndim = len(shapes[0])
    if not -ndim <= axis < ndim or any(len(s) != ndim for s in shapes):
        return None
    axis %= ndim
    rest = [s[:axis] + s[axis + 1:] for s in shapes]
    if any(r != rest[0] for r in rest):
        return None
    total = sum(s[axis] for s in shapes)
    return array("f8", shapes[0][:axis] + (total,) + shapes[0][axis + 1:])


def list_length(node: Node, facts: LoopFacts | None = None, depth: int = 0) -> int | None:
    """The number of items of a list, where it is known: a display, `list()`, `range(n)`,
    `list_append(l, x)` or `l + m` of lists of known length, a comprehension over one of
    known length, and the list a `for` loop over a range
    of known length leaves, where it starts with a known length and every iteration
    appends the same number of items (`rows.append(...)` once per step). Else None."""
    if depth > 40:
        _cut_short(facts)
        return None
    if isinstance(node, Constant):
        return len(node.value) if type(node.value) in (list, tuple) else None
    name = prim_name(node)
    if not isinstance(node, Apply):
        return None
    if name == "make_list":
        return len(node.inputs) - 1
    if name == "list":
        if len(node.inputs) == 1:
            return 0
        items = sequence_items(node.inputs[1], facts)
        return len(items) if items is not None else list_length(node.inputs[1], facts,
                                                                depth + 1)
    if name == "list_append":
        n = list_length(node.inputs[1], facts, depth + 1)
        return None if n is None else n + 1
    if name == "add" and len(node.inputs) == 3:  # (a list plus a list)
        a, b = (list_length(x, facts, depth + 1) for x in node.inputs[1:])
        return None if a is None or b is None else a + b
    if name == "list_map":  # [f(x) for x in seq]
        return list_length(node.inputs[2], facts, depth + 1)
    if name == "range" and len(node.inputs) == 2:  # (its arguments as one tuple)
        parts = _index_parts(node.inputs[1])
        ends = [int_value(b, facts, depth + 1) for b in parts] \
            if parts is not None and 1 <= len(parts) <= 3 else [None]
        if None in ends or ends[2:] == [0]:
            return None
        return len(range(*cast(list[int], ends)))
    found = facts.result_of(node) if facts is not None else None
    if found is None:
        return None
    info, j = found
    outputs = info.outputs
    if info.cond is not None or outputs is None or not info.lead:
        return None  # (a `while`: its trip count is not known)
    bounds = [int_value(b, facts, depth + 1) for b in info.node.inputs[1:4]]
    start = list_length(info.init[j], facts, depth + 1)
    grows = _appended(outputs[j], info.body.parameters[info.lead + j], 0)
    if None in bounds or start is None or grows is None or bounds[2] == 0:
        return None
    return start + grows * len(range(*cast(list[int], bounds)))


def _appended(node: Node, state: Node, depth: int) -> int | None:
    """How many items `node`, a loop body's new value of the list `state`, appends to
    it: `list_append`s and additions of lists of known length (`rows + [x]`) to the state
    itself."""
    if node is state:
        return 0
    name = prim_name(node)
    if depth > 40 or name not in ("list_append", "add") or not isinstance(node, Apply):
        return None
    n = _appended(node.inputs[1], state, depth + 1)
    if name == "add":  # rows + [x]
        more = list_length(node.inputs[2], None, depth + 1)
        return None if n is None or more is None else n + more
    return None if n is None else n + 1


def _stack_kind(node: Apply, facts: LoopFacts | None, depth: int,
                assumed: Assumptions | None) -> Kind | None:
    """`np.stack(arrays, axis)` of float64 arrays (or numbers) of one shape, given as a
    display or as a list of known length (`list_length`) whose elements have a kind."""
    arrays, axis = node.inputs[1], _const(node.inputs[2])
    if type(axis) is not int:
        return None
    items = sequence_items(arrays, facts)
    if items is not None:
        count: int | None = len(items)
        element = _common([kind(i, facts, depth + 1, assumed) for i in items])
    else:
        count = list_length(arrays, facts, depth + 1)
        element = element_of(kind(arrays, facts, depth + 1, assumed))
    if not count:
        return None  # (NumPy refuses to stack nothing)
    if element in (FLOAT, SCALAR):
        shape: tuple[int, ...] | None = ()
    else:
        shape = shape_of(element) if dtype_of(element) == "f8" else None
    if shape is None or not -len(shape) - 1 <= axis <= len(shape):
        return None
    axis %= len(shape) + 1
    return array("f8", shape[:axis] + (count,) + shape[axis:])


class Assumptions(dict[tuple[int, int], "Kind | None"]):
    """Kinds assumed for parameters while inferring a loop body or a call (made by
    `assume`, never changed after), with the id of this set of assumptions (0: none),
    which memoization keys hold. A key is (parameter id, -1) for a parameter given a
    kind, (loop node id, j) for a loop's state slot j."""

    __slots__ = ("id",)
    id: int


# Each distinct set of assumptions gets a small int, so that a memo key is a pair of ints,
# cheap to hash, where the tuple of all assumptions would be hashed again at each lookup
# (tuples do not cache their hash). Ids are never reused: when the table is cleared (it
# grows with every set assumed in the process), an equal set gets a fresh id, under which
# the memo tables merely have no entries yet.
_ASSUMPTION_IDS: dict[tuple, int] = {(): 0}
_MAX_ASSUMPTION_IDS = 1 << 14
_next_assumption_id = itertools.count(1)


def assume(base: Assumptions | None, more: dict[tuple[int, int], Kind | None]) -> Assumptions:
    out = Assumptions(base or {})
    out.update(more)
    key = tuple(sorted(out.items()))
    found = _ASSUMPTION_IDS.get(key)
    if found is None:
        if len(_ASSUMPTION_IDS) >= _MAX_ASSUMPTION_IDS:
            _ASSUMPTION_IDS.clear()
            _ASSUMPTION_IDS[()] = 0
        found = _ASSUMPTION_IDS[key] = next(_next_assumption_id)
    out.id = found
    return out


def kind(node: Node, facts: LoopFacts | None = None, depth: int = 0,
         assumed: Assumptions | None = None) -> Kind | None:
    """The kind of `node`'s value when known, else None."""
    if facts is None:
        return _kind(node, facts, depth, assumed)
    # Memoized per assumption set (loop state assumed to have a kind while checking the
    # loop body), so shared subexpressions are inferred once.
    if facts.result_kinds is None:
        _infer_recursive_results(facts)
    key = (node.id, assumed.id if assumed else 0)
    memo = facts.kinds
    frames = facts.kind_frames
    if key in memo:
        if frames and key[1]:
            _depend(frames[-1], facts.kind_deps[key], key[1])
        return memo[key]
    # A kind inferred under other assumptions that agree on every one it looked up (and
    # not cut short by a depth limit) is this one too: loop state inferred by induction
    # asks again, under each step's assumptions, for the kinds of a body's nodes, most of
    # which do not depend on the slots that changed.
    shared = facts.shared_kinds.get(node.id) if SHARE_KINDS else None
    if shared is not None:
        for record, value in shared:
            if _agrees(record[0], assumed, facts):
                memo[key] = value
                facts.kind_deps[key] = record
                if frames and key[1]:
                    _depend(frames[-1], record, key[1])
                return value
    if not key[1]:  # (see _Frame)
        found = memo[key] = _kind(node, facts, depth, assumed)
        return found
    frame = _Frame(assumed, key[1])
    frames.append(frame)
    try:
        found = memo[key] = _kind(node, facts, depth, assumed)
    finally:
        frames.pop()
    record = (frame.deps, frame.cut)
    facts.kind_deps[key] = record
    if not frame.cut:
        if shared is None:
            facts.shared_kinds[node.id] = [(record, found)]
        else:
            shared.append((record, found))
    if frames:
        _depend(frames[-1], record, key[1])
    return found


# Whether kinds are shared between assumption sets (see `kind`): tests compare the code
# made without it.
SHARE_KINDS = True


class _Frame:
    """What one kind being inferred (or one loop's state kinds) depends on: the
    assumptions it looked up, each with what it found there (`_MISSING`: not assumed),
    and whether a depth limit cut an inference in it short (then its kind holds only
    under its own assumption set, as it is remembered: see `kind`). A kind inferred
    without assumptions (most questions: the rewrites') has no frame: it is remembered
    under none, where any later question under none finds it whatever its depth, and
    depends on no assumption set that a question inside one is asked under (so what
    it looks up, under the sets made inside it, and whether it was cut short, are left
    out of the frame around it; the sets inside record into that frame only what its
    own assumptions hold, as `_depend` does, and any cut, which only shares less).
    Nor is it shared."""

    __slots__ = ("assumed", "id", "deps", "cut")

    def __init__(self, assumed: Assumptions | None, assumed_id: int):
        self.assumed = assumed
        self.id = assumed_id  # (of `assumed`: 0 for none)
        self.deps: dict[tuple[int, int], object] = {}
        self.cut = False


def _depend(frame: _Frame, record: tuple[dict[tuple[int, int], object], bool],
            assumed_id: int) -> None:
    """`frame` uses a kind that depends on `record`, which holds under the assumption
    set `assumed_id`: the assumptions it looked up that hold in `frame`'s own (the others
    are ones an assumption set made inside added, from kinds inferred under `frame`'s,
    which are recorded themselves)."""
    deps, cut = record
    if cut:
        frame.cut = True
    if deps and frame.id:
        if assumed_id == frame.id:
            frame.deps.update(deps)
            return
        assumed, into = frame.assumed, frame.deps
        for k, v in deps.items():
            a = assumed.get(k, _MISSING) if assumed else _MISSING
            if a is v or (a is not _MISSING and v is not _MISSING and a == v):
                into[k] = v


def _agrees(deps: dict[tuple[int, int], object], assumed: Assumptions | None,
            facts: LoopFacts) -> bool:
    """Whether `assumed` holds what `deps` found at each assumption it looked up. Without
    assumptions, a loop's state slot `(loop, j)` holds the kind its state kinds (proved
    by induction, remembered without assumptions) give it, and a parameter `(p, -1)` the
    kind remembered for it without assumptions: that is what a question without
    assumptions finds for them (through the same memo tables), so a kind a loop body's
    node has under the induction's last step, which assumed the slots have those kinds,
    is its kind without assumptions too (most of what the rewrites ask of a loop's body),
    as is a function body's under its one call's arguments. (Only kinds already
    remembered count: none is inferred here.)"""
    if not assumed:
        for k, v in deps.items():
            if v is _MISSING:
                continue
            if k[1] == -1:
                # (A parameter: what a question without assumptions found for it.)
                held = facts.kinds.get((k[0], 0), _MISSING)
                if held is _MISSING:
                    return False
            elif k[1] < 0:
                return False
            else:
                proved = facts.state_kinds.get((k[0], 0))
                if proved is None:
                    return False
                held = proved[k[1]]
            if held is not v and held != v:
                return False
        return True
    for k, v in deps.items():
        a = assumed.get(k, _MISSING)
        if a is not v and (a is _MISSING or v is _MISSING or a != v):
            return False
    return True


def _look_up(key: tuple[int, int], facts: LoopFacts | None,
             assumed: Assumptions | None) -> object:
    """What `assumed` holds at `key` (`_MISSING` where nothing), recorded as a dependency
    of the kind being inferred."""
    if not assumed:
        return _MISSING
    found = assumed.get(key, _MISSING)
    if facts is not None and facts.kind_frames:
        facts.kind_frames[-1].deps[key] = found
    return found


def _cut_short(facts: LoopFacts | None) -> None:
    """A depth limit cut the inference short: what is inferred from here depends on the
    depth it was asked at, and is not shared between assumption sets."""
    if facts is not None and facts.kind_frames:
        facts.kind_frames[-1].cut = True


def _state_kinds(info: LoopInfo, facts: LoopFacts, depth: int,
                 assumed: Assumptions | None) -> list[Kind | None]:
    """`_infer_state_kinds`, remembering what it depends on (see `kind`)."""
    memo = (info.node.id, assumed.id if assumed else 0)
    frames = facts.kind_frames
    if memo in facts.state_kinds:
        if frames and memo[1]:
            _depend(frames[-1], facts.state_deps[memo], memo[1])
        return facts.state_kinds[memo]
    if memo in facts.states_inferring:
        # (Asked again while being inferred: a value-`if`'s condition in a backward loop
        # read from the forward one it pops, `known_value`. Nothing known, here.)
        _cut_short(facts)
        return [None] * len(info.init)
    facts.states_inferring.add(memo)
    try:
        if not memo[1]:  # (without assumptions: no frame, see _Frame)
            return _infer_state_kinds(info, facts, depth, assumed)
        frame = _Frame(assumed, memo[1])
        frames.append(frame)
        try:
            found = _infer_state_kinds(info, facts, depth, assumed)
        finally:
            frames.pop()
    finally:
        facts.states_inferring.discard(memo)
    record = facts.state_deps[memo] = (frame.deps, frame.cut)
    if frames:
        _depend(frames[-1], record, memo[1])
    return found


def _infer_state_kinds(info: LoopInfo, facts: LoopFacts, depth: int,
                       assumed: Assumptions | None) -> list[Kind | None]:
    """The kinds of a loop's state slots, by induction on all slots together: assuming
    each slot has a kind while inferring the body's outputs, a slot keeps its kind if
    its output has it too; a slot that fails is assumed unknown and the body is
    inferred again, until nothing changes (each slot changes at most twice)."""
    loop = info.node.id
    outputs = info.outputs
    n = len(info.init)
    memo = (loop, assumed.id if assumed else 0)
    if memo in facts.state_kinds:
        return facts.state_kinds[memo]
    if outputs is None and _slot_outputs(info.body.output, n) is None:
        facts.state_kinds[memo] = [None] * n
        return facts.state_kinds[memo]
    current = [kind(i, facts, depth + 1, assumed) for i in info.init]
    current = _open_zero_items(info, facts, depth, assumed, current)
    # The kinds the last round found (hints): if they hold, one pass over the body proves
    # them, where starting from the initial kinds takes a pass per widening (a list that
    # starts empty, a float that becomes a NumPy scalar). If they do not, start over.
    hint = facts.hints.get(loop)
    if hint is not None and len(hint) == n:
        hinted = [h if k is not None and h is not None and _widens(k, h) else k
                  for k, h in zip(current, hint, strict=True)]
        if hinted != current and _induction_step(info, facts, depth, assumed,
                                                 hinted) == hinted:
            facts.state_kinds[memo] = hinted
            return hinted
    while True:
        new = _induction_step(info, facts, depth, assumed, current)
        if new == current:
            facts.state_kinds[memo] = current
            facts.hints[loop] = current
            return current
        current = new


def _open_zero_items(info: LoopInfo, facts: LoopFacts, depth: int,
                     assumed: Assumptions | None, current: list[Kind | None]
                     ) -> list[Kind | None]:
    """The initial kinds of tuple state whose display has ZERO items (the sensitivity of
    a loop's tuple state, nothing added to some items before the first iteration), with
    each such item given the float64 kind the body's first iteration leaves there: a
    sensitivity is ZERO or has its value's kind (as in a display of sensitivities). The
    induction then checks them like any other kind."""
    from ..runtime import ZERO

    zero_at: dict[int, list[int]] = {}
    for j, init in enumerate(info.init):
        if is_tuple(current[j]) and isinstance(init, Apply) and \
                getattr(init.inputs[0], "value", None) is PRIMITIVES["make_tuple"]:
            at = [i for i, x in enumerate(init.inputs[1:])
                  if isinstance(x, Constant) and x.value is ZERO]
            if at:
                zero_at[j] = at
    outputs = info.outputs
    slots = [[o] for o in outputs] if outputs is not None else \
        _slot_outputs(info.body.output, len(current))
    if not zero_at or slots is None:
        return current
    opened = list(current)
    for _ in range(len(zero_at) + 1):  # (a slot may take its kinds from one opened before)
        inner = assume(assumed, {(info.node.id, j): k for j, k in enumerate(opened)})
        before = list(opened)
        for j, at in zero_at.items():
            out = items_of(_common_kind([kind(o, facts, depth + 1, inner) for o in slots[j]]))
            items = list(items_of(opened[j]) or ())
            if out is None or len(out) != len(items):
                continue
            for i in at:
                if items[i] is None and is_f8(out[i]):
                    items[i] = out[i]
            opened[j] = tuple_of(items)
        if opened == before:
            break
    return opened


def _slot_outputs(out: Node | None, n: int, depth: int = 0) -> list[list[Node]] | None:
    """What a loop body's `n` state slots may leave, where its output is a tuple display
    or an `if` between branches that each end in one (a body with a `break`): per slot,
    every node that may be its next value. None where a branch ends otherwise."""
    if isinstance(out, Apply) and out.inputs and isinstance(out.inputs[0], Constant) and \
            getattr(out.inputs[0].value, "name", None) == "make_tuple":
        return [[o] for o in out.inputs[1:]] if len(out.inputs) - 1 == n else None
    if depth > 4 or not isinstance(out, Apply) or len(out.inputs) != 1:
        return None
    sw = out.inputs[0]
    if not (isinstance(sw, Apply) and isinstance(sw.inputs[0], Constant) and
            getattr(sw.inputs[0].value, "name", None) == "switch"):
        return None
    parts = []
    for branch in sw.inputs[2:]:
        if not (isinstance(branch, Constant) and isinstance(branch.value, Graph)) or \
                branch.value.parameters:
            return None
        found = _slot_outputs(branch.value.output, n, depth + 1)
        if found is None:
            return None
        parts.append(found)
    return [[o for part in parts for o in part[j]] for j in range(n)]


def _common_kind(kinds: list[Kind | None]) -> Kind | None:
    """The kind every one of `kinds` is (a float or a NumPy scalar: a scalar; tuples of
    one length: a tuple of the items' common kinds; lists, an empty one among them: a
    list of the others' element kind)."""
    first = kinds[0]
    if all(k == first for k in kinds):
        return first
    if all(k in (FLOAT, SCALAR) for k in kinds):
        return SCALAR
    if all(type(k) is ListKind for k in kinds):  # (is_list)
        joined: Kind | None = first
        for k in kinds[1:]:
            joined = _join_lists(joined, k)
        return joined
    items = [items_of(k) for k in kinds]
    if all(i is not None and len(i) == len(items[0] or ()) for i in items):
        return tuple_of([_common_kind([i[n] for i in items if i is not None])
                         for n in range(len(items[0] or ()))])
    return None


def _widens(k: Kind, h: Kind) -> bool:
    """Whether the induction may widen a slot of kind k to kind h."""
    return (k == EMPTY_LIST and is_list(h)) or (k == FLOAT and h == SCALAR) or \
        (k in _NUMBERS + (NUMERIC,) and h == NUMERIC)


def _induction_step(info: LoopInfo, facts: LoopFacts, depth: int, assumed: Assumptions | None,
                    current: list[Kind | None]) -> list[Kind | None]:
    """The slots' kinds after one iteration of the body, assuming they have `current`'s."""
    loop = info.node.id
    outputs = info.outputs
    slots = [[o] for o in outputs] if outputs is not None else \
        _slot_outputs(info.body.output, len(current))
    assert slots is not None  # (see _state_kinds)
    inner = assume(assumed, {(loop, j): k for j, k in enumerate(current)})
    new: list[Kind | None] = []
    for j, k in enumerate(current):
        out = _common_kind([kind(o, facts, depth + 1, inner) for o in slots[j]]) \
            if k is not None else None
        if k is None or out == k or (out == EMPTY_LIST and is_list(k)):
            new.append(k)  # (an empty list is a list of any kind of element)
        elif k == EMPTY_LIST and is_list(out):
            new.append(out)  # a list that starts empty: its elements' kind is the body's
        elif {k, out} <= {FLOAT, SCALAR}:
            # A float accumulating NumPy scalars: a 0-d number either way, which every
            # rule that takes a NumPy scalar also takes (a scalar of unknown dtype).
            new.append(SCALAR)
        elif k in _NUMBERS + (NUMERIC,) and out in _NUMBERS + (NUMERIC,):
            # A number that changes type otherwise: some number, if the body keeps it one.
            new.append(NUMERIC)
        elif (ki := items_of(k)) is not None and (ko := items_of(out)) is not None and \
                len(ki) == len(ko):
            # A tuple whose items change kind: a tuple, its items unknown where they
            # differ (the sensitivity of a loop's tuple state, starting with ZERO items).
            new.append(tuple_of([a if a == b else None for a, b in zip(ki, ko, strict=True)]))
        else:
            new.append(None)
    return new


def _backpropagator_input_kind(p: Parameter, facts: LoopFacts, depth: int,
                               assumed: Assumptions | None) -> Kind | None:
    """The parameter of a backpropagator that J made for a function called only
    directly (a recursive one: `J_f` returns `(value, B_f)` and derivative code calls
    `B_f` with the sensitivity of `value`): the value's kind, which a sensitivity has
    where it is not ZERO. For a number, SCALAR (the sensitivity of a float may be a
    NumPy float64); for a float64 array, its kind."""
    b = p.graph
    jg = b.parent if b is not None else None
    if b is None or jg is None or not b.derived or len(b.parameters) != 1:
        return None
    out = jg.output
    if not (isinstance(out, Apply) and prim_name(out) == "make_tuple" and
            len(out.inputs) == 3 and isinstance(out.inputs[2], Constant) and
            out.inputs[2].value is b) or not facts.direct_calls(jg):
        return None
    # (Afresh: the value is forward code, which never depends on what the
    # backpropagator assumes, and a question asked deep in it must not be cut short.)
    k = kind(out.inputs[1], facts)
    if k in (FLOAT, SCALAR):
        return SCALAR
    return k if is_f8(k) and shape_of(k) is not None else None


def _parameter_kind(p: Parameter, facts: LoopFacts, depth: int) -> Kind | None:
    """A parameter of a function only ever called directly (`LoopFacts.direct_calls`):
    the kind every call's argument has."""
    g = p.graph
    kinds = _parameter_kinds(g, facts, depth) if g is not None else None
    return kinds[g.parameters.index(p)] if kinds is not None and g is not None else None


def _joined_kind(kinds: list[Kind | None]) -> Kind | None:
    """A kind all of `kinds` have: the same one, a scalar (floats and NumPy scalars),
    some number, or a list (an empty one and others)."""
    first = kinds[0]
    if all(k == first for k in kinds):
        return first
    if all(k in (FLOAT, SCALAR) for k in kinds):
        return SCALAR
    if all(k in _NUMBERS + (NUMERIC,) for k in kinds):
        return NUMERIC
    if all(is_list(k) for k in kinds):
        joined: Kind | None = kinds[0]
        for k in kinds[1:]:
            joined = _join_lists(joined, k)
        return joined
    return None


def _parameter_kinds(g: Graph, facts: LoopFacts, depth: int) -> list[Kind | None] | None:
    """The kinds of the parameters of `g`, a function only ever called directly: the
    kinds its calls' arguments share. A function that calls itself (or is called from
    the functions inside it) gets them by induction, as loop state does: assuming its
    parameters have the kinds the calls from outside pass, each call inside passes
    them too (a slot that fails is widened: a float to a scalar, a number to some
    number, else unknown, and the calls are inferred again)."""
    found = facts.parameter_kinds.get(g.id, _MISSING)
    if found is not _MISSING:
        if found is None:  # (being inferred)
            _cut_short(facts)
        return cast("list[Kind | None] | None", found)
    sites = facts.direct_calls(g)
    if not sites:
        return None
    if depth > 30:
        _cut_short(facts)
        return None
    facts.parameter_kinds[g.id] = None
    n = len(g.parameters)
    outside = [s for s in sites if not is_inside(s.graph, g)]
    current: list[Kind | None] = [
        _joined_kind([kind(s.inputs[1 + j], facts, depth + 1) for s in outside])
        for j in range(n)] if outside else [None] * n
    while any(k is not None for k in current):
        inner = _bind(g.parameters, current, None)
        new: list[Kind | None] = [
            _joined_kind([k, *(kind(s.inputs[1 + j], facts, depth + 1, inner) for s in sites)])
            if k is not None else None for j, k in enumerate(current)]
        if new == current:
            break
        current = new
    facts.parameter_kinds[g.id] = current
    return current


def _kind(node: Node, facts: LoopFacts | None, depth: int,
          assumed: Assumptions | None) -> Kind | None:
    if isinstance(node, Constant):
        v = node.value
        if type(v) is float:
            return FLOAT
        if type(v) is int:
            return INT
        if isinstance(v, (int, float, complex)) or (type(v).__module__ == "numpy" and
                                                      not callable(v)):  # (not a ufunc)
            return value_kind(v) or NUMERIC
        return value_kind(v) if type(v) is tuple else None
    # (Identity: NUMERIC is a singleton, and `!=` would call an array kind's `__eq__`.)
    if node.kind is not None and node.kind is not NUMERIC:
        return node.kind
    if depth > 40:
        _cut_short(facts)
        return node.kind
    # A node given the kind "numeric" when it was made (a saved value read back in a
    # backward loop) may be found to have a more precise one (the value it saved).
    return _infer(node, facts, depth, assumed) or node.kind


def _infer(node: Node, facts: LoopFacts | None, depth: int,
           assumed: Assumptions | None) -> Kind | None:
    if isinstance(node, Parameter):
        element = _look_up((node.id, -1), facts, assumed)  # a comprehension's element
        if element is not _MISSING:
            return cast("Kind | None", element)
        # Loop state has the kind of its initial value if the body keeps it (assuming
        # the state has that kind while checking the body: induction).
        if facts is not None and node.id in facts.index_of:
            bounds = facts.index_of[node.id].node.inputs[1:4]
            ok = all(kind(b, facts, depth + 1, assumed) == INT for b in bounds)
            return INT if ok else None
        state = facts.state_of.get(node.id) if facts is not None else None
        if state is None:
            return (_parameter_kind(node, facts, depth) or
                    _backpropagator_input_kind(node, facts, depth, assumed)) \
                if facts is not None else None
        info, j = state
        slot = _look_up((info.node.id, j), facts, assumed)
        if slot is not _MISSING:
            return cast("Kind | None", slot)
        assert facts is not None  # (state_of is one of its tables)
        return _state_kinds(info, facts, depth, assumed)[j]
    if not isinstance(node, Apply):
        return None
    callee = node.inputs[0]
    if type(callee) is Constant and type(callee.value) is Primitive:
        # (The usual callee: neither a known function's call nor a value-`if`'s.)
        prim = callee.value
    else:
        g = _known_call(node, depth, facts)
        if g is not None:  # its result's kind, given its arguments' kinds
            assert g.output is not None  # (see _known_call)
            result = _look_up((g.id, _RESULT), facts, assumed)
            if result is not _MISSING:  # a recursive call, inside its function
                return cast("Kind | None", result)
            if facts is not None and facts.result_kinds and g.id in facts.result_kinds:
                return facts.result_kinds[g.id]  # (None while being inferred)
            return kind(g.output, facts, depth + 4,
                        _with_arguments(node, g, facts, depth, assumed))
        if is_switch_call(node):
            # (a float in one branch and a NumPy scalar in the other: a 0-d number,
            # SCALAR, as for loop state; `[x]` in one and `[]` in the other: a list of x's
            # kind; only the branch taken where the condition is known, under the
            # assumptions too: a derivative rule's `if np.ndim(a) == 0` on loop state)
            # (a branch that raises returns nothing: the other's kind, as a masked
            # loop's select that raises where the shapes differ has)
            outs = taken_outputs(node, facts, depth, assumed)
            returning = [o for o in outs if prim_name(o) != "raise"]
            return _common_kind([kind(o, facts, depth + 1, assumed)
                                 for o in returning or outs])
        if not (isinstance(callee, Constant) and isinstance(callee.value, Primitive)):
            return None
        prim = callee.value
    name = prim.name
    if prim.result_kind is not None:
        return _RESULT_KINDS[prim.result_kind]  # (FLOAT or INT)
    found_loop = facts.item_of_loop(node) if facts is not None and (
        name == "tuple_getitem" or name == "getitem") else None
    if name == "tuple_getitem" or (name == "getitem" and facts is not None and (
            found_loop is not None or node.id in facts.popped or
            (type(_const(node.inputs[2])) is int and
             item_nodes(node.inputs[1], cast(int, _const(node.inputs[2])), facts)))):
        # (`getitem` too where it reads an item of a display: J makes it of item reads.)
        seq, index = node.inputs[1], node.inputs[2]
        if facts is not None:
            if found_loop is not None:
                info, j = found_loop
                return kind(info.params(j)[0], facts, depth + 1, assumed)
            if node.id in facts.popped:
                return kind(facts.popped[node.id], facts, depth + 1, assumed)
        if isinstance(index, Constant) and isinstance(index.value, int):
            item = item_nodes(seq, index.value, facts, node.graph, depth, assumed)
            if item is not None:
                # A value a forward loop saved, read back in its backward loop: forward
                # nodes never depend on backward ones, so the search starts afresh there.
                start = 0 if facts is not None and seq.id in facts.popped else depth + 1
                return _common_kind([kind(i, facts, start, assumed) for i in item])
            return _item_kind(seq, index.value, facts, depth + 1, assumed)
    if prim.infer_kind is not None:  # (a rule that reads more than the arguments' kinds)
        inferred: Kind | None = prim.infer_kind(node, facts, depth, assumed)
        if inferred is not None:
            return inferred
    args = [kind(a, facts, depth + 1, assumed) for a in node.inputs[1:]]
    if name == "len":
        return INT
    if name == "make_tuple":
        return tuple_of(args)
    if name == "make_dict":
        return _dict_display_kind(node, args)
    if name in _TUPLE_OPS and args and (is_tuple(args[0]) or is_namedtuple(args[0])):
        # (A NamedTuple indexed, sliced, added or made a tuple: the tuple of its fields.)
        return _tuple_op_kind(name, node, [as_tuple(a) for a in args])
    if args and type(key := _const(node.inputs[-1])) is str and (
            (name == "getitem" and is_dict(args[0])) or
            (name == "getattr" and is_record(args[0]))):
        return field_kind(args[0], key)  # d["key"], x.field
    if name == "make_list":
        return _list_of_items(args)
    if name == "list" and len(node.inputs) == 2 and \
            (items := sequence_items(node.inputs[1])) is not None:
        return _list_of_items([kind(i, facts, depth + 1, assumed) for i in items])
    if name == "list" and (not args or (isinstance(node.inputs[1], Constant) and
                                        type(node.inputs[1].value) is tuple and
                                        node.inputs[1].value == ())):
        return EMPTY_LIST
    if name == "list" and len(node.inputs) == 2 and prim_name(node.inputs[1]) == "range":
        return list_of(INT)  # list(range(...)): ints (range takes only ints)
    if _any_of_type(args, ListItemsKind):
        if name == "getitem" and len(args) == 2 and type(args[0]) is ListItemsKind and \
                type(i := _const(node.inputs[2])) is int and \
                -len(args[0].items) <= i < len(args[0].items):
            return args[0].items[i]
        if name == "getitem" and len(args) == 2 and type(args[0]) is ListItemsKind and \
                args[1] is INT:
            return _common(list(args[0].items))  # (an item of one kind at any index)
        return None
    if _any_of_type(args, ListKind):  # (is_list)
        if name == "list" and len(args) == 1:
            return args[0]
        if name == "getitem" and len(args) == 2 and is_list(args[0]) and (
                prim_name(node.inputs[2]) == "make_slice" or
                type(_const(node.inputs[2])) is slice):
            return args[0]  # a slice of a list: a list of its elements' kind
        if name == "add" and len(args) == 2:
            return _join_lists(args[0], args[1])
        if name == "list_append" and len(args) == 2 and args[1] is not None:
            return _join_lists(args[0], list_of(args[1]))
        if name == "getitem" and args[1] == INT:
            return element_of(args[0])
        return None
    if prim.elementwise and not prim.comparison and any(a is SCALAR for a in args) and \
            all(a in (FLOAT, INT, SCALAR) for a in args):
        return SCALAR
    if prim.abstract_eval is not None:
        abstract: Kind | None = prim.abstract_eval(args, node.inputs[1:])
        return abstract
    result = _array_kind(prim, node, args, facts, depth, assumed)
    if result is not None:
        return result
    if name == "scatter_sens" and dtype_of(args[0]) == "f8":
        # A float64 array's pieces added into zeros of its shape: float64 if they are.
        ds = _index_parts(node.inputs[3])
        if ds is not None and all(is_f8(kind(d, facts, depth + 1, assumed))
                                  for d in ds):
            return args[0]
    if name == "gadd":
        # Two sensitivities of one value: either one's kind, when the other's is not
        # known (a sensitivity is ZERO or has its value's kind).
        # (Nor when the other's is known only to be a number or an array.)
        if is_tuple(args[0]) or is_tuple(args[1]):
            return _tuple_sum_kind(args[0], args[1])
        if args[0] == args[1] or args[1] in (None, NUMERIC):
            return args[0] if is_f8(args[0]) else None
        return args[1] if args[0] in (None, NUMERIC) and is_f8(args[1]) else None
    if name == "dense" and is_f8(args[1]) and args[0] in (None, args[1]):
        # A tangent made concrete, shaped like its float64 value: the value's kind (a
        # tangent is ZERO, made zeros of that kind here, or has its value's kind).
        return args[1]
    if name == "unbroadcast" and ((args[1] in (FLOAT, INT) and args[0] in (FLOAT, INT)) or
                                  (args[1] == SCALAR and args[0] == FLOAT)):
        return FLOAT  # (a float's sensitivity stays one against any 0-d number)
    if name == "unbroadcast" and args[0] in (FLOAT, SCALAR) and args[1] in (FLOAT, SCALAR):
        return SCALAR  # (a number's sensitivity against a number: a 0-d number)
    if prim.number_op:
        if all(a in (FLOAT, INT) for a in args):
            if all(a == INT for a in args):
                return FLOAT if name in ("truediv", "fdiv") else \
                    (INT if name not in ("pow", "fpow") else None)
            return FLOAT
        if all(a in (FLOAT, INT, SCALAR) for a in args):
            return SCALAR  # a NumPy scalar with Python numbers: a NumPy scalar
        if all(a is not None and not is_container(a) for a in args):
            return NUMERIC
    if prim.numeric:
        return NUMERIC
    return None


def _tuple_sum_kind(a: Kind | None, b: Kind | None) -> Kind | None:
    """`gadd(a, b)` where one is a tuple: a tuple (the other is ZERO or a tuple of the
    same length: sensitivities of one value; the sum of a loop's tuple state), whose
    float64 items have the kind either side gives them (an item is ZERO or has its
    value's kind)."""
    ta, tb = items_of(a), items_of(b)
    if (ta is None and a is not None) or (tb is None and b is not None):
        return None
    n = len(ta) if ta is not None else len(tb) if tb is not None else -1
    if n < 0 or (ta is not None and tb is not None and len(ta) != len(tb)):
        return None
    joined: list[Kind | None] = []
    for x, y in zip(ta or (None,) * n, tb or (None,) * n, strict=True):
        item = x if y is None or x == y else (y if x is None else None)
        joined.append(item if is_f8(item) else None)
    return tuple_of(joined)


def _tuple_item(k: Kind | None, i: object) -> Kind | None:
    items = items_of(as_tuple(k))
    if items is None or type(i) is not int or not -len(items) <= i < len(items):
        return None
    return items[i]


def _dict_display_kind(node: Apply, args: list[Kind | None]) -> Kind | None:
    """`make_dict(keys, values)` with distinct plain string keys, constants, and a display of
    values."""
    keys = _index_parts(node.inputs[1])
    items = items_of(args[1])
    if keys is None or items is None or len(keys) != len(items):
        return None
    names = [key.value for key in keys
             if isinstance(key, Constant) and type(key.value) is str and _plain_name(key.value)]
    if len(names) != len(keys) or len(set(names)) != len(keys):
        return None
    return dict_of(names, list(items))


def _tuple_op_kind(name: str, node: Apply, args: list[Kind | None]) -> Kind | None:
    """Kinds of operations on a tuple of known kind (`_TUPLE_OPS`)."""
    items = items_of(args[0])
    assert items is not None
    return _TUPLE_OPS[name](node, args, items)


def _tuple_index_kind(node: Apply, args: list[Kind | None], items: tuple) -> Kind | None:
    """A tuple indexed by a constant, or sliced by a constant slice; indexed by an int
    known only when the code runs (`layers[i]` in a loop), the kind all its items share."""
    i = _const(node.inputs[2])
    if type(i) is slice:
        return tuple_of(list(items[i]))
    if i is _MISSING and len(args) == 2 and args[1] == INT and items:
        return _common_kind(list(items))
    return _tuple_item(args[0], i)


def _tuple_concat_kind(node: Apply, args: list[Kind | None], items: tuple) -> Kind | None:
    more = items_of(args[1]) if len(args) == 2 else None
    return tuple_of(list(items) + list(more)) if more is not None else None


# Kind rules of operations on tuples of known kind, by primitive.
_TUPLE_OPS = {
    "getitem": _tuple_index_kind,
    "tuple_getitem": _tuple_index_kind,
    "add": _tuple_concat_kind,
    "tuple": lambda node, args, items: args[0] if len(args) == 1 else None,  # tuple(t) is t
}
# Int arithmetic on ints known when compiling (`x.shape[0] * 2`), by primitive.
_INT_ARITHMETIC: dict[str, Callable[[int, int], int]] = {
    "add": operator.add, "sub": operator.sub, "mul": operator.mul, "floordiv": operator.floordiv}


def _sensitivity_kind(args: list[Kind | None], inputs: list[Node]) -> Kind | None:
    """`sens_of(d, like)`, `check_scalar_output(out)`, `to_structure(sens, like)`: the
    kind of the value given, else of the value it is like (not a container kind: a
    tuple's sensitivity may hold ZEROs). The zeros made for an array that is not float
    (`sens_of(ZERO, hit)`, the tangent of a bool mask) are float64 (`zeros_like_value`);
    where d's kind is unknown, so is the result (d's, or such zeros)."""
    k = args[0] if args[0] is not None else (args[1] if len(args) > 1 else None)
    if args[0] is None and isinstance(k, ArrayKind) and k.dtype != "f8":
        from ..runtime import ZERO

        d = inputs[0]
        zero = isinstance(d, Constant) and d.value is ZERO
        return ArrayKind("f8", k.shape) if zero and k.dtype in ("i8", "b1") else None
    return None if is_container(k) else k


def _to_structure_kind(args: list[Kind | None], inputs: list[Node]) -> Kind | None:
    """`to_structure(sens, like)`: like's kind where every leaf of it is a float64 array
    (each leaf's gradient is an array of its shape and dtype, zeros where the sensitivity
    is ZERO: so loop state updated by its gradient keeps its kind), else as
    `_sensitivity_kind`."""
    return args[1] if _float64_leaves(args[1]) else _sensitivity_kind(args, inputs)


def _float64_leaves(k: Kind | None) -> bool:
    """Whether `k` is a float64 array, or a tuple or list of such values."""
    if isinstance(k, ArrayKind):
        return k.dtype == "f8"
    if isinstance(k, TupleKind):
        return all(_float64_leaves(item) for item in k.items)
    return isinstance(k, ListKind) and k.element is not None and _float64_leaves(k.element)


def _list_map_kind(node: Apply, facts: LoopFacts | None, depth: int,
                   assumed: Assumptions | None) -> Kind | None:
    """[f(x) for x in seq]: f's result kind, with x of seq's elements' kind. (The
    derivative of a comprehension maps (value, backpropagator) pairs, then projects the
    values: the pairs' list has a kind `list<tuple<K|?>>`, so the projection needs no
    case of its own.)"""
    out = _mapped_kind(node, facts, depth, assumed)
    return list_of(out) if out is not None and not is_list(out) else None


def _list_flatmap_kind(node: Apply, facts: LoopFacts | None, depth: int,
                       assumed: Assumptions | None) -> Kind | None:
    """[y for x in seq for y in f(x)]: the list kind f returns, with x of seq's elements'
    kind (a filter, `[d for d in cols if d != c]`, returns `[x]` or `[]`: a list of
    x's kind). The derivative of a comprehension maps (value, backpropagator) pairs,
    then flattens the values: that flattening is itself a comprehension of this kind."""
    out = _mapped_kind(node, facts, depth, assumed)
    return out if is_list(out) and out != EMPTY_LIST else None


def _mapped_kind(node: Apply, facts: LoopFacts | None, depth: int,
                 assumed: Assumptions | None) -> Kind | None:
    """The kind of `f(x)` in a comprehension `node` (`list_map` or `list_flatmap` of f
    over seq), x of seq's elements' kind; None where f is not a known one-parameter
    graph or a kind is unknown."""
    f, seq = node.inputs[1:3]
    if not (isinstance(f, Constant) and hasattr(f.value, "parameters")) or \
            len(f.value.parameters) != 1:
        return None
    element = _elements(seq, facts, depth, assumed)
    out = None if element is None else kind(
        f.value.output, facts, depth + 1, _bind(f.value.parameters, [element], assumed))
    return out


# The slot of an assumption about what the calls of a function return (keyed by the
# graph's id), while inferring the result of a recursive function.
_RESULT = -2
# Kinds a recursive function's result is tried with, narrowest first.
_RESULT_GUESSES = (FLOAT, SCALAR, NUMERIC)


def _infer_recursive_results(facts: LoopFacts) -> None:
    """The kinds of what each recursive function returns (one that calls itself from
    inside, and is only ever called directly), found before any other question of these
    facts: a kind inferred while a recursive result is still being inferred (then
    unknown) would be remembered. What was inferred meanwhile is forgotten."""
    facts.result_kinds = {}
    recursive = [g for g in facts.graphs if g.output is not None and
                 any(is_inside(s.graph, g) for s in facts.direct_calls(g) or ())]
    for g in recursive:
        facts.result_kinds[g.id] = None  # (being inferred: unknown to the others)
    for g in recursive:
        facts.result_kinds[g.id] = _recursive_result_kind(g, facts)
    if recursive:
        facts.kinds.clear()
        facts.state_kinds.clear()
        facts.parameter_kinds.clear()
        facts.kind_deps.clear()
        facts.shared_kinds.clear()
        facts.state_deps.clear()


def _recursive_result_kind(g: Graph, facts: LoopFacts) -> Kind | None:
    """The kind of what a recursive function returns, by induction over the recursion:
    a guess holds if, assuming every call of `g` returns it, `g`'s output has it too (a
    float also fits SCALAR, a number NUMERIC). The guesses are FLOAT, SCALAR and
    NUMERIC, or a tuple (what J of a recursive function returns: the value and its
    backpropagator) whose unknown items are tried with these one by one. Its
    parameters have the kinds all its calls pass (`_parameter_kinds`). None where no
    guess holds."""
    assert g.output is not None
    out = g.output

    def holds(guess: Kind | None) -> tuple[bool, Kind | None]:
        # (Inferred afresh, from depth 0: a question asked deep in another inference
        # must not cut this one short; the entry above stops a second one for `g`.)
        found = kind(out, facts, 0, assume(None, {(g.id, _RESULT): guess}))
        return _fits(found, guess), found

    result: Kind | None = None
    ok, first = holds(None)
    if (items := items_of(first)) is not None:
        guess = list(items)
        for i, item in enumerate(items):
            if item is not None:
                continue
            for candidate in _RESULT_GUESSES:
                trial = tuple_of(guess[:i] + [candidate] + guess[i + 1:])
                ok, found = holds(trial)
                if ok or _fits(_tuple_item(found, i), candidate):
                    guess[i] = candidate
                    break
        result = tuple_of(guess)
        if not holds(result)[0]:
            result = first if ok else None
    else:
        result = next((c for c in _RESULT_GUESSES if holds(c)[0]), None)
    return result


def _fits(found: Kind | None, guess: Kind | None) -> bool:
    """Whether a value of kind `found` also has kind `guess`."""
    if guess is None or found == guess:
        return True
    if guess is SCALAR:
        return found in (FLOAT, SCALAR)
    if guess is NUMERIC:
        return found in _NUMBERS or type(found) is ArrayKind
    a, b = items_of(found), items_of(guess)
    return a is not None and b is not None and len(a) == len(b) and \
        all(_fits(x, y) for x, y in zip(a, b, strict=True))


def _known_call(node: Apply, depth: int, facts: LoopFacts | None) -> Graph | None:
    """The function a call calls, when known and bound one argument per parameter (not
    followed deeper than 10 levels)."""
    callee = node.inputs[0]
    # (A primitive, the usual callee, has no parameters: told apart without `hasattr`,
    # whose miss raises and catches an AttributeError.)
    if isinstance(callee, Constant) and type(callee.value) is not Primitive and \
            hasattr(callee.value, "parameters") \
            and len(callee.value.parameters) == len(node.inputs) - 1 and \
            callee.value.output is not None and not callee.value.vararg:
        if depth > 10:
            _cut_short(facts)
            return None
        g: Graph = callee.value
        return g
    return None


def _bind(params: list[Parameter], kinds: list[Kind | None], assumed: Assumptions | None
          ) -> Assumptions:
    """The assumptions with each parameter given a kind."""
    return assume(assumed, {(p.id, -1): k for p, k in zip(params, kinds, strict=True)})


def _with_arguments(node: Apply, g: Graph, facts: LoopFacts | None, depth: int,
                    assumed: Assumptions | None) -> Assumptions:
    return _bind(g.parameters, [kind(a, facts, depth + 1, assumed) for a in node.inputs[1:]],
                 assumed)


def prim_name(node: Node) -> str | None:
    """The name of the primitive `node` applies (a constant callee), else None."""
    if isinstance(node, Apply) and isinstance(node.inputs[0], Constant):
        return getattr(node.inputs[0].value, "name", None)
    return None


def applies(node: Node, name: str) -> TypeGuard[Apply]:
    """Whether `node` applies the primitive called `name` (a constant callee with that
    name: see `prim_name`)."""
    return prim_name(node) == name


def _elements(seq: Node, facts: LoopFacts | None, depth: int, assumed: Assumptions | None
              ) -> Kind | None:
    if prim_name(seq) == "range":
        return INT
    return element_of(kind(seq, facts, depth + 1, assumed))


def _item_kind(node: Node, i: int, facts: LoopFacts | None, depth: int,
               assumed: Assumptions | None) -> Kind | None:
    """The kind of element i of a tuple built by `node` (or by the function it calls)."""
    if depth > 40:
        _cut_short(facts)
        return None
    if not isinstance(node, Apply):  # a parameter of a known tuple kind
        return _tuple_item(kind(node, facts, depth + 1, assumed), i)
    if prim_name(node) == "make_tuple":
        return kind(node.inputs[1 + i], facts, depth + 1, assumed) \
            if 0 <= i < len(node.inputs) - 1 else None
    g = _known_call(node, depth, facts)
    if g is not None and _look_up((g.id, _RESULT), facts, assumed) is _MISSING and \
            not (facts is not None and facts.result_kinds and g.id in facts.result_kinds):
        assert g.output is not None  # (see _known_call)
        return _item_kind(g.output, i, facts, depth + 4,
                          _with_arguments(node, g, facts, depth, assumed))
    # (A recursive function's call: what its result's kind says.)
    return _tuple_item(kind(node, facts, depth + 1, assumed), i)


def is_f8(k: Kind | None) -> bool:
    """A Python float or a float64 array."""
    return k is not None and (k == FLOAT or dtype_of(k) == "f8")


def switch_branches(sw: Apply) -> list[Graph]:
    """The two functions `switch(c, if_true, if_false)` picks between (the callee of a
    value-`if`, see `is_switch_call`)."""
    return [b.value for b in sw.inputs[2:4] if isinstance(b, Constant)]


def if_branches(node: Apply) -> list[Graph]:
    """The two functions a value-`if` (see `is_switch_call`) picks between."""
    sw = node.inputs[0]
    assert isinstance(sw, Apply)
    return switch_branches(sw)


def if_outputs(node: Apply) -> list[Node]:
    """The values the two branches of a value-`if` (see `is_switch_call`) return."""
    outs = []
    for b in if_branches(node):
        assert b.output is not None  # (a branch returns its value)
        outs.append(b.output)
    return outs


def is_switch_call(node: Node | None) -> TypeGuard[Apply]:
    """Whether `node` is a value-`if`: a call, with no arguments, of what `switch(c,
    if_true, if_false)` picks between two known functions."""
    if not (isinstance(node, Apply) and len(node.inputs) == 1):
        return False
    sw = node.inputs[0]
    return isinstance(sw, Apply) and isinstance(sw.inputs[0], Constant) and \
        getattr(sw.inputs[0].value, "name", None) == "switch" and all(
            isinstance(b, Constant) and hasattr(b.value, "parameters") for b in sw.inputs[2:4])


def item_nodes(seq: Node, i: int, facts: LoopFacts | None,
               reader: Graph | None = None, depth: int = 0,
               assumed: Assumptions | None = None) -> list[Node] | None:
    """The nodes `seq[i]` may be: an element of a tuple display (or constant), or of each branch's
    (through a value-`if`, and from a backward loop's read back to what its forward loop
    saved), else None. Given the graph that reads `seq[i]` (`reader`), a value-`if` read
    inside a branch of an `if` on the same condition gives that branch's items only (a
    recursion's backpropagator reads, in its base case, what the base case saved); and
    a value-`if` whose condition is known (`known_value`, under `assumed`) its taken
    branch's."""
    if isinstance(seq, Apply) and isinstance(seq.inputs[0], Constant) and \
            getattr(seq.inputs[0].value, "name", None) == "make_tuple":
        return [seq.inputs[1 + i]] if 0 <= i < len(seq.inputs) - 1 else None
    if isinstance(seq, Constant) and type(seq.value) is tuple:
        return [Constant(seq.value[i])] if 0 <= i < len(seq.value) else None
    if facts is not None and seq.id in facts.popped:
        return item_nodes(facts.popped[seq.id], i, facts)
    if is_switch_call(seq):
        outs = if_outputs(seq)
        taken = _branch_taken(reader, seq) if reader is not None else None
        if taken is None and facts is not None:
            outs = taken_outputs(seq, facts, depth, assumed)
        return _items_of_each(outs if taken is None else [outs[taken]], i, facts, depth,
                              assumed)
    if isinstance(seq, Apply) and prim_name(seq) in ("tuple_getitem", "getitem") and \
            type(j := _const(seq.inputs[2])) is int:
        # An item of an item (the values a branch saved, read in its backpropagator).
        outer = item_nodes(seq.inputs[1], j, facts, reader, depth + 1, assumed)
        return _items_of_each(outer, i, facts, depth, assumed) if outer is not None else None
    if isinstance(seq, Apply) and prim_name(seq) in ("tuple_getitem", "getitem") and \
            prim_name(seq.inputs[1]) == "make_tuple" and _const(seq.inputs[2]) is _MISSING and \
            prim_name(seq.inputs[2]) != "make_slice":
        # An item of an item of a display at an index known only when the code runs
        # (`layers[i][0]`): item i of any of the display's items.
        display = seq.inputs[1]
        assert isinstance(display, Apply)  # (prim_name says so)
        return _items_of_each(list(display.inputs[1:]), i, facts, depth, assumed)
    return None


def taken_outputs(node: Apply, facts: LoopFacts | None, depth: int,
                  assumed: Assumptions | None) -> list[Node]:
    """The values a value-`if` (see `is_switch_call`) may return: its taken branch's
    where its condition is known (`known_value`), else both branches'."""
    outs = if_outputs(node)
    sw = node.inputs[0]
    assert isinstance(sw, Apply)  # (see is_switch_call)
    c = known_value(sw.inputs[1], facts, depth + 1, assumed)
    if c is _MISSING:
        return outs
    return [outs[0] if c else outs[1]]


def known_value(node: Node, facts: LoopFacts | None = None, depth: int = 0,
                assumed: Assumptions | None = None) -> object:
    """The value (a bool, an int or None) of a test computed from constants and what
    kinds say (`np.ndim(a) == 0 or np.ndim(b) > 2`, as derivative rules test their
    arguments), under `assumed`; `_MISSING` where it is not known. Through value-`if`s
    (`a and b`, `a or b`) whose conditions are known."""
    if isinstance(node, Constant):
        v = node.value
        return v if v is None or type(v) in (bool, int) else _MISSING
    if depth > 40:
        _cut_short(facts)
        return _MISSING
    if is_switch_call(node):
        outs = taken_outputs(node, facts, depth, assumed)
        return known_value(outs[0], facts, depth + 1, assumed) if len(outs) == 1 else _MISSING
    name = prim_name(node)
    if name is None or not isinstance(node, Apply):
        return _MISSING
    if name == "np.ndim" and len(node.inputs) == 2:
        k = kind(node.inputs[1], facts, depth + 1, assumed)
        n = 0 if k is FLOAT or k is INT or k is SCALAR else ndim_of(k)
        return _MISSING if n is None else n
    # (comparisons, truth and int arithmetic of known values)
    if name in COMPARISON_OPERATORS or name in _INT_ARITHMETIC or name in ("not_", "truth"):
        args = [known_value(a, facts, depth + 1, assumed) for a in node.inputs[1:]]
        if any(a is _MISSING for a in args):
            n = int_value(node, facts, depth, assumed)
            return _MISSING if n is None else n
        impl = PRIMITIVES[name].impl
        try:
            return impl(*args) if impl is not None else _MISSING
        except Exception:  # noqa: BLE001  (as when it runs: not known here)
            return _MISSING
    n = int_value(node, facts, depth, assumed)
    return _MISSING if n is None else n


def _branch_taken(reader: Graph, value_if: Apply) -> int | None:
    """0 or 1 where `reader` is (inside) the first or the second branch of an `if` on the
    same condition as the value-`if` `value_if` (the same node: the same run-time value,
    so that `if` took the same branch), else None."""
    sw = value_if.inputs[0]
    assert isinstance(sw, Apply)  # (see is_switch_call)
    cond = sw.inputs[1]
    if keeping_users() and not any(
            n is not sw and n.inputs[1] is cond and prim_name(n) == "switch"
            for n in users_of(cond.id)):
        # (The optimizer's users index, `ir/edit.keep_users`, holds every node of the
        # program using `cond`, dead ones too: no other `if` on it, so none of the
        # schedules below, which most readers' enclosing functions need afresh, is made.)
        return None
    g: Graph | None = reader
    while g is not None and g.parent is not None:
        for n in graph_nodes(g.parent):
            if n is not sw and prim_name(n) == "switch" and n.inputs[1] is cond:
                for b, branch in enumerate(n.inputs[2:4]):
                    if isinstance(branch, Constant) and branch.value is g:
                        return b
        g = g.parent
    return None


def _items_of_each(seqs: list[Node], i: int, facts: LoopFacts | None, depth: int = 0,
                   assumed: Assumptions | None = None) -> list[Node] | None:
    """The nodes item i of any of `seqs` may be. A tuple too short to have an item i is
    left out: reading it raises, so `seq[i]`, where it has a value, came from another
    (a branch that saves nothing, `()`, beside one that saves values)."""
    items: list[Node] = []
    for seq in seqs:
        value = _const(seq)
        length = len(seq.inputs) - 1 if isinstance(seq, Apply) and \
            prim_name(seq) == "make_tuple" else \
            (len(value) if type(value) is tuple else None)
        if length is not None and not -length <= i < length:
            continue
        found = item_nodes(seq, i, facts, None, depth + 1, assumed)
        if found is None:
            return None
        items.extend(found)
    return items or None


def _common(kinds: list[Kind | None]) -> Kind | None:
    return kinds[0] if kinds and all(k == kinds[0] for k in kinds) else None


def same_array(a: Kind | None, b: Kind | None) -> bool:
    """Both the same float64 array kind (same shape), or both Python floats."""
    return a is not None and a == b and (a == FLOAT or dtype_of(a) == "f8")


_ = math


def _compared_kind(args: list[Kind | None], inputs: list[Node]) -> Kind | None:
    """`a > b` (and the other comparison operators) where an argument is a numeric
    array: a boolean array of their shapes broadcast, as `np.greater` gives."""
    if not any(dtype_of(a) in ("f8", "i8", "b1") for a in args) or \
            not all(a in (FLOAT, INT) or dtype_of(a) in ("f8", "i8", "b1") for a in args):
        return None
    shape = _broadcast(cast(list[tuple[int, ...]], [_scalar_shape(a) for a in args]))
    return array("b1", shape) if shape else None


def _max_sens_kind(args: list[Kind | None], inputs: list[Node]) -> Kind | None:
    """`max_sens(d, a, b)`: float64, of the shape of d, a and b broadcast."""
    shapes = [_scalar_shape(a) for a in args]
    if not (is_f8(args[0]) or args[0] == FLOAT) or any(s is None for s in shapes):
        return None
    shape = _broadcast(cast(list[tuple[int, ...]], shapes))
    return array("f8", shape) if shape else None


def _or_declared(rule: Callable, prim: Primitive) -> Callable:
    """`rule` as the `abstract_eval` of `prim`, which stands for the declared properties:
    where the rule gives no kind, NUMERIC for a numeric primitive, else none."""
    assert not (prim.number_op or prim.elementwise or prim.reduction or
                prim.shaped_like is not None or prim.result_kind is not None)
    fallback = NUMERIC if prim.numeric else None
    return lambda args, inputs: rule(args, inputs) or fallback


# Result kinds that no declared property of the primitive gives: an `abstract_eval` is
# called with the arguments' kinds and nodes, and its result (None: unknown) is the kind.
PRIMITIVES["np.where"].abstract_eval = _where_kind
PRIMITIVES["sens_of"].abstract_eval = _sensitivity_kind
PRIMITIVES["check_scalar_output"].abstract_eval = _sensitivity_kind
PRIMITIVES["to_structure"].abstract_eval = _to_structure_kind
PRIMITIVES["float"].abstract_eval = lambda args, inputs: FLOAT
# (a float64 item of a tuple sensitivity: ZERO, or its value's kind)
PRIMITIVES["sens_index"].abstract_eval = lambda args, inputs: \
    item if is_f8(item := _tuple_item(args[0], getattr(inputs[1], "value", None))) else None
# (`own` is a copy, or the array itself: see results.settle_owns)
PRIMITIVES["own"].abstract_eval = lambda args, inputs: args[0]
PRIMITIVES["zip_strict_length"].abstract_eval = lambda args, inputs: INT
PRIMITIVES["divmod"].abstract_eval = lambda args, inputs: \
    (tuple_of([INT, INT]) if args[0] is INT and args[1] is INT else tuple_of([FLOAT, FLOAT])) \
    if args[0] in (INT, FLOAT) and args[1] in (INT, FLOAT) else None
PRIMITIVES["unpack"].abstract_eval = lambda args, inputs: \
    args[0] if is_tuple(as_tuple(args[0])) or is_list(args[0]) or (ndim_of(args[0]) or 0) > 0 \
    else None
PRIMITIVES["check_bound"].abstract_eval = lambda args, inputs: \
    None if isinstance(inputs[0], Constant) else args[0]
PRIMITIVES["ones_like_output"].abstract_eval = \
    lambda args, inputs: args[0] if args[0] in (FLOAT, SCALAR) else None
PRIMITIVES["getitem_sens"].abstract_eval = lambda args, inputs: \
    args[1] if dtype_of(args[0]) == "f8" and dtype_of(args[1]) == "f8" else None
PRIMITIVES["max_sens"].abstract_eval = _max_sens_kind
# A value passed into derivative code (`lift`, `data_only`...): itself, where its kind
# says it is data (a record's class could define `__call__`).
def _data_kind(args: list[Kind | None], inputs: list[Node]) -> Kind | None:
    return None if is_record(args[0]) else args[0]


PRIMITIVES["lift"].abstract_eval = _data_kind
PRIMITIVES["lift_fwd"].abstract_eval = _data_kind
PRIMITIVES["data_only"].abstract_eval = _data_kind
PRIMITIVES["data_only_grad"].abstract_eval = _data_kind
PRIMITIVES["where_zero"].abstract_eval = lambda args, inputs: \
    args[1] if dtype_of(args[1]) == "f8" else None
# `np.zeros_like(a)`, `np.ones_like(a)`: an array of a's kind (of a number: a 0-d array).
for _name in ("np.zeros_like", "np.ones_like"):
    PRIMITIVES[_name].abstract_eval = _or_declared(
        lambda args, inputs: args[0] if isinstance(args[0], ArrayKind) and
        _const(inputs[1]) is None else None, PRIMITIVES[_name])
# `np.roll(a, shift, axis)`: an array of a's kind (the Jacobians' `field`-like test
# functions: a `tl.vmap` inside a `tl.jvp` is batched for the kinds it gives).
PRIMITIVES["np.roll"].abstract_eval = _or_declared(
    lambda args, inputs: args[0] if isinstance(args[0], ArrayKind) else None,
    PRIMITIVES["np.roll"])
for _name in COMPARISON_OPERATORS:
    PRIMITIVES[_name].abstract_eval = _compared_kind
# Shape rules.
for _names, _rule in ((("matmul", "np.matmul"), _matmul_kind),
                      (("np.dot", "method.dot"), _dot_kind),
                      (("np.swapaxes",), _swapaxes_kind),
                      (("np.einsum",), _einsum_kind),
                      (("np.transpose",), _transpose_kind),
                      (("getattr",), _attribute_kind),
                      (("np.expand_dims",), _expand_dims_kind),
                      (("np.squeeze", "method.squeeze"), _squeeze_kind)):
    for _name in _names:
        PRIMITIVES[_name].abstract_eval = _or_declared(_rule, PRIMITIVES[_name])


# Random draws (`primitives/random_ops.py`): float64 samples of the shape `size` names,
# else of the distribution's parameters broadcast (a Python float where they are Python
# numbers), so that derivative code through a draw gets the kinds arithmetic gets.
def _shape_value(node: Node) -> tuple[int, ...] | None:
    """The shape a `size` argument names, where it is known when compiling: an int or a
    tuple of ints, a display of ints computed from constants and shapes, `x.shape`."""
    value = _const(node)
    if type(value) is tuple and all(type(v) is int for v in value):
        return value
    if isinstance(node, Apply) and prim_name(node) == "getattr" and \
            _const(node.inputs[2]) == "shape":
        return shape_of(kind(node.inputs[1]))
    items = sequence_items(node)
    if items is not None:
        ints = [int_value(i) for i in items]
        return tuple(i for i in ints if i is not None) if None not in ints else None
    n = int_value(node)
    return (n,) if n is not None else None


def _draw_kind(params: tuple[int, ...], size: int | None, dtype: int | None = None
               ) -> Callable[[list[Kind | None], list[Node]], Kind | None]:
    """The kind of a float64 draw whose distribution's parameters are the arguments at
    `params` and whose shape is the argument at `size` (`dtype`: a dtype argument,
    where None means float64)."""
    def rule(args: list[Kind | None], inputs: list[Node]) -> Kind | None:
        if dtype is not None and _const(inputs[dtype]) is not None:
            return None
        if size is not None and _const(inputs[size]) is not None:
            shape = _shape_value(inputs[size])
            return array("f8", shape) if shape else None
        kinds = [args[i] for i in params]
        if all(k in (FLOAT, INT) for k in kinds):
            return FLOAT
        shapes = [_scalar_shape(k) for k in kinds]
        if not any(type(k) is ArrayKind for k in kinds) or \
                any(s is None for s in shapes):
            return None
        shape = _broadcast(cast(list[tuple[int, ...]], shapes))
        return array("f8", shape) if shape else None

    return rule


def _pair_kind(rule: Callable[[list[Kind | None], list[Node]], Kind | None]
               ) -> Callable[[list[Kind | None], list[Node]], Kind | None]:
    """(sample, standard variates or None)."""
    def pair(args: list[Kind | None], inputs: list[Node]) -> Kind | None:
        k = rule(args, inputs)
        return tuple_of([k, None]) if k is not None else None

    return pair


for _name, _params, _size, _dtype_at in (
        ("rng_normal", (1, 2), 3, None), ("rng_uniform", (1, 2), 3, None),
        ("rng_exponential", (1,), 2, None), ("rng_standard_normal", (), 1, 2),
        ("rng_random", (), 1, 2), ("rng_random_sample", (), 1, None),
        ("np.random.normal", (0, 1), 2, None), ("np.random.uniform", (0, 1), 2, None),
        ("np.random.exponential", (0,), 1, None),
        ("np.random.standard_normal", (), 0, None), ("np.random.random", (), 0, None),
        ("np.random.random_sample", (), 0, None)):
    PRIMITIVES[_name].abstract_eval = _or_declared(_draw_kind(_params, _size, _dtype_at),
                                                   PRIMITIVES[_name])
for _name, _params, _size in (("normal_and_standard", (1, 2), 3),
                              ("uniform_and_unit", (1, 2), 3),
                              ("exponential_and_standard", (1,), 2)):
    PRIMITIVES[_name].abstract_eval = _pair_kind(_draw_kind(_params, _size))
# (The standard variates have the sample's kind.)
PRIMITIVES["standard_variates"].abstract_eval = _or_declared(
    lambda args, inputs: (items_of(args[0]) or (None,))[0], PRIMITIVES["standard_variates"])
# In-place updates (`primitives/update_ops.py`): an updated array keeps its kind, and
# the sensitivities of an update have those of the values they belong to.
def _update_kind(args: list, inputs: list) -> Kind | None:
    return args[0] if isinstance(args[0], ArrayKind) else None


def _update_value_kind(args: list, inputs: list) -> Kind | None:
    value: Kind | None = args[2]
    if value == FLOAT or (dtype_of(value) == "f8" and dtype_of(args[0]) == "f8"):
        return value
    return None


PRIMITIVES["index_update"].abstract_eval = _update_kind
PRIMITIVES["index_add"].abstract_eval = _update_kind
PRIMITIVES["index_update_inplace"].abstract_eval = _update_kind
PRIMITIVES["index_add_inplace"].abstract_eval = _update_kind
PRIMITIVES["update_rest_sens"].abstract_eval = \
    lambda args, inputs: args[0] if dtype_of(args[0]) == "f8" else None
PRIMITIVES["update_value_sens"].abstract_eval = _update_value_kind
PRIMITIVES["update_value_scatter"].abstract_eval = \
    lambda args, inputs: args[1] if dtype_of(args[1]) == "f8" else None


# Rules that read more than the arguments' kinds (the items of a display, the integer
# values of sizes): registered as the primitives' `infer_kind`, called with the node,
# the loop facts, the depth of the search and the assumptions, before the arguments'
# kinds are inferred; None leaves the kind to the rules on the arguments' kinds.
_FILLED_DTYPES: dict[object, str] = {float: "f8", bool: "b1", int: "i8"}


def _filled_kind(node: Apply, facts: LoopFacts | None, depth: int,
                 assumed: Assumptions | None) -> Kind | None:
    """`np.zeros(shape, dtype)`, `np.ones(shape, dtype)` (dtype float, bool or int) and
    `np.full(shape, value)` of a Python float, bool or int, with sizes known when
    compiling."""
    if len(node.inputs) == 4 and prim_name(node) == "np.full":
        fill = node.inputs[2]
        value = _const(fill)
        dtype = _FILLED_DTYPES.get(type(value)) if isinstance(fill, Constant) else \
            "f8" if kind(fill, facts, depth + 1, assumed) is FLOAT else None
        if _const(node.inputs[3]) is not None:
            return None
    else:
        dtype = _FILLED_DTYPES.get(_const(node.inputs[2])) if len(node.inputs) == 3 else None
    if dtype is None:
        return None
    sizes = _index_parts(node.inputs[1]) or [node.inputs[1]]  # (`np.zeros(n)`)
    dims = [int_value(i, facts, depth + 1, assumed) for i in sizes]
    known = [n for n in dims if n is not None and n >= 0]
    return array(dtype, tuple(known)) if len(known) == len(dims) else None


def _arange_kind(node: Apply, facts: LoopFacts | None, depth: int,
                 assumed: Assumptions | None) -> Kind | None:
    """`np.arange(...)` of int bounds known when compiling (no dtype)."""
    if len(node.inputs) != 3 or _const(node.inputs[2]) is not None:
        return None
    items = _index_parts(node.inputs[1])
    ends = [int_value(i, facts, depth + 1, assumed) for i in items] \
        if items is not None and 1 <= len(items) <= 3 else None
    if ends is None or None in ends or ends[2:] == [0]:
        return None
    return array("i8", (len(range(*cast(list[int], ends))),))


def _triangle_indices_kind(node: Apply, facts: LoopFacts | None, depth: int,
                           assumed: Assumptions | None) -> Kind | None:
    """`np.triu_indices(n, k, m)`, `np.tril_indices(n, k, m)` of ints known when compiling:
    two int arrays of the triangle's count."""
    n, k, m = (int_value(i, facts, depth + 1, assumed) for i in node.inputs[1:4])
    if m is None and _const(node.inputs[3]) is None:
        m = n
    if n is None or k is None or m is None or n < 0 or m < 0:
        return None
    upper = cast(Constant, node.inputs[0]).value is PRIMITIVES["np.triu_indices"]
    # (row i has the columns j >= i + k above, j <= i + k below, of 0..m-1)
    count = sum(max(0, m - max(0, i + k)) if upper else max(0, min(m, i + k + 1))
                for i in range(n))
    pair = array("i8", (count,))
    return tuple_of([pair, pair])


def _size_kind(node: Apply, facts: LoopFacts | None, depth: int,
               assumed: Assumptions | None) -> Kind | None:
    """`np.size(a)`: an int, whatever `a` is."""
    return INT if len(node.inputs) == 2 else None


def _eye_kind(node: Apply, facts: LoopFacts | None, depth: int,
              assumed: Assumptions | None) -> Kind | None:
    """`np.eye(n)`, `np.eye(n, m, k)` of sizes known when compiling (float64)."""
    if len(node.inputs) != 5 or _const(node.inputs[4]) is not float:
        return None
    n = int_value(node.inputs[1], facts, depth + 1, assumed)
    m = n if _const(node.inputs[2]) is None else \
        int_value(node.inputs[2], facts, depth + 1, assumed)
    return array("f8", (n, m)) if n is not None and m is not None and n >= 0 and m >= 0 \
        else None


def _reshape_kind(node: Apply, facts: LoopFacts | None, depth: int,
                  assumed: Assumptions | None) -> Kind | None:
    """`np.reshape(a, shape)` of an array of known shape to a shape known when compiling
    (one -1 among its sizes: what the others leave)."""
    if len(node.inputs) != 3:
        return None
    a = kind(node.inputs[1], facts, depth + 1, assumed)
    if not isinstance(a, ArrayKind):
        return None
    shape = _known_shape(node.inputs[2], facts, depth + 1, assumed)
    if shape is None:  # (`np.reshape(a, n)`)
        n = int_value(node.inputs[2], facts, depth + 1, assumed)
        shape = (n,) if n is not None else None
    if shape is None or sum(n == -1 for n in shape) > 1 or \
            any(n < -1 for n in shape):
        return None
    total = math.prod(a.shape)
    rest = math.prod(n for n in shape if n != -1)
    if -1 in shape:
        if rest == 0 or total % rest:
            return None
        shape = tuple(total // rest if n == -1 else n for n in shape)
    elif rest != total:
        return None
    return array(a.dtype, shape)


for _name, _infer_rule in (("list_map", _list_map_kind),
                           ("list_flatmap", _list_flatmap_kind),
                           ("np.concatenate", _concatenate_kind),
                           ("np.stack", _stack_kind),
                           ("np.zeros", _filled_kind), ("np.ones", _filled_kind),
                           ("np.full", _filled_kind),
                           ("np.arange", _arange_kind),
                           ("np.size", _size_kind), ("np.eye", _eye_kind),
                           ("np.reshape", _reshape_kind),
                           ("np.broadcast_to", _broadcast_to_kind),
                           ("np.triu_indices", _triangle_indices_kind),
                           ("np.tril_indices", _triangle_indices_kind)):
    PRIMITIVES[_name].infer_kind = _infer_rule

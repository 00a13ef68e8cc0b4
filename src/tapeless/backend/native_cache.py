"""Starting native code from the cache: a second process runs a function that an earlier
process compiled natively without building it again.

A native program's code is in Numba's cache (`native.cache_dir`), but finding it there
takes its cache key, a hash of the lowered module: the function parsed, differentiated,
optimized and generated again (most of a first call). So once a native program has
passed its first call's checks (its result equal to the Python backend's, and no
slower), a *start record* is written next to it, under a *start key* that is computed
before any of that work (`start_key`): a hash of

- the transform (`jit`, `grad` with its `argnums`, ...: `Transformed.start_description`),
- the arguments' signatures (what selects the compiled version),
- the source of every function the program can reach: each function's file (its whole
  text), name and line, and the values of the globals, closure cells and default values
  it names, followed into the functions, tapeless transforms and constants they hold,
- tapeless's own source (every module of the package), the versions of Python, NumPy
  and Numba, and the options that change the generated code (`TAPELESS_OPTIMIZE`,
  loop checkpointing, Numba's options, the speed check).

A value that cannot be keyed by content (an object, a list, a module other than the
numerical libraries', a class other than a number type) makes a function have no start
key: it is built as before (its native code still loads from Numba's cache).

The record (JSON: loading it runs no code but the lowered module it holds, in the cache
directory that `native.cache_dir` checks this user alone can write) holds the lowered
module's syntax tree, exactly (Numba finds a function's cached code by its file, name
and first line, and a hash of its bytecode: text unparsed and parsed again can compile
to other bytecode), the module's constants and the result's NumPy scalar types. A
started program keeps the built program's behaviour: where native code cannot answer a
call (a symbolic zero, an exception, a Numba error), the program is built as without
the cache (`StartedFunction`) and that build answers. A program that fell back records
why instead, with the Python backend's program it runs where that can be loaded from its
source alone: a second process loads it (`_load_python`), or else builds it for the
Python backend without lowering it or trying Numba again (`load_fallback`).
"""

from __future__ import annotations

import ast
import base64
import builtins
import functools
import hashlib
import importlib
import json
import linecache
import os
import sys
import tempfile
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ..ir.nodes import Location
from . import native, pygen

# The version of the record's layout (part of the key).
_FORMAT = b"tapeless-native-start-1"
# Modules a record may name (the namespaces of generated code).
_MODULES = ("numpy", "math", "tapeless.runtime", "scipy.special", "scipy.linalg")
# Libraries whose functions and modules are keyed by name (and version): tapeless does
# not compile their code (`frontend.libraries`), it calls them or knows them as primitives.
_LIBRARIES = ("numpy", "math", "cmath", "scipy", "operator", "functools", "itertools",
              "typing", "tapeless", "builtins")
_PLAIN_TYPES = (float, int, bool, complex, str, type(None), tuple, list, dict, range,
                slice)


class _Unkeyable(Exception):
    pass


@functools.cache
def _package_hash() -> bytes:
    """A hash of tapeless's own source: every module of the package, by its path inside
    the package (computed once in a process)."""
    h = hashlib.sha256()
    root = os.path.dirname(os.path.dirname(os.path.abspath(native.__file__)))
    todo = [root]
    while todo:
        folder = todo.pop()
        with os.scandir(folder) as found:
            entries = sorted(found, key=lambda e: e.name)
        for e in entries:
            if e.is_dir() and e.name != "__pycache__":
                todo.append(e.path)
            elif e.name.endswith(".py"):
                with open(e.path, "rb") as f:
                    # (by the path inside the package: the same source installed
                    # elsewhere, or run from a checkout, is the same tapeless)
                    h.update(os.path.relpath(e.path, root).encode() + b"\0" + f.read()
                             + b"\0")
    return h.digest()


def _versions() -> bytes:
    import numba

    return repr((numba.__version__, np.__version__, sys.version, native._NJIT,
                 os.environ.get("TAPELESS_NATIVE_SPEED_CHECK", "1") != "0")).encode()


def _signature_text(s: Any) -> str:
    """A text for an argument signature (`api._signature`) that is the same in every
    process; unkeyable for a class other than a number or container type."""
    if type(s) is tuple:
        return "(" + ",".join(_signature_text(v) for v in s) + ")"
    if isinstance(s, type):
        if s in _PLAIN_TYPES or s.__module__ == "numpy":
            return f"<{s.__module__}.{s.__qualname__}>"
        raise _Unkeyable
    if type(s) in (int, str):
        return repr(s)
    raise _Unkeyable


def _library(value: Any) -> str | None:
    """The library a module, function or class belongs to, where it is one of
    `_LIBRARIES`."""
    name = value.__name__ if isinstance(value, types.ModuleType) else \
        getattr(value, "__module__", None)
    if not isinstance(name, str):
        return None
    top = name.split(".")[0]
    return top if top in _LIBRARIES else None


class _Walk:
    """Hashes the functions a program can reach and the values they name (see the
    module's docstring), recording each global and cell read for the started program's
    guard (the reads of `frontend.guards`)."""

    def __init__(self) -> None:
        self.h = hashlib.sha256()
        self.seen: dict[int, int] = {}
        self.files: dict[str, bytes] = {}
        self.reads: list[tuple[Any, Any, Any]] = []
        self.keep: list[Any] = []  # (the objects whose ids are in `seen` stay alive)

    def add(self, *parts: Any) -> None:
        self.h.update(repr(parts).encode() + b"\0")

    def value(self, value: Any) -> None:
        if id(value) in self.seen:
            self.add("again", self.seen[id(value)])
            return
        t = type(value)
        if t in (bool, int, float, complex, str, type(None)) or isinstance(
                value, (np.ndarray, np.generic)) or t is tuple:
            if t is tuple:
                self.add("tuple", len(value))
                for v in value:
                    self.value(v)
                return
            part = native._fingerprint(value)
            if part is None:
                raise _Unkeyable
            self.h.update(part + b"\0")
            return
        self.seen[id(value)] = len(self.seen)
        self.keep.append(value)
        describe = getattr(value, "start_description", None)
        if describe is not None and getattr(value, "__tapeless_transform__", False):
            found = describe()
            if found is None:
                raise _Unkeyable
            *parts, inner = found
            self.add("transform", *parts)
            self.value(inner)
            return
        library = _library(value)
        if isinstance(value, types.ModuleType):
            if library is None:
                raise _Unkeyable
            self.add("module", value.__name__)
        elif t is types.FunctionType and library is None:
            self.function(value)
        elif isinstance(value, (types.FunctionType, types.BuiltinFunctionType, np.ufunc,
                                type)) and (library is not None or value in _PLAIN_TYPES):
            self.add("library", library, getattr(value, "__module__", None),
                     getattr(value, "__qualname__", getattr(value, "__name__", None)))
        else:
            raise _Unkeyable

    def function(self, fn: types.FunctionType) -> None:
        code = fn.__code__
        file = self.files.get(code.co_filename)
        if file is None:
            lines = linecache.getlines(code.co_filename)
            if not lines:
                raise _Unkeyable
            file = self.files[code.co_filename] = hashlib.sha256(
                "".join(lines).encode()).digest()
        # (The code itself too: two lambdas on one line share file, name and line.)
        self.add("function", code.co_filename, file, fn.__qualname__, code.co_firstlineno,
                 _code_identity(code))
        for d in (fn.__defaults__ or ()):
            self.value(d)
        for k, d in sorted((fn.__kwdefaults__ or {}).items()):
            self.add("kwdefault", k)
            self.value(d)
        for name, cell in zip(code.co_freevars, fn.__closure__ or (), strict=True):
            try:
                content = cell.cell_contents
            except ValueError:
                self.add("empty cell", name)
                continue
            self.reads.append((cell, None, content))
            self.add("cell", name)
            self.value(content)
        space = fn.__globals__
        for name in sorted(_names(code)):
            self.add("name", name)
            if name in space:
                found = space[name]
                self.reads.append((space, name, found))
                self.value(found)
            else:
                from ..frontend.guards import MISSING

                self.reads.append((space, name, MISSING))
                self.add("builtin" if hasattr(builtins, name) else "unbound")


def _code_identity(code: types.CodeType) -> str:
    """A hash of `code` and the code nested in it: bytecode, constants and positions."""
    h = hashlib.sha256(code.co_code)
    for c in code.co_consts:
        h.update(_code_identity(c).encode() if isinstance(c, types.CodeType) else
                 repr((type(c).__name__, c)).encode())
    positions = getattr(code, "co_positions", None)  # (Python 3.11+)
    if positions is not None:
        h.update(repr(list(positions())).encode())
    return h.hexdigest()


def _names(code: types.CodeType) -> set[str]:
    """The global (and attribute) names `code` and the code nested in it name."""
    out = set(code.co_names)
    for c in code.co_consts:
        if isinstance(c, types.CodeType):
            out |= _names(c)
    return out


def start_key(description: tuple, signatures: tuple, options: tuple
              ) -> tuple[str, list[tuple[Any, Any, Any]]] | None:
    """The start key of a transform (`description`: its kind and parameters, then the
    function or transform it applies to) for arguments with `signatures`, and the reads
    the program's guard tests; None where something has no key."""
    walk = _Walk()
    try:
        *parts, inner = description
        walk.add("top", *parts)
        walk.add("arguments", _signature_text(signatures))
        walk.value(inner)
    except (_Unkeyable, RecursionError):
        return None
    walk.h.update(_FORMAT + _package_hash() + _versions() + repr(options).encode())
    return walk.h.hexdigest(), walk.reads


# --- records -------------------------------------------------------------------------------


def _record_path(key: str) -> Path | None:
    directory = native.cache_dir()
    return None if directory is None else directory / "start" / f"{key}.json"


def _encode(value: Any) -> Any:
    """A JSON form of a module constant (`native._fingerprint` keys the same values)."""
    if isinstance(value, types.ModuleType):
        if value.__name__ not in _MODULES:
            raise _Unkeyable
        return {"module": value.__name__}
    if isinstance(value, np.ndarray):
        return {"array": value.dtype.str, "shape": list(value.shape),
                "data": base64.b64encode(np.ascontiguousarray(value).tobytes()).decode()}
    if isinstance(value, np.generic):
        return {"scalar": value.dtype.str,
                "data": base64.b64encode(np.asarray(value).tobytes()).decode()}
    if type(value) is complex:
        return {"complex": [value.real, value.imag]}
    if type(value) is float:
        return {"float": repr(value)}
    if type(value) in (bool, int, str, type(None)):
        return value
    if type(value) is tuple:
        return {"tuple": [_encode(v) for v in value]}
    if isinstance(value, type) and value in _PLAIN_TYPES:
        return {"type": value.__name__}  # (`isinstance(v, (tuple, list))` in derivative code)
    raise _Unkeyable


_TYPES_BY_NAME = {t.__name__: t for t in _PLAIN_TYPES}


def _decode(data: Any) -> Any:
    if not isinstance(data, dict):
        return data
    if "module" in data:
        if data["module"] not in _MODULES:
            raise ValueError(data["module"])
        return importlib.import_module(data["module"])
    if "array" in data:
        flat = np.frombuffer(base64.b64decode(data["data"]), dtype=np.dtype(data["array"]))
        return flat.reshape(data["shape"]).copy()
    if "scalar" in data:
        return np.frombuffer(base64.b64decode(data["data"]), dtype=np.dtype(data["scalar"]))[0]
    if "complex" in data:
        return complex(*data["complex"])
    if "float" in data:
        return float(data["float"])
    if "tuple" in data:
        return tuple(_decode(v) for v in data["tuple"])
    if "type" in data:
        return _TYPES_BY_NAME[data["type"]]
    raise ValueError(data)


def _encode_ast(node: Any) -> Any:
    """A JSON form of a syntax tree, exact: compiled again it gives the same bytecode
    (Numba's cache key holds a hash of a function's bytecode) and line numbers."""
    if isinstance(node, ast.AST):
        out: dict[str, Any] = {"_": type(node).__name__}
        for name in (*node._fields, *node._attributes):
            if hasattr(node, name):
                out[name] = _encode_ast(getattr(node, name))
        return out
    if isinstance(node, list):
        return [_encode_ast(v) for v in node]
    if node is None or type(node) in (bool, int, str):
        return node
    if type(node) is float:
        return {"float": repr(node)}
    if type(node) is complex:
        return {"complex": [repr(node.real), repr(node.imag)]}
    if type(node) is bytes:
        return {"bytes": base64.b64encode(node).decode()}
    if node is Ellipsis:
        return {"ellipsis": True}
    if type(node) is tuple:
        return {"tuple": [_encode_ast(v) for v in node]}
    raise _Unkeyable


def _decode_ast(data: Any) -> Any:
    if isinstance(data, list):
        return [_decode_ast(v) for v in data]
    if not isinstance(data, dict):
        return data
    if "_" in data:
        cls = getattr(ast, data["_"], None)
        if not (isinstance(cls, type) and issubclass(cls, ast.AST)):
            raise ValueError(data["_"])
        node = cls()
        for name, value in data.items():
            if name != "_":
                setattr(node, name, _decode_ast(value))
        return node
    if "float" in data:
        return float(data["float"])
    if "complex" in data:
        return complex(float(data["complex"][0]), float(data["complex"][1]))
    if "bytes" in data:
        return base64.b64decode(data["bytes"])
    if "ellipsis" in data:
        return Ellipsis
    if "tuple" in data:
        return tuple(_decode_ast(v) for v in data["tuple"])
    raise ValueError(data)


def save(key: str, entry: native.NativeFunction) -> None:
    """Write the start record of `entry` under `key`: a program whose native code passed
    its first call's checks (compiled into Numba's cache), or one that fell back (the
    reason, so that a second process does not try Numba again); nothing where it has
    none."""
    path = _record_path(key)
    if path is None:
        return
    if entry.fallback is not None:
        where = entry.fallback.where
        record: dict[str, Any] = {"key": key, "fallback": {
            "function": entry.fallback.function, "reason": entry.fallback.reason,
            "where": None if where is None else _location(where)}}
        python = _python_record(entry.python_program)
        if python is not None:
            record["python"] = python
        _write(path, record)
        return
    module = entry.module
    if module is None or module.tree is None or not module.cached or entry.native is None:
        return
    tree = module.tree
    defined = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
    used = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)} - defined
    space = module.namespace
    try:
        constants = {name: _encode(space[name]) for name in sorted(used)
                     if name in space and not name.startswith("__") and
                     not name.startswith("_nt_")}
        body = [_encode_ast(stmt) for stmt in tree.body]
    except _Unkeyable:
        return
    record = {
        "key": key, "file": module.filename, "stem": module.stem, "root": module.root,
        "file_hash": hashlib.sha256(Path(module.filename).read_bytes()).hexdigest(),
        "body": body,
        "functions": sorted(defined), "constants": constants,
        "types": entry.type_spec, "explicit": module.explicit,
        # (an entry that returns which `return` it took: `native_paths`)
        "entry": entry.native.py_func.__name__, "paths": entry.paths,
    }
    _write(path, record)


def _location(where: Location) -> list:
    return [where.filename, where.line, where.col, where.source_line]


def _located(data: Any) -> Location:
    return Location(str(data[0]), int(data[1]), int(data[2]), str(data[3]))


@functools.cache
def _dynamic_helpers() -> frozenset[str]:
    """The runtime's helpers that derive or call function values as they run
    (`runtime.DYNAMIC`: through the generated functions' graphs, which a program loaded
    from its source has not), and the helpers calling them."""
    from .. import runtime

    code = {name: fn.__code__ for name, fn in vars(runtime).items()
            if isinstance(fn, types.FunctionType) and fn.__module__ == runtime.__name__}
    found = {"DYNAMIC", "is_generated", "_GENERATED"}
    while True:
        more = {name for name, c in code.items() if _names(c) & found} - found
        if not more:
            return frozenset(found)
        found |= more


def _python_record(program: Any) -> dict | None:
    """The Python backend's program `program` (a `Compiled`) as a record's part: its
    source, entry, constants and the user's lines; None where it cannot be loaded from
    its source alone (a constant with no JSON form, such as a function or an object; a
    packed `*args` entry; a function value derived as it runs; a class as a value)."""
    if program is None or getattr(program.fn, "__wrapped__", None) is not None:
        return None
    tree = ast.parse(program.source)
    defined = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
    used = _names(compile(tree, "<record>", "exec")) - defined
    space = program.fn.__globals__
    if used & _dynamic_helpers() or any(
            hasattr(space.get(name), "__tapeless_class__") for name in defined):
        return None
    try:
        constants = {name: _encode(space[name]) for name in sorted(used)
                     if name in space and not name.startswith("__")}
    except _Unkeyable:
        return None
    return {"source": program.source, "root": program.fn.__name__, "constants": constants,
            "lines": [[line, *_location(where)] for line, where in program.linemap.items()]}


def _python_program(data: dict) -> tuple[Any, str, dict[int, Location]]:
    """The Python program of a record's part (`_python_record`): its entry, source and
    the user's lines by line."""
    source = str(data["source"])
    namespace: dict[str, Any] = {"__builtins__": builtins}
    namespace.update({name: _decode(v) for name, v in data["constants"].items()})
    filename = pygen.generated_filename(str(data["root"]), source)
    exec(compile(source, filename, "exec"), namespace)  # noqa: S102 - tapeless wrote it
    linemap = {int(item[0]): _located(item[1:]) for item in data["lines"]}
    return namespace[str(data["root"])], filename, linemap


def _write(path: Path, record: dict) -> None:
    path.parent.mkdir(exist_ok=True, mode=0o700)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        json.dump(record, f)
    os.replace(tmp, path)


def load_fallback(key: str) -> native.Fallback | None:
    """The fallback recorded under `key` (a program that runs on the Python backend, and
    why), or None."""
    record = _read(key)
    found = None if record is None else record.get("fallback")
    if not isinstance(found, dict):
        return None
    try:
        where = found["where"]
        location = None if where is None else _located(where)
        fallback = native.Fallback(str(found["function"]), str(found["reason"]), location)
    except (KeyError, TypeError, ValueError, IndexError):
        return None
    native.FALLBACKS.append(fallback)
    return fallback


def _read(key: str) -> dict | None:
    path = _record_path(key)
    if path is None or not path.exists():
        return None
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) and record.get("key") == key else None


def load(key: str, build: Callable[[], native.NativeFunction]
         ) -> tuple[native.NativeFunction, str, str, dict[int, Location]] | None:
    """The program whose start record is under `key`, with its Python source, file name
    and the user's lines by line (where known); None where there is no record of native
    code or of the Python backend's program of one that falls back (or it does not
    hold). `build` builds the program as without the cache, for the calls native code
    cannot answer."""
    path = _record_path(key)
    record = _read(key)
    if path is None or record is None:
        return None
    if "fallback" in record:
        return _load_python(record)
    try:
        file = Path(record["file"])
        if file.parent != path.parent.parent:
            return None  # (a module tapeless did not write)
        source = file.read_bytes()
        if hashlib.sha256(source).hexdigest() != record["file_hash"]:
            return None
        namespace = {name: _decode(v) for name, v in record["constants"].items()}
        tree = ast.Module(body=[_decode_ast(stmt) for stmt in record["body"]],
                          type_ignores=[])
        stem, root = record["stem"], record["root"]
        functions = list(record["functions"])
        spec = record["types"]
        explicit = record.get("explicit") is True
        called = str(record.get("entry") or root)
        paths = record.get("paths")
        paths = None if paths is None else {int(k): v for k, v in dict(paths).items()}
    except (OSError, ValueError, KeyError, TypeError, SyntaxError):
        return None
    import numba

    native._register_overloads()
    name = f"tapeless_native.{stem}"
    mod = sys.modules.get(name)
    if mod is None:
        mod = types.ModuleType(name)
        mod.__file__ = str(file)
        mod.__dict__.update({"__builtins__": builtins, **namespace})
        mod.__dict__.update(native.overloads())
        exec(compile(tree, str(file), "exec"), mod.__dict__)  # noqa: S102
        for fn_name in functions:
            dispatcher = numba.njit(cache=not explicit, **native._NJIT)(
                getattr(mod, fn_name))
            if explicit:  # (a recursive module: its cache is loaded, never written)
                dispatcher.enable_caching()
                native._load_only(dispatcher)
            setattr(mod, fn_name, dispatcher)
        sys.modules[name] = mod
    entry = StartedFunction(getattr(mod, called), build)
    entry.type_spec = spec
    entry.types = native.retype_from(spec)
    if paths is not None:
        entry.paths = paths
        entry.path_types = {k: native.retype_from(v) for k, v in paths.items()}
    return entry, source.decode(), str(file), {}


def _load_python(record: dict) -> tuple[native.NativeFunction, str, str,
                                        dict[int, Location]] | None:
    """A program that falls back, from its record: the Python backend's program, loaded
    from its source (nothing parsed, differentiated or optimized), and why it falls back;
    None where the record holds no program."""
    if not isinstance(record.get("python"), dict):
        return None
    key = str(record["key"])
    try:
        fn, filename, linemap = _python_program(record["python"])
    except (KeyError, TypeError, ValueError, IndexError, SyntaxError):
        return None
    fallback = load_fallback(key)
    if fallback is None:
        return None
    return (native.NativeFunction(fn, None, None, fallback), str(record["python"]["source"]),
            filename, linemap)


class StartedFunction(native.NativeFunction):
    """A program started from its record: native code, built in full (`build`) for the
    first call native code cannot answer, which that build then answers (and every call
    after it: the built program is what a process without the cache runs)."""

    def __init__(self, compiled: Any, build: Callable[[], native.NativeFunction]):
        super().__init__(None, compiled, None, None)
        self.first = False
        self._build = build
        self._built: native.NativeFunction | None = None

    def built(self) -> native.NativeFunction:
        if self._built is None:
            self._built = self._build()
        return self._built

    def __call__(self, *args: Any) -> Any:
        if self._built is not None:
            return self._built(*args)
        try:
            out = self.native(*args)
        except Exception:  # noqa: BLE001 - the built program answers (and raises)
            return self.built()(*args)
        types = self.types
        if self.paths is not None:
            out, path = out
            if path not in self.paths:  # (a `return` no call checked: the built program)
                return self.built()(*args)
            types = self.path_types[path]
        if out is None or type(out) is tuple and any(v is None for v in out):
            return self.built()(*args)
        return types(out) if types is not None else out

    @property
    def python_entry(self) -> Any:
        return self.built().python

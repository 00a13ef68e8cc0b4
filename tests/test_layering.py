"""The package's imports follow the pipeline: each stage imports only the stages below it
(function-level imports included), and no imports form a cycle."""

from __future__ import annotations

import ast
from pathlib import Path

import tapeless

SRC = Path(tapeless.__file__).parent

# Lowest first: a module may import its own layer and the layers before it.
LAYERS = [
    {"runtime", "sparse_sens", "errors", "vmap_axes"},
    {"ir"},
    {"primitives"},
    {"frontend"},
    {"ad"},
    {"opt"},
    {"backend"},
    {"api", "grad_api", "fwd_api", "vmap_api", "custom", "dynamic", "tree", "cli", "demo",
     "__init__"},
]


def _layer(module: str) -> int:
    top = module.split(".")[1] if "." in module else "__init__"
    for i, names in enumerate(LAYERS):
        if top in names:
            return i
    raise AssertionError(f"{module} is in no layer: add it to LAYERS")


def _module_name(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _type_only(tree: ast.Module) -> set[int]:
    """The ids of the import nodes under `if TYPE_CHECKING:` (for annotations only)."""
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and \
                node.test.id == "TYPE_CHECKING":
            out |= {id(n) for b in node.body for n in ast.walk(b)}
    return out


def _imports(path: Path) -> set[str]:
    """The tapeless modules `path` imports, anywhere in it (function-level included;
    imports for annotations only, under `if TYPE_CHECKING:`, are not imports at run
    time)."""
    module = _module_name(path)
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    found = set()
    tree = ast.parse(path.read_text())
    skip = _type_only(tree)
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.startswith("tapeless"):
                for alias in node.names:
                    full = f"{target}.{alias.name}"
                    found.add(full if (SRC.parent / full.replace(".", "/")).with_suffix(
                        ".py").exists() or (SRC.parent / full.replace(".", "/")).is_dir()
                        else target)
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("tapeless")}
    return found


def _graph() -> dict[str, set[str]]:
    return {_module_name(p): _imports(p) for p in SRC.rglob("*.py")}


def test_no_import_goes_against_the_pipeline() -> None:
    wrong = []
    for module, targets in _graph().items():
        if module == "tapeless":
            continue
        for target in targets:
            if target != "tapeless" and _layer(target) > _layer(module):
                wrong.append(f"{module} imports {target}")
    assert not wrong, "imports against the pipeline order:\n" + "\n".join(sorted(wrong))


def test_no_import_cycle() -> None:
    graph = _graph()
    # A package imports its modules; a module importing its own package's __init__ for a
    # name is not a cycle through the package's other modules.
    edges = {m: {t for t in ts if t in graph and t != m and not m.startswith(t + ".")}
             for m, ts in graph.items()}
    state: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(m: str) -> None:
        state[m] = 1
        stack.append(m)
        for t in edges.get(m, ()):
            if state.get(t) == 1:
                cycles.append(stack[stack.index(t):] + [t])
            elif t not in state:
                visit(t)
        stack.pop()
        state[m] = 2

    for m in sorted(edges):
        if m not in state:
            visit(m)
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)

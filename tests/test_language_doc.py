"""docs/language.md lists the builtins, NumPy/math functions and methods that compile;
those tables are generated from the primitive registries and must match them.

After changing a registry, run `python tests/test_language_doc.py` to rewrite the
generated sections of docs/language.md."""

from __future__ import annotations

import builtins
import re
import sys
from pathlib import Path

from tapeless.primitives import BY_CALLABLE, METHODS
from tapeless.primitives.numpy_ops import MATH_FUNCTIONS, NUMPY_FUNCTIONS, NUMPY_LINALG
from tapeless.primitives.random_ops import CONSTRUCTORS, LEGACY_FUNCTIONS, RANDOM_METHODS
from tapeless.primitives.scipy_ops import SCIPY_LINALG, SCIPY_SPECIAL

DOC = Path(__file__).resolve().parent.parent / "docs" / "language.md"
SECTION = re.compile(r"(<!-- BEGIN generated: (\S+) -->\n)(.*?)(<!-- END generated: \2 -->)",
                     re.S)


def _grouped(entries: list[tuple[str, str, bool]], prefix: str,
             what: str = "functions") -> list[str]:
    """Table rows, one per (signature, differentiable) group, in registry order."""
    groups: dict[tuple[str, bool], list[str]] = {}
    for name, spec, diff in entries:
        groups.setdefault((spec, diff), []).append(name)
    rows = [f"| {what} | parameters | differentiable |", "|---|---|---|"]
    for (spec, diff), names in groups.items():
        listed = ", ".join(f"`{prefix}{n}`" for n in names)
        rows.append(f"| {listed} | `({spec})` | {'yes' if diff else 'no'} |")
    return rows


def _table(table: dict[str, tuple[str, bool]], prefix: str) -> list[str]:
    return _grouped([(n, spec, diff) for n, (spec, diff) in table.items()], prefix)


def _builtins() -> list[str]:
    entries = []
    for name in dir(builtins):
        value = getattr(builtins, name)
        try:
            prim = BY_CALLABLE.get(id(value))
        except TypeError:  # pragma: no cover
            prim = None
        if prim is not None and not name.startswith("_"):
            entries.append((name, prim.spec, prim.differentiable))
    return _grouped(entries, "")


def _methods() -> list[str]:
    entries = []
    for name, prim in METHODS.items():
        spec = prim.spec.partition(",")[2].strip()
        entries.append((name, spec, prim.differentiable))
    return _grouped(entries, ".", "methods")


def _random() -> list[str]:
    constructors = [(f"np.random.{n}", spec, False) for n, spec in CONSTRUCTORS.items()]
    methods = [(n, spec, diff) for n, (spec, diff) in RANDOM_METHODS.items()]
    return (_grouped(constructors, "", "generators") + [""] +
            _grouped(methods, "rng.", "methods") + [""] +
            _table(LEGACY_FUNCTIONS, "np.random."))


def generated() -> dict[str, str]:
    sections = {
        "builtins": _builtins(),
        "numpy": _table(NUMPY_FUNCTIONS, "np."),
        "linalg": _table(NUMPY_LINALG, "np.linalg."),
        "math": _table(MATH_FUNCTIONS, "math."),
        "scipy_special": _table(SCIPY_SPECIAL, "scipy.special."),
        "scipy_linalg": _table(SCIPY_LINALG, "scipy.linalg."),
        "methods": _methods(),
        "random": _random(),
    }
    return {k: "\n".join(v) + "\n" for k, v in sections.items()}


def render(text: str) -> str:
    tables = generated()
    return SECTION.sub(lambda m: m.group(1) + tables[m.group(2)] + m.group(4), text)


def test_doc_tables_match_the_registries() -> None:
    text = DOC.read_text()
    names = [m.group(2) for m in SECTION.finditer(text)]
    assert sorted(names) == sorted(generated()), names
    assert render(text) == text, (
        "docs/language.md is out of date with the primitive registries; run "
        "`python tests/test_language_doc.py` to regenerate its tables")


if __name__ == "__main__":
    DOC.write_text(render(DOC.read_text()))
    sys.exit(0)

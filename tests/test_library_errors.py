"""An error about a library function names the user's call site first
(`your_file.py:12:5: scipy.special.foo is not supported`), never only a line inside
NumPy, SciPy or the standard library: tapeless compiles the user's code, not the
libraries', and refuses their Python functions where the user's code refers to them."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import numpy as np
import pytest

import tapeless as tl
from tapeless.frontend import libraries

pytest.importorskip("scipy")

FIXTURES = Path(__file__).parent / "fixtures"
sys.path.insert(0, str(FIXTURES))
import library_calls as lc  # noqa: E402

PATH = str(Path(lc.__file__).resolve())
LINES = Path(PATH).read_text().splitlines()


def marked(name: str) -> tuple[int, str]:
    found = [(i + 1, t) for i, t in enumerate(LINES) if t.endswith(f"# ERR: {name}")]
    assert len(found) == 1, name
    return found[0]


def compile_error(fn: object, *args: object, grad: bool = False) -> tl.CompileError:
    with pytest.raises(tl.CompileError) as info:
        (tl.grad(fn) if grad else tl.jit(fn))(*args)  # type: ignore[arg-type]
    return info.value


# (function, marker, text at the reported column, message)
CASES = [
    ("missing_scipy", "scipy_missing", "scipy.special.foo", r"scipy\.special\.foo does not exist"),
    ("missing_linalg", "linalg_missing", "np.linalg.something_unsupported",
     r"numpy\.linalg\.something_unsupported does not exist"),
    ("linalg_without_rule", "matrix_rank", "np.linalg.matrix_rank",
     r"numpy\.linalg\.matrix_rank is not supported by tapeless \(no primitive"),
    ("scipy_ufunc", "betaln", "scipy.special.betaln",
     r"scipy\.special\.betaln is not supported by tapeless \(no primitive"),
    ("scipy_python", "comb", "scipy.special.comb",
     r"scipy\.special\.comb is not supported by tapeless \(a Python function of scipy"),
    ("scipy_linalg_python", "expm", "scipy.linalg.expm",
     r"scipy\.linalg\.expm is not supported by tapeless \(a Python function of scipy"),
    ("stdlib_function", "fmean", "statistics.fmean",
     r"statistics\.fmean is not supported by tapeless \(a Python function of the standard "
     r"library"),
    ("stdlib_copy", "deepcopy", "copy.deepcopy", r"copy\.deepcopy is not supported"),
    ("stdlib_builtin", "reduce", "functools.reduce", r"functools\.reduce is not supported"),
    ("reaches_stdlib_through_helper", "median", "statistics.median",
     r"statistics\.median is not supported"),
    ("passes_stdlib_function", "passed", "statistics.fmean",
     r"statistics\.fmean is not supported"),
    ("grad_inside", "grad_inside", "statistics.fmean", r"statistics\.fmean is not supported"),
]


@pytest.mark.parametrize("grad", [False, True])
@pytest.mark.parametrize(("name", "marker", "anchor", "message"), CASES,
                         ids=[c[0] for c in CASES])
def test_error_is_at_the_users_call_site(name: str, marker: str, anchor: str, message: str,
                                         grad: bool) -> None:
    x = np.array([[1.0, 0.5], [0.25, 2.0]])
    err = compile_error(getattr(lc, name), x, grad=grad)
    line, text = marked(marker)
    assert err.loc is not None, str(err)
    assert (err.loc.filename, err.loc.line, err.loc.col) == (PATH, line, text.index(anchor))
    assert str(err).startswith(f"{PATH}:{line}:{text.index(anchor) + 1}: ")
    assert re.search(message, err.message), err.message
    assert err.hint, "no hint"
    # Nothing in the message points into a library's files.
    assert "site-packages" not in str(err) and "/lib/python3" not in str(err)


def test_library_hint_says_what_to_do() -> None:
    err = compile_error(lc.stdlib_function, 1.0)
    assert "call it outside the compiled function" in err.hint


def test_transforming_a_library_function_names_it() -> None:
    import statistics

    with pytest.raises(tl.CompileError, match=r"^statistics\.fmean is not supported"):
        tl.grad(statistics.fmean)([1.0, 2.0])


def test_error_inside_another_installed_package_is_reported_at_the_call_site(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A package installed in site-packages is compiled like the user's code, but an error
    # inside it names the user's reference first, then where in the package.
    package = tmp_path / "fakepkg_tapeless_test.py"
    package.write_text("def smooth(x):\n    try:\n        return x\n    finally:\n"
                       "        pass\n")
    monkeypatch.setattr(libraries, "_SITE", (str(tmp_path.resolve()),))
    monkeypatch.syspath_prepend(str(tmp_path))
    import fakepkg_tapeless_test as pkg

    user = tmp_path / "user_script_tapeless_test.py"
    user.write_text("import fakepkg_tapeless_test as pkg\n\n\ndef f(x):\n"
                    "    return 2.0 * pkg.smooth(x)\n")
    import user_script_tapeless_test as script

    with pytest.raises(tl.CompileError) as info:
        tl.jit(script.f)(1.0)
    err = info.value
    assert err.loc is not None
    assert (Path(err.loc.filename).name, err.loc.line, err.loc.col) == \
        ("user_script_tapeless_test.py", 5, 17)
    assert err.message.startswith(
        "fakepkg_tapeless_test.smooth cannot be compiled: `try` statements are not supported")
    assert f"(at {package.resolve()}:2:5)" in err.message
    assert pkg.smooth(3.0) == 3.0


def test_public_names() -> None:
    import functools
    import statistics

    import scipy.special

    assert libraries.public_name(scipy.special.comb) == "scipy.special.comb"
    assert libraries.public_name(scipy.special.betaln) == "scipy.special.betaln"
    assert libraries.public_name(np.tanh) == "numpy.tanh"
    assert libraries.public_name(np.testing.assert_allclose) == \
        "numpy.testing.assert_allclose"
    assert libraries.public_name(functools.reduce) == "functools.reduce"
    assert libraries.public_name(statistics.fmean) == "statistics.fmean"
    assert libraries.public_name(len) == "len"


def test_user_code_and_tapeless_are_not_libraries() -> None:
    from tapeless.primitives import rules_numpy

    assert libraries.refused_library(lc.apply) is None
    assert not libraries.installed_package(lc.apply)
    rule = next(v for v in vars(rules_numpy).values()
                if callable(v) and getattr(v, "__module__", "") == rules_numpy.__name__
                and hasattr(v, "__code__"))
    assert libraries.refused_library(rule) is None and not libraries.installed_package(rule)


def test_typing_cast_compiles(optimize: str) -> None:
    assert tl.jit(lc.typed)(1.5) == 3.0
    assert tl.grad(lc.typed)(1.5) == 2.0

"""Errors: every unsupported construct is refused with its file, line and column, a
message and a hint; `tapeless check` lists each problem of a file; run-time errors in
compiled code are CPython's, with a note naming the user's source line.

The programs live in tests/error_programs.py; each offending line there carries a
marker comment `# ERR: <name>`, from which the expected line numbers are computed."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import error_programs as ep
import numpy as np
import pytest

import tapeless as tl
from tapeless.cli import main

PROGRAMS = Path(ep.__file__).resolve()
LINES = PROGRAMS.read_text().splitlines()


def marked(name: str, lines: list[str] = LINES) -> tuple[int, str]:
    """The (1-based) number and text of the line marked `# ERR: name`."""
    found = [(i + 1, text) for i, text in enumerate(lines)
             if re.search(rf"# ERR: {re.escape(name)}$", text)]
    assert len(found) == 1, f"marker {name!r} found {len(found)} times"
    return found[0]


def compile_error(fn: object) -> tl.CompileError:
    with pytest.raises(tl.TapelessError) as info:
        tl.jit(fn).source  # noqa: B018  (compiling is what raises)
    assert isinstance(info.value, tl.CompileError), type(info.value)
    return info.value


# (function, marker, text at the offending column, message pattern)
UNSUPPORTED = [
    ("uses_try", "try", "try", r"`try` statements are not supported"),
    ("uses_with", "with", "with", r"`with` statements are not supported"),
    ("uses_yield", "yield", "yield", r"`yield` is not supported"),
    ("uses_async", "async", "async def", r"async functions are not supported"),
    ("writes_global", "global", "G = x",
     r"assigning to the global variable 'G' is not supported"),
    ("writes_nonlocal", "nonlocal", "y = y",
     r"assigning to the nonlocal variable 'y' is not supported"),
    ("defines_class", "class", "class", r"`class` inside a function is not supported"),
    ("uses_del", "del", "del", r"`del` is not supported"),
    ("imports_inside", "import", "from", r"cannot import inside the compiled function"),
    ("uses_exec", "exec", "exec", r"`exec` is not supported"),
    ("uses_eval", "eval", "eval", r"`eval` is not supported"),
    ("calls_fft", "fft", "np.fft.fft", r"numpy\.fft\.fft is not supported .*no primitive"),
    ("calls_polyfit", "polyfit", "np.polyfit",
     r"numpy\.polyfit is not supported .*no primitive"),
    ("sets_item", "setitem", "a[i]", r"changes the argument 'a' in place"),
    ("appends", "append", "xs.append", r"changes the argument 'xs' in place"),
    ("sets_attribute", "setattr", "box.value",
     r"in-place attribute assignment is not supported"),
    ("set_comprehension", "setcomp", "{x", r"a set comprehension is not supported"),
    ("starred_assignment", "starred", "*rest", r"starred assignment targets"),
    ("bare_raise", "raise", "raise", r"a bare `raise` is not supported"),
    ("closure_reassigned", "capture", "scale",
     r"the nested function reads 'scale', which the enclosing function assigns again "
     r"\(line \d+\)"),
    ("closure_in_loop", "loopcapture", "i]",
     r"the nested function reads 'i', which the enclosing function assigns in a loop"),
    ("used_before_assignment", "unbound", "y + x",
     r"local variable 'y' is used before it is assigned"),
    ("undefined_name", "undefined", "undefined_thing",
     r"name 'undefined_thing' is not defined"),
    ("unknown_method", "method", "x.nonzero", r"the method \.nonzero\(\) is not supported"),
    ("uses_match", "match", "match", r"`match` statements are not supported"),
    ("nested_decorator", "decorator", "staticmethod",
     r"decorators on nested functions are not supported"),
    ("double_star_call", "doublestar", "options)",
     r"`\*\*` here needs a dict whose keys are known when compiling"),
]


@pytest.mark.parametrize(("fn_name", "marker", "anchor", "message"), UNSUPPORTED,
                         ids=[case[1] for case in UNSUPPORTED])
def test_unsupported_construct(fn_name: str, marker: str, anchor: str, message: str) -> None:
    err = compile_error(getattr(ep, fn_name))
    line, text = marked(marker)
    col = text.index(anchor)
    assert err.loc is not None
    assert Path(err.loc.filename).resolve() == PROGRAMS
    assert (err.loc.line, err.loc.col) == (line, col), str(err)
    assert re.search(message, err.message), err.message
    assert err.hint
    # The rendered error: file:line:col (1-based column), the line, a caret under the
    # construct, the hint.
    rendered = str(err).splitlines()
    assert rendered[0] == f"{err.loc.filename}:{line}:{col + 1}: {err.message}"
    assert rendered[1] == "    " + text.strip()
    indent = len(text) - len(text.lstrip())
    assert rendered[2] == "    " + " " * (col - indent) + "^"
    assert rendered[-1] == f"hint: {err.hint}"


def test_error_names_the_c_function() -> None:
    assert "numpy.fft.fft" in str(compile_error(ep.calls_fft))
    assert "numpy.polyfit" in str(compile_error(ep.calls_polyfit))


def test_a_compile_error_is_raised_again_on_the_next_call() -> None:
    f = tl.jit(ep.uses_try)
    for _ in range(2):
        with pytest.raises(tl.CompileError, match="`try`"):
            f(1.0)


# --- tapeless check ---------------------------------------------------------------------

SEVERAL_PROBLEMS = '''
import numpy as np


def several(x, xs):
    try:  # ERR: try
        y = x
    except ValueError:
        y = 0.0
    xs.append(y)  # ERR: append
    del x  # ERR: del
    return np.polyfit(xs, xs, 1)  # ERR: polyfit


def captures(x):
    s = 1.0

    def f(v):
        return v * s  # ERR: capture

    s = 2.0
    return f(x)


def mutates(a, v):
    a[0] = v  # ERR: setitem
    return {k for k in a}  # ERR: setcomp


def fine(x):
    return np.tanh(x) * 2.0
'''
# marker: (text at the reported column, message pattern)
EXPECTED_FINDINGS = {
    "try": ("try", r"`try` statements are not supported"),
    "append": ("xs.append", r"\.append\(\) mutates"),
    "del": ("del", r"`del` is not supported"),
    "polyfit": ("np.polyfit", r"numpy\.polyfit is not supported"),
    "capture": ("s  #", r"reads 's', which the enclosing function assigns again"),
    "setitem": ("a[0]", r"in-place item assignment"),
    "setcomp": ("{k", r"a set comprehension is not supported"),
}


def test_check_reports_every_problem(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    path = tmp_path / "several.py"
    path.write_text(SEVERAL_PROBLEMS)
    assert main(["check", str(path)]) == 1
    out = capsys.readouterr().out
    filename = str(path.resolve())
    lines = SEVERAL_PROBLEMS.splitlines()
    findings = [block for block in out.strip().split("\n\n") if block.startswith(filename)]
    assert len(findings) == len(EXPECTED_FINDINGS), out
    assert out.strip().splitlines()[-1] == f"{len(EXPECTED_FINDINGS)} findings in {path}"
    for marker, (anchor, message) in EXPECTED_FINDINGS.items():
        line, text = marked(marker, lines)
        col = text.index(anchor)
        head = f"{filename}:{line}:{col + 1}: "
        matching = [f for f in findings if f.startswith(head)]
        assert len(matching) == 1, f"{marker}: no finding at {head}\n{out}"
        first, *rest = matching[0].splitlines()
        assert re.search(message, first), first
        assert rest[0].strip() == text.strip()  # the source line, then the caret
        assert rest[1].strip() == "^"
        assert rest[-1].startswith("hint: ") and len(rest[-1]) > len("hint: ")


def test_check_clean_file(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    path = tmp_path / "clean.py"
    path.write_text(textwrap.dedent('''
        import math

        import numpy as np


        def model(w, x):
            h = x
            for _ in range(3):
                h = np.tanh(h @ w)
            return np.sum(h ** 2)


        def scalar(x, n):
            total = 0.0
            k = 0
            while k < n:
                total = total + math.sin(x * k)
                k += 1
            return total if total > 0 else -total
        '''))
    assert main(["check", str(path)]) == 0
    assert capsys.readouterr().out.strip() == f"0 findings in {path}"


# --- run-time errors ----------------------------------------------------------------------


def run_both(fn: object, *args: object) -> BaseException:
    """Call `fn` with CPython and compiled; both must raise the same exception type.
    Returns tapeless's exception."""
    with pytest.raises(Exception) as expected:  # noqa: PT011
        fn(*args)  # type: ignore[operator]
    with pytest.raises(Exception) as got:  # noqa: PT011
        tl.jit(fn)(*args)
    assert type(got.value) is type(expected.value)
    assert not isinstance(got.value, tl.TapelessError)
    return got.value


def note_lines(exc: BaseException) -> list[str]:
    notes = getattr(exc, "__notes__", [])
    assert notes, "no note on the exception"
    return "\n".join(notes).splitlines()


def assert_note_names(exc: BaseException, marker: str) -> None:
    line, text = marked(marker)
    wanted = re.compile(rf"in {re.escape(str(PROGRAMS))}:{line}:\d+: {re.escape(text.strip())}")
    assert any(wanted.search(n) for n in note_lines(exc)), note_lines(exc)


def test_runtime_shape_mismatch_names_the_source_line() -> None:
    exc = run_both(ep.matmul, np.ones((2, 3)), np.ones((2, 3)))
    assert isinstance(exc, ValueError)
    assert note_lines(exc)[0].startswith("tapeless: raised by compiled code")
    assert_note_names(exc, "matmul")


def test_runtime_zero_division_names_the_source_line() -> None:
    exc = run_both(ep.divides, 1.0, 2)
    assert isinstance(exc, ZeroDivisionError)
    assert_note_names(exc, "zerodiv")


def test_runtime_error_in_a_called_function() -> None:
    exc = run_both(ep.calls_divides, 1.0, 1)
    assert isinstance(exc, ZeroDivisionError)
    assert_note_names(exc, "zerodiv")


@pytest.mark.parametrize("order", [1, 2])
def test_runtime_error_in_derivative_code_names_the_user_line(order: int) -> None:
    # The rule of np.tanh is copied into the derivative code; an error there is noted
    # at the user's line, not at the rule's line in tapeless's own files.
    fn = tl.grad(ep.tanh_matmul, argnums=(0, 1)) if order == 1 else \
        tl.grad(ep.grad_of_tanh_matmul)
    with pytest.raises(TypeError) as info:
        fn(1.0, 2.0)
    assert_note_names(info.value, "tanh_matmul")
    assert not any("tapeless/primitives" in n for n in note_lines(info.value)), \
        note_lines(info.value)


def test_runtime_error_is_noted_once() -> None:
    f = tl.jit(ep.divides)
    for _ in range(2):
        with pytest.raises(ZeroDivisionError) as info:
            f(1.0, 0)
        assert len(info.value.__notes__) == 1

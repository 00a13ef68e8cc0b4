"""`tapeless check FILE.py` on real training scripts: it checks the functions that are
compiled (given to a transform in the file, named with `--entry`, and what they reach),
reports each problem at `file:line:col`, and leaves the driver code alone.

The scripts are in tests/fixtures/check/; a line marked `# ERR: key` must be reported
there, and no other line may be."""

from __future__ import annotations

import importlib.util
import re
import textwrap
from pathlib import Path

import numpy as np
import pytest

from tapeless.cli import main
from tapeless.frontend.check import check_file

FIXTURES = Path(__file__).parent / "fixtures" / "check"


def run_check(path: Path, capsys: pytest.CaptureFixture, *entries: str) -> tuple[int, str]:
    argv = ["check", str(path)]
    for e in entries:
        argv += ["--entry", e]
    code = main(argv)
    return code, capsys.readouterr().out


def reported_lines(out: str, path: Path) -> dict[int, str]:
    """line -> message of each finding printed for `path`."""
    found: dict[int, str] = {}
    for m in re.finditer(rf"^{re.escape(str(path.resolve()))}:(\d+):(\d+): (.*)$", out,
                         re.MULTILINE):
        assert int(m.group(2)) >= 1  # (columns are 1-based)
        found[int(m.group(1))] = m.group(3)
    return found


def marked_lines(path: Path, *keys: str) -> dict[int, str]:
    """line -> key of the lines marked `# ERR: key` (those keys only, if given)."""
    marks = {}
    for i, text in enumerate(path.read_text().splitlines(), 1):
        m = re.search(r"# ERR: (\w+)$", text)
        if m and (not keys or m.group(1) in keys):
            marks[i] = m.group(1)
    return marks


def load(path: Path) -> object:
    spec = importlib.util.spec_from_file_location(f"fixture_{path.stem}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# --- realistic scripts --------------------------------------------------------------------


def test_mlp_trained_with_adam_passes(capsys: pytest.CaptureFixture) -> None:
    path = FIXTURES / "mlp_adam.py"
    code, out = run_check(path, capsys)
    assert code == 0, out
    assert out.strip() == f"0 findings in {path}"


def test_the_mlp_script_is_a_working_training_script(optimize: str,
                                                     capsys: pytest.CaptureFixture) -> None:
    history = load(FIXTURES / "mlp_adam.py").main(["--steps", "60"])  # type: ignore[attr-defined]
    losses = [v for _, v in history]
    assert len(losses) == 60 and losses[-1] < 0.5 * losses[0]
    assert "done in" in capsys.readouterr().out


def test_errors_in_compiled_functions_are_reported_at_their_lines(
        capsys: pytest.CaptureFixture) -> None:
    path = FIXTURES / "compiled_errors.py"
    code, out = run_check(path, capsys)
    assert code == 1
    found = reported_lines(out, path)
    assert set(found) == set(marked_lines(path)), out
    by_key = {key: found[line] for line, key in marked_lines(path).items()}
    assert by_key["fft"].startswith("numpy.fft.fft is not supported")
    assert by_key["median"].startswith("statistics.median is not supported")
    assert by_key["try"] == "`try` statements are not supported"
    assert out.strip().splitlines()[-1] == f"3 findings in {path}"


def test_errors_only_in_driver_code_pass(capsys: pytest.CaptureFixture) -> None:
    path = FIXTURES / "driver_errors.py"
    code, out = run_check(path, capsys)
    assert code == 0, out


def test_driver_code_named_as_an_entry_is_checked(capsys: pytest.CaptureFixture) -> None:
    # The same driver, declared compiled, is full of problems: the pass above is not
    # because nothing is checked.
    path = FIXTURES / "driver_errors.py"
    code, out = run_check(path, capsys, "main", "History.save")
    assert code == 1
    messages = list(reported_lines(out, path).values())
    assert any("`try` statements" in m for m in messages), out
    assert any("`with` statements" in m for m in messages), out
    assert any("`del` is not supported" in m for m in messages), out


def test_the_driver_script_runs() -> None:
    best = load(FIXTURES / "driver_errors.py").main(["--save", "/nonexistent/x.csv"])  # type: ignore[attr-defined]
    assert 0.0 < best < np.log(2.0)


def test_grad_inside_compiled_code_is_followed(capsys: pytest.CaptureFixture) -> None:
    # maml.py's only mistake is in `penalty`, reached from the compiled meta-loss through
    # `tl.grad(inner_loss)` called inside `adapt`.
    path = FIXTURES / "maml.py"
    code, out = run_check(path, capsys)
    assert code == 1
    assert set(reported_lines(out, path)) == set(marked_lines(path)), out


def test_methods_of_a_model_object(capsys: pytest.CaptureFixture) -> None:
    # `Net.__call__` runs when the compiled loss calls the model passed in; it calls
    # `self.hidden`, which is checked; `save` and `summary` are driver code.
    path = FIXTURES / "model_object.py"
    code, out = run_check(path, capsys)
    assert code == 1
    assert set(reported_lines(out, path)) == set(marked_lines(path, "method")), out


def test_entry_adds_a_function(capsys: pytest.CaptureFixture) -> None:
    path = FIXTURES / "model_object.py"
    code, out = run_check(path, capsys, "evaluate")
    assert code == 1
    assert set(reported_lines(out, path)) == set(marked_lines(path)), out
    code, out = run_check(path, capsys, "Net.save")
    assert any("`with` statements" in m for m in reported_lines(out, path).values()), out


def test_unknown_entry_is_an_error(capsys: pytest.CaptureFixture) -> None:
    assert main(["check", str(FIXTURES / "mlp_adam.py"), "--entry", "nosuch"]) == 2
    assert "--entry nosuch: no function of that name" in capsys.readouterr().err


# --- how compiled functions are found -----------------------------------------------------

HEADER = "import functools\n\nimport numpy as np\n\n"


def check_source(tmp_path: Path, source: str, *entries: str) -> set[int]:
    """The lines reported in `source` (after HEADER), checked as a file."""
    path = tmp_path / "script.py"
    path.write_text(HEADER + textwrap.dedent(source))
    offset = HEADER.count("\n")
    return {f.loc.line - offset for f in check_file(str(path), list(entries))}


BAD = "    try:\n        pass\n    finally:\n        pass\n"  # (a `try` at its first line)


@pytest.mark.parametrize(("source", "expected"), [
    # `import tapeless as ANY`, `import tapeless`, `from tapeless import grad [as g]`
    ("import tapeless as tapir\n\ndef f(x):\n" + BAD + "    return x\n\n"
     "g = tapir.value_and_grad(f)\n", {4}),
    ("import tapeless\n\ndef f(x):\n" + BAD + "    return x\n\n"
     "def main():\n    return tapeless.vjp(f, 1.0)\n", {4}),
    ("from tapeless import grad as gradient\n\ndef f(x):\n" + BAD + "    return x\n\n"
     "def main():\n    gradient(f)(1.0)\n", {4}),
    # decorators, with and without arguments
    ("import tapeless as tl\n\n@tl.jit\ndef f(x):\n" + BAD + "    return x\n", {5}),
    ("import tapeless as tl\n\n@functools.partial(tl.grad, argnums=1)\ndef f(x, y):\n"
     + BAD + "    return x\n", {5}),
    # a lambda reaching a helper; a partial of the loss
    ("import tapeless as tl\n\ndef helper(x):\n" + BAD + "    return x\n\n"
     "def main():\n    tl.grad(lambda w: helper(w) * 2.0)(1.0)\n", {4}),
    ("import tapeless as tl\n\ndef helper(x, c):\n" + BAD + "    return x\n\n"
     "def main():\n    tl.grad(functools.partial(helper, c=2.0))(1.0)\n", {4}),
    # a function defined inside main and given to a transform there
    ("import tapeless as tl\n\ndef main():\n    def f(x):\n" + textwrap.indent(BAD, "    ")
     + "        return x\n    return tl.grad(f)(1.0)\n", {5}),
    # a function passed as an argument to a transformed function, at the call site
    ("import tapeless as tl\n\ndef act(x):\n" + BAD + "    return x\n\n"
     "def f(x, a):\n    return a(x)\n\ndef main():\n    step = tl.jit(f)\n"
     "    step(1.0, act)\n", {4}),
    # nested transforms
    ("import tapeless as tl\n\ndef f(x):\n" + BAD + "    return x\n\n"
     "h = tl.jit(tl.grad(tl.grad(f)))\n", {4}),
    # an instance of the file's class passed to a transformed function: its __call__
    ("import tapeless as tl\n\nclass M:\n    def __call__(self, x):\n"
     + textwrap.indent(BAD, "    ") + "        return x\n\n    def save(self):\n"
     + textwrap.indent(BAD, "    ") + "        return 0\n\n"
     "def loss(m, x):\n    return m(x)\n\ndef main():\n    m = M()\n"
     "    tl.value_and_grad(loss, argnums=1)(m, 1.0)\n", {5}),
    # a function of the file that compiled code does not reach is not checked
    ("import tapeless as tl\n\ndef unused(x):\n" + BAD + "    return x\n\n"
     "def f(x):\n    return x\n\ng = tl.grad(f)\n", set()),
])
def test_compiled_functions_are_found(tmp_path: Path, source: str, expected: set[int]) -> None:
    assert check_source(tmp_path, source) == expected


def test_a_module_without_transforms_is_checked_whole(tmp_path: Path) -> None:
    # (A module of functions compiled elsewhere: every top-level function.)
    source = "def f(x):\n" + BAD + "    return x\n\ndef g(x):\n" + BAD + "    return x\n"
    assert check_source(tmp_path, source) == {2, 9}


def test_clean_check_means_it_compiles(tmp_path: Path) -> None:
    # What check passes, the compiler compiles: run the transforms the file makes.
    module = load(FIXTURES / "driver_errors.py")
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(5, 2)), np.sign(rng.normal(size=5))
    w = np.array([0.3, -0.2])
    import tapeless as tl

    g = tl.grad(module.logistic_loss)(w, x, y)  # type: ignore[attr-defined]
    eps = 1e-6
    fd = [(module.logistic_loss(w + eps * e, x, y)  # type: ignore[attr-defined]
           - module.logistic_loss(w - eps * e, x, y)) / (2 * eps)  # type: ignore[attr-defined]
          for e in np.eye(2)]
    np.testing.assert_allclose(g, fd, rtol=1e-6)


def test_a_file_compiling_none_of_its_functions_is_checked_whole(
        capsys: pytest.CaptureFixture) -> None:
    # library_calls.py's one transform call differentiates a library function: its own
    # functions are compiled elsewhere (by tests/test_library_errors.py), so all are
    # checked, each error once, at the user's line.
    path = FIXTURES.parent / "library_calls.py"
    code, out = run_check(path, capsys)
    assert code == 1
    assert set(reported_lines(out, path)) == set(marked_lines(path)), out
    assert out.strip().splitlines()[-1] == f"{len(marked_lines(path))} findings in {path}"


def test_a_syntax_error_is_one_located_finding(tmp_path: Path,
                                               capsys: pytest.CaptureFixture) -> None:
    path = tmp_path / "broken.py"
    path.write_text("import tapeless as tl\n\n\ndef f(x:\n    return x\n")
    code, out = run_check(path, capsys)
    assert code == 1
    assert out.startswith(f"{path.resolve()}:4:6: syntax error: ")


def test_a_file_that_does_not_import_gets_the_static_checks_and_a_note(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    path = tmp_path / "needs_data.py"
    path.write_text("import tapeless as tl\n\nDATA = open('/nonexistent/data.csv').read()\n\n\n"
                    "def f(x):\n    del x\n    return 1.0\n\n\ng = tl.grad(f)\n")
    assert main(["check", str(path)]) == 1
    # (several files at once: one line of counts each, non-zero if any has a finding)
    assert main(["check", str(FIXTURES / "mlp_adam.py"), str(path)]) == 1
    captured = capsys.readouterr()
    assert reported_lines(captured.out, path) == {7: "`del` is not supported"}
    assert "does not import (FileNotFoundError" in captured.err


def test_a_function_imported_from_a_sibling_module(tmp_path: Path,
                                                   capsys: pytest.CaptureFixture) -> None:
    # `from model import loss; tl.grad(loss)`: the sibling module is found as `python
    # train.py` finds it, and the imported loss is compiled (its error is in its file).
    (tmp_path / "sibling_model_for_check.py").write_text(
        "import numpy as np\n\n\ndef loss(w):\n    s = {1}\n    return np.sum(w) * len(s)\n")
    script = tmp_path / "train.py"
    script.write_text("import tapeless as tl\nfrom sibling_model_for_check import loss\n\n\n"
                      "def main():\n    with open('log.txt') as f:\n        f.write('x')\n"
                      "    return tl.grad(loss)\n")
    code, out = run_check(script, capsys)
    assert code == 1
    assert reported_lines(out, tmp_path / "sibling_model_for_check.py") == \
        {5: "a set display is not supported"}
    assert reported_lines(out, script) == {}

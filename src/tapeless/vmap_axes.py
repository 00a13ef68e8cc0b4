"""The axis `tl.vmap` maps each parameter of the function over, for one call: JAX's rules,
shared by the vmap object called from Python (`tapeless.vmap_api.Vmapped`) and by
`tl.vmap(f)` called inside compiled code (the front end's stand-ins).

An int or None `in_axes` applies to every positional argument the call passes; a tuple
(or list) gives one entry per positional argument passed, no more and no fewer; an
argument passed by keyword is mapped over its axis 0; a parameter the call does not pass
takes its default, the same for every element. `*args` gets the tuple of the axes of the
positional arguments it packs; `**kwargs`, axis 0 where the call passes keywords into
it."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Collection, Sequence
from typing import Any

# A parameter as the rules read it: its name, its kind ("pos", "vararg", "kwonly",
# "varkw": `frontend.scopes.ParamSpec`'s) and whether it has a default.
Param = tuple[str, str, bool]

_KINDS = {inspect.Parameter.POSITIONAL_ONLY: "pos",
          inspect.Parameter.POSITIONAL_OR_KEYWORD: "pos",
          inspect.Parameter.VAR_POSITIONAL: "vararg",
          inspect.Parameter.KEYWORD_ONLY: "kwonly",
          inspect.Parameter.VAR_KEYWORD: "varkw"}


class AxesMismatch(Exception):
    """A tuple `in_axes` whose length is not the number of positional arguments a call
    passes (the caller raises it as a located `VmapError`)."""


def params_of(fn: Callable[..., Any]) -> list[Param]:
    """The parameters of a Python function, as the rules read them."""
    return [(p.name, _KINDS[p.kind], p.default is not inspect.Parameter.empty)
            for p in inspect.signature(fn).parameters.values()]


def is_sequence(in_axes: Any) -> bool:
    """Whether `in_axes` gives one entry per positional argument (a tuple or list)."""
    return isinstance(in_axes, (tuple, list))


def generic_call(params: Sequence[Param], in_axes: Any) -> tuple[int, tuple[str, ...]]:
    """The call a batched function is built for where no call is known (a `tl.jit`,
    `tl.grad` or `tl.vmap` of it, a vmap object passed as a value in compiled code): as
    many positional arguments as a tuple `in_axes` has entries, else the parameters
    without a default; the keyword-only parameters without a default by keyword."""
    npos = len(in_axes) if is_sequence(in_axes) else \
        sum(1 for _, k, d in params if k == "pos" and not d)
    return npos, tuple(name for name, k, d in params if k == "kwonly" and not d)


def call_axes(params: Sequence[Param], in_axes: Any, npos: int, keywords: Collection[str],
              name: str) -> list[Any]:
    """One axis per parameter for a call passing `npos` positional arguments and the
    keyword arguments `keywords` (as calls bind them: `*args` one tuple, `**kwargs` one
    dict). Raises `AxesMismatch` where a tuple `in_axes` does not have one entry per
    positional argument passed."""
    if is_sequence(in_axes) and len(in_axes) != npos:
        raise AxesMismatch(
            f"vmap of {name}: in_axes has {len(in_axes)} entries, but the call passes "
            f"{npos} positional argument{'s' if npos != 1 else ''}; give one entry per "
            "positional argument passed (None for one passed whole to every element), or "
            "an int for all of them (an argument passed by keyword is mapped over its "
            "axis 0; a parameter not passed takes its default, the same for every "
            "element)")
    positional = list(in_axes) if is_sequence(in_axes) else [in_axes] * npos
    named = {p for p, k, _ in params if k in ("pos", "kwonly")}
    axes: list[Any] = []
    taken = 0
    for p, kind, _ in params:
        if kind == "pos":
            axes.append(positional[taken] if taken < npos else 0 if p in keywords else None)
            taken += taken < npos
        elif kind == "vararg":
            rest = positional[taken:]
            taken = npos
            axes.append(None if not rest else in_axes if not is_sequence(in_axes)
                        else tuple(rest))
        elif kind == "kwonly":
            axes.append(0 if p in keywords else None)
        else:  # (`**kwargs`: the keywords no parameter names)
            axes.append(0 if any(k not in named for k in keywords) else None)
    return axes


def generic_axes(params: Sequence[Param], in_axes: Any, name: str) -> list[Any]:
    """`call_axes` for the call `generic_call` describes. Raises `AxesMismatch` where a
    tuple `in_axes` has more entries than the function has parameters (and no
    `*args`)."""
    if is_sequence(in_axes) and len(in_axes) > len(params) and \
            all(k != "vararg" for _, k, _ in params):
        raise AxesMismatch(f"vmap of {name}: in_axes has {len(in_axes)} entries for a "
                           f"function of {len(params)} parameters; give one entry per "
                           "positional argument passed")
    npos, keywords = generic_call(params, in_axes)
    return call_axes(params, in_axes, npos, keywords, name)

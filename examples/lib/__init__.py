"""A small library the examples share: models, costs, optimizers, a training loop and
datasets, in the spirit of Pylearn2 but without its framework.

Why `examples/lib` and not `tapeless.nn`: tapeless is a compiler, and its public API is
the language it compiles and the transforms over it (DESIGN.md). This library is *user
code* that tapeless compiles -- frozen dataclasses with `__call__`, plain functions,
optimizers written with `tl.tree_map` -- and it is meant to be read, copied and edited
by a researcher, not imported as a stable API. Keeping it next to the examples:

- keeps the package's dependencies to NumPy (the library uses tqdm and scikit-learn,
  which live in the `examples` extra);
- makes every line of it a test of the compiler on code written as a researcher
  writes it (`tapeless check` and tests/test_examples.py run over it), rather than code
  shaped to suit the compiler;
- makes no promise of stability that a model zoo inside the package would.

A new model is a frozen dataclass whose fields are its parameters and whose `__call__`
computes its output; a new cost is a function of (model, *batch) returning a number.
Neither subclasses anything: `train.fit` and the optimizers only need the parameters to
be a pytree (numbers, arrays, tuples, lists, dicts, dataclasses of them)."""

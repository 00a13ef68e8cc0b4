"""The meta-gradient step of examples/maml.py under tapeless and under JAX (when JAX is
installed): the same padded episodes, the same network, float64, second-order MAML and
first-order MAML; checks that the two meta-gradients agree, then times each.

    python bench/bench_maml.py [--repeats 50]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

if os.environ.get("OPENBLAS_NUM_THREADS") != "1":  # (must be set before NumPy loads)
    os.environ.update(OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
    os.execv(sys.executable, [sys.executable, *sys.argv])

import numpy as np  # noqa: E402

import tapeless as tl  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "examples"))
import maml  # noqa: E402

from lib import data  # noqa: E402


def jax_meta_gradient(first_order: bool) -> Any:
    import jax
    import jax.numpy as jnp
    from jax.scipy.special import logsumexp

    jax.config.update("jax_enable_x64", True)

    def forward(params: Any, x: Any) -> Any:
        h = x
        for w, b in params["features"]:
            h = jnp.tanh(h @ w + b)
        w, b = params["head"]
        return h @ w + b

    def cost(params: Any, x: Any, targets: Any, weights: Any, mask: Any) -> Any:
        logits = jnp.where(mask > 0, forward(params, x), -1e9)
        logp = logits - logsumexp(logits, axis=-1, keepdims=True)
        return jnp.sum(weights * -jnp.sum(targets * logp, axis=-1))

    def task_loss(params: Any, ep: Any, steps: int, lr: float) -> Any:
        for _ in range(steps):
            g = jax.grad(cost)(params, ep[0], ep[1], ep[2], ep[6])
            if first_order:
                g = jax.tree_util.tree_map(jax.lax.stop_gradient, g)
            params = jax.tree_util.tree_map(lambda p, d: p - lr * d, params, g)
        return cost(params, ep[3], ep[4], ep[5], ep[6])

    def meta_loss(params: Any, episodes: Any, steps: int, lr: float) -> Any:
        return sum(task_loss(params, ep, steps, lr) for ep in episodes) / len(episodes)

    return jax.jit(jax.value_and_grad(meta_loss), static_argnums=(2, 3))


def as_dict(model: Any) -> Any:
    return {"features": [(layer.W, layer.b) for layer in model.features],
            "head": (model.head.W, model.head.b)}


def timed(fn: Any, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--meta-batch", type=int, default=4)
    parser.add_argument("--inner-steps", type=int, default=3)
    parser.add_argument("--hidden", type=int, default=64)
    args = parser.parse_args()

    x, y = data.digits()
    rng = np.random.default_rng(0)
    episodes = [maml.sample_episode(rng, x, y, maml.META_TRAIN_CLASSES, 5, 5, 5)
                for _ in range(args.meta_batch)]
    model = maml.classifier(rng, [64, args.hidden, args.hidden], 5)
    model = maml.Classifier(model.features, maml.models.Dense(
        rng.normal(0, 0.1, size=model.head.W.shape), model.head.b))
    lr = 0.5
    print(f"meta-batch {args.meta_batch}, {args.inner_steps} inner steps, "
          f"64-{args.hidden}-{args.hidden}-5 tanh network, float64, one thread")
    try:
        import jax  # noqa: F401
        have_jax = True
    except ImportError:
        have_jax = False
        print("(JAX is not installed: tapeless only)")
    for first_order in (False, True):
        name = "first-order MAML" if first_order else "MAML (second order)"
        ours = tl.value_and_grad(maml.meta_loss)
        value, grads = ours(model, episodes, args.inner_steps, lr, first_order, False)
        t_ours = timed(lambda: ours(model, episodes, args.inner_steps, lr, first_order,
                                    False), args.repeats)
        line = f"{name:>20}: tapeless {1e3 * t_ours:7.2f} ms"
        if have_jax:
            theirs = jax_meta_gradient(first_order)
            eps = [tuple(ep) for ep in episodes]
            params = as_dict(model)
            value_j, grads_j = theirs(params, eps, args.inner_steps, lr)
            ours_leaves = tl.tree_leaves(as_dict(grads))
            theirs_leaves = [np.asarray(g) for g in tl.tree_leaves(
                {"features": [tuple(p) for p in grads_j["features"]],
                 "head": tuple(grads_j["head"])})]
            err = max(float(np.max(np.abs(a - b))) for a, b in
                      zip(ours_leaves, theirs_leaves, strict=True))
            assert np.isclose(value, float(value_j)), (value, value_j)
            assert err < 1e-8, f"meta-gradients differ by {err}"
            t_jax = timed(lambda: theirs(params, eps, args.inner_steps, lr)[1]["head"][0]
                          .block_until_ready(), args.repeats)
            line += f"   JAX (jit) {1e3 * t_jax:7.2f} ms   (gradients agree to {err:.1e})"
        print(line)


if __name__ == "__main__":
    main()

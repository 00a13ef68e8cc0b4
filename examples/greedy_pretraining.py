"""Greedy layer-wise training of a deep network (Bengio, Lamblin, Popovici and Larochelle,
"Greedy Layer-Wise Training of Deep Networks", NIPS 2006), on scikit-learn's digits.

Each hidden layer is first trained alone as a denoising autoencoder (Vincent et al. 2008)
of the layer below's codes -- the masking noise is drawn inside the compiled cost -- and
the stack is then fine-tuned with a softmax layer on the labels. Pretraining sees the
labelled and unlabelled training images, never the test third. The same network from
random initialization gets the same supervised budget (and, outside --quick, also as many
supervised steps as the pretrained network took in all). Prints a table of test errors
over several seeds and saves the learning curves.

    python examples/greedy_pretraining.py [--quick]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import tapeless as tl
from lib import costs, data, models, optim, plots, train


def denoising_cost(autoencoder, x, rng, noise):
    """Reconstruct x from a copy with a fraction `noise` of its inputs set to zero."""
    keep = rng.random(x.shape) >= noise
    return costs.reconstruction(autoencoder(x * keep), x)


def classification_cost(model, x, y):
    return costs.cross_entropy(model(x), y)


def pretrain(rng, x, sizes, steps, noise, quiet):
    """Train one denoising autoencoder per hidden layer, each on the codes of the ones
    below; returns their encoders."""
    encoders, h = [], x
    for n_in, n_out in zip(sizes[:-1], sizes[1:], strict=True):
        ae = models.autoencoder(rng, n_in, n_out)
        ae, _ = train.fit(tl.value_and_grad(denoising_cost), ae, optim.Momentum(0.05, 0.9),
                          (h, rng, noise), steps, 32, rng, desc=f"pretrain {n_in}->{n_out}",
                          quiet=quiet)
        encoders.append(ae.encoder)
        h = ae.code(h)
    return encoders


def finetune(rng, model, x, y, steps, lr, quiet, desc):
    return train.fit(tl.value_and_grad(classification_cost), model, optim.Momentum(lr, 0.9),
                     (x, y), steps, 32, rng, desc=desc, quiet=quiet, log_every=5)


def run_seed(seed, args, x, y):
    rng = np.random.default_rng(seed)
    # Labelled training images, unlabelled ones, and the test images (a third), which
    # pretraining never sees.
    n_test = len(x) // 3
    train_idx, unlabeled_idx, test_idx = data.split(rng, len(x), args.labeled,
                                                    len(x) - n_test - args.labeled, -1)
    sizes = [x.shape[1]] + [args.hidden] * args.depth
    top = models.dense(rng, args.hidden, 10)

    encoders = pretrain(rng, x[np.concatenate([train_idx, unlabeled_idx])], sizes,
                        args.pretrain_steps, args.noise, args.quiet)
    pretrained = models.SigmoidMLP(tuple(encoders) + (top,))
    random_init = models.SigmoidMLP(tuple(models.dense(rng, a, b) for a, b in
                                          zip(sizes[:-1], sizes[1:], strict=True)) + (top,))
    runs = [("pretrained", pretrained, args.finetune_steps),
            ("random init", random_init, args.finetune_steps)]
    if not args.quick:  # and with as many supervised steps as the pretrained net took in all
        runs.append(("random init, all steps", random_init,
                     args.finetune_steps + args.depth * args.pretrain_steps))
    results = {}
    for name, model, steps in runs:
        fitted, history = finetune(np.random.default_rng(seed + 1000), model, x[train_idx],
                                   y[train_idx], steps, args.lr, args.quiet,
                                   f"finetune ({name})")
        error = 1.0 - costs.accuracy(fitted(x[test_idx]), y[test_idx])
        results[name] = (error, history)
    return results


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a few seconds, for CI")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--depth", type=int, default=3, help="hidden layers")
    parser.add_argument("--hidden", type=int, default=100)
    parser.add_argument("--labeled", type=int, default=300, help="labelled training images")
    parser.add_argument("--pretrain-steps", type=int, default=1500, help="per layer")
    parser.add_argument("--finetune-steps", type=int, default=600)
    parser.add_argument("--noise", type=float, default=0.25)
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--quiet", action="store_true")
    parser.add_argument("--results", default=None, help="folder for the PNG")
    args = parser.parse_args(argv)
    if args.quick:
        args.seeds, args.pretrain_steps, args.finetune_steps = 2, 300, 300
        args.quiet = True

    start = time.perf_counter()
    x, y = data.digits()
    errors, curves = {}, {}
    for seed in range(args.seeds):
        for name, (error, history) in run_seed(seed, args, x, y).items():
            errors.setdefault(name, []).append(error)
            curves.setdefault(name, []).append(history)

    print(f"test error, {args.depth} sigmoid layers of {args.hidden}, {args.labeled} labels, "
          f"{args.finetune_steps} fine-tuning steps, {args.seeds} seeds")
    print(f"{'seed':>22} " + " ".join(f"{seed:>6}" for seed in range(args.seeds))
          + "    mean +- 95%")
    for name, errs in errors.items():
        mean, half = plots.confidence95(errs)
        print(f"{name:>22} " + " ".join(f"{e:6.3f}" for e in errs)
              + f"   {mean:.3f} +- {half:.3f}")

    fig, ax = plots.figure(figsize=(6, 4))
    for name, color in (("pretrained", "C0"), ("random init", "C1"),
                        ("random init, all steps", "C2")):
        if name not in curves:
            continue
        for i, history in enumerate(curves[name]):
            ax.plot(history.steps, history.values, color=color, alpha=0.6,
                    label=name if i == 0 else None)
    ax.set_xlabel("fine-tuning step")
    ax.set_ylabel("training cross-entropy (minibatch)")
    ax.set_yscale("log")
    ax.legend()
    ax.set_title("Greedy layer-wise pretraining vs random init")
    path = plots.save(fig, "greedy_pretraining.png", args.results and plots.Path(args.results))
    print(f"saved {path}; done in {time.perf_counter() - start:.1f} s")
    return {name: float(np.mean(errs)) for name, errs in errors.items()}


if __name__ == "__main__":
    main()

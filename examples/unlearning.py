"""Unlearning by gradient ascent, on a small character-level language model.

A model of the next character given the previous `context` characters (an MLP over the
embedded window, Bengio et al. 2003; `--model lstm` reads the window with an LSTM
instead, several times slower) is trained on the source of a few standard-library
modules plus the Zen of Python. Two forget sets, both trained on: a stretch of that
source (in distribution) and the Zen (out of distribution: English, not code). Each is
then unlearned by gradient ascent on its loss, and by the gradient-difference variant
(ascent on the forget set, descent on the rest of the training text). Reports

- the forget and retain losses per step (saved as curves);
- unlearning quality: how far the forget set's loss has moved from its value before
  unlearning towards the loss of never-seen text of the same kind (1 = as if never
  seen), plotted against the retained performance;
- the number of steps each forget set needs to reach quality 1;
- how memorization (an example's loss before unlearning) predicts how much its loss rises.

    python examples/unlearning.py [--quick]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import tapeless as tl
from lib import costs, data, models, optim, plots, train


def nll(model, windows, targets):
    return costs.cross_entropy(model(windows), targets)


def nll_each(model, windows, targets):
    return costs.cross_entropy_each(model(windows), targets)


def ascent(model, windows, targets):
    """Gradient ascent on the forget set: minimize its negative log-likelihood's negative."""
    return -nll(model, windows, targets)


def gradient_difference(model, windows, targets, retain_windows, retain_targets):
    """Ascent on the forget set and descent on the retain set, in one cost."""
    return nll(model, retain_windows, retain_targets) - nll(model, windows, targets)


loss_of = tl.jit(nll)
losses_of = tl.jit(nll_each)


def corpus(vocab, context, held_out_chars):
    """(training windows, forget sets, never-seen reference sets), all as (windows, next)."""
    code = data.module_source("textwrap", "string", "heapq")
    zen = data.zen_of_python()
    # The in-distribution forget set: a stretch of code inside the training text.
    start = len(code) // 2
    forget_code = code[start:start + len(zen)]
    training = code + "\n" + zen
    never_seen_code = data.module_source("bisect", "fnmatch")[:held_out_chars]
    import pydoc_data.topics

    never_seen_prose = pydoc_data.topics.topics["booleans"][:held_out_chars]

    def encode(text):
        return data.windows(vocab.encode(text), context)

    train_windows, train_targets = encode(training)
    # The retain set: training windows outside both forget sets.
    keep = np.ones(len(train_targets), dtype=bool)
    keep[start - context:start + len(forget_code)] = False
    keep[len(code) + 1 - context:] = False
    forget = {"code (in distribution)": encode(forget_code), "Zen (out of distribution)":
              encode(zen)}
    reference = {"code (in distribution)": encode(never_seen_code),
                 "Zen (out of distribution)": encode(never_seen_prose)}
    return (train_windows, train_targets), keep, forget, reference


def unlearn(model, value_and_grad, with_retain, forget, retain, steps, lr, rng, batch,
            target):
    """Full-batch gradient ascent on the forget set (with `batch` retain examples per step
    when `with_retain`, for the gradient difference). Returns the forget and retain loss
    after each step, and the model at the first step whose forget loss reaches `target`
    (the last model if none does)."""
    optimizer = optim.SGD(lr)
    state = optimizer.init(model)
    curve = [(float(loss_of(model, *forget)), float(loss_of(model, *retain)))]
    reached = None
    for _ in range(steps):
        if with_retain:
            idx = rng.integers(0, len(retain[1]), size=batch)
            model, state, _ = train.compiled_step(value_and_grad, optimizer, model, state,
                                                  *forget, retain[0][idx], retain[1][idx])
        else:
            model, state, _ = train.compiled_step(value_and_grad, optimizer, model, state,
                                                  *forget)
        curve.append((float(loss_of(model, *forget)), float(loss_of(model, *retain))))
        if reached is None and curve[-1][0] >= target:
            reached = model
    return (model if reached is None else reached), np.array(curve)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a few seconds, for CI")
    parser.add_argument("--context", type=int, default=8)
    parser.add_argument("--model", choices=("mlp", "lstm"), default="mlp",
                        help="an MLP over the window, or an LSTM reading it")
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--train-steps", type=int, default=6000)
    parser.add_argument("--unlearn-steps", type=int, default=80)
    parser.add_argument("--unlearn-lr", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--results", default=None, help="folder for the PNGs")
    args = parser.parse_args(argv)
    if args.quick:
        args.hidden, args.train_steps, args.unlearn_steps = 128, 500, 25

    start = time.perf_counter()
    rng = np.random.default_rng(args.seed)
    vocab = data.Vocabulary()
    (windows, targets), keep, forget, reference = corpus(vocab, args.context, 2000)
    retain_all = (windows[keep], targets[keep])
    sample = rng.choice(len(retain_all[1]), size=2000, replace=False)
    retain = (retain_all[0][sample], retain_all[1][sample])

    if args.model == "lstm":
        model = models.recurrent_lm(rng, len(vocab), 16, args.hidden)
    else:
        model = models.window_lm(rng, len(vocab), args.context, 16, args.hidden)
    model, history = train.fit(tl.value_and_grad(nll), model, optim.Adam(3e-3), (windows, targets),
                               args.train_steps, 128, rng, desc="train LM",
                               quiet=args.quick)
    train_seconds = history.seconds
    print(f"trained {args.train_steps} steps in {train_seconds:.1f} s; "
          f"retain loss {float(loss_of(model, *retain)):.3f} nats/char")

    results = {}
    folder = args.results and plots.Path(args.results)
    fig, axes = plots.figure(1, 2, figsize=(11, 4))
    fig2, ax2 = plots.figure(figsize=(6, 4.5))
    fig3, ax3 = plots.figure(figsize=(6, 4.5))
    for name in forget:
        before = float(loss_of(model, *forget[name]))
        never_seen = float(loss_of(model, *reference[name]))
        for value_and_grad, with_retain, label, style in (
                (tl.value_and_grad(ascent), False, "gradient ascent", "-"),
                (tl.value_and_grad(gradient_difference), True, "gradient difference", "--")):
            t0 = time.perf_counter()
            after, curve = unlearn(model, value_and_grad, with_retain, forget[name], retain,
                                   args.unlearn_steps, args.unlearn_lr,
                                   np.random.default_rng(args.seed), 256, never_seen)
            seconds = time.perf_counter() - t0
            quality = (curve[:, 0] - before) / (never_seen - before)
            reached = np.nonzero(quality >= 1.0)[0]
            steps_needed = int(reached[0]) if len(reached) else None
            results[(name, label)] = {"before": before, "never_seen": never_seen,
                                      "after": float(curve[-1, 0]),
                                      "retain_before": float(curve[0, 1]),
                                      "retain_after": float(curve[-1, 1]),
                                      "retain_at_1": (float(curve[steps_needed, 1])
                                                      if steps_needed is not None else None),
                                      "steps_needed": steps_needed, "seconds": seconds}
            color = "C0" if "in distribution" in name else "C1"
            axes[0].plot(curve[:, 0], style, color=color, label=f"{name}, {label}")
            axes[1].plot(curve[:, 1], style, color=color, label=f"{name}, {label}")
            ax2.plot(curve[:, 1], quality, style, color=color, label=f"{name}, {label}")
            if label == "gradient ascent":
                axes[0].axhline(never_seen, color=color, lw=0.8, ls=":")
                # Memorization: each window's loss before unlearning, against its rise by
                # the step the forget set as a whole reaches the never-seen level.
                first = losses_of(model, *forget[name])
                rise = losses_of(after, *forget[name]) - first
                results[(name, label)]["memorization_corr"] = float(np.corrcoef(first,
                                                                                rise)[0, 1])
                ax3.scatter(first, rise, s=4, alpha=0.4, color=color, label=name)
    # Gradient ascent has no floor: once past the never-seen level the loss runs away.
    top = 2.0 * max(r["never_seen"] for r in results.values())
    axes[0].set_ylim(0.0, top)
    axes[1].set_ylim(0.0, top)
    ax2.set_xlim(0.0, top)
    ax2.set_ylim(-0.2, 2.0)
    axes[0].set_title("forget-set loss (dotted: never-seen text)")
    axes[1].set_title("retain-set loss")
    for ax in axes:
        ax.set_xlabel("unlearning step")
        ax.set_ylabel("nats per character")
    axes[0].legend(fontsize=7)
    ax2.axhline(1.0, color="0.5", lw=0.8, ls=":")
    ax2.set_xlabel("retain-set loss (lower is better)")
    ax2.set_ylabel("unlearning quality (1 = as if never seen)")
    ax2.legend(fontsize=7)
    ax3.set_xlabel("loss of a window before unlearning (low = memorized)")
    ax3.set_ylabel("its rise when the set reaches the never-seen loss")
    ax3.set_title("memorization and unlearning (gradient ascent)")
    ax3.legend()
    paths = [plots.save(fig, "unlearning_curves.png", folder),
             plots.save(fig2, "unlearning_quality.png", folder),
             plots.save(fig3, "unlearning_memorization.png", folder)]

    print("losses in nats per character; quality 1 = the forget set's loss has reached "
          "that of never-seen text of its kind")
    print(f"{'forget set':>26} {'method':>20} {'before':>7} {'unseen':>7} {'steps to 1':>10} "
          f"{'retain before':>13} {'retain at 1':>11} {'corr(loss, rise)':>16}")
    for (name, label), r in results.items():
        corr = r.get("memorization_corr")
        at_1 = "-" if r["retain_at_1"] is None else f"{r['retain_at_1']:.3f}"
        print(f"{name:>26} {label:>20} {r['before']:7.3f} {r['never_seen']:7.3f} "
              f"{str(r['steps_needed']):>10} {r['retain_before']:13.3f} {at_1:>11} "
              f"{'' if corr is None else f'{corr:+.2f}':>16}")
    print(f"saved {', '.join(map(str, paths))}; done in {time.perf_counter() - start:.1f} s")
    return results


if __name__ == "__main__":
    main()

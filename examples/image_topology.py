"""Learning the 2-D topology of images (Le Roux, Bengio, Lamblin, Joliveau and Kegl,
"Learning the 2-D Topology of Images", NIPS 2007), on scikit-learn's 8x8 digits.

The pixels are shuffled by a permutation the method never sees. From the data alone it
estimates how similar two pixels are (their correlation over images), turns that into
distances along a nearest-neighbour graph (geodesics, as Isomap does), and places the 64
pixels in the plane by gradient descent on a stress loss, compiled by tapeless. Reports the
fraction of each pixel's recovered nearest neighbours that are its true grid neighbours,
saves the recovered layout, and shows the layout is useful: hidden pixels of unseen images
are filled in better from their recovered neighbours than from random pixels or from the
pixel's mean.

    python examples/image_topology.py [--quick]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from scipy.sparse.csgraph import shortest_path

import tapeless as tl
from lib import data, optim, plots, train

SIDE = 8


def pixel_distances(x, k):
    """Geodesic distances between pixels over the k-nearest-neighbour graph of the
    correlation distance sqrt(2 (1 - corr))."""
    corr = np.corrcoef(x.T)
    d = np.sqrt(np.maximum(2.0 * (1.0 - corr), 0.0))
    n = len(d)
    graph = np.zeros_like(d)
    nearest = np.argsort(d, axis=1)[:, 1:k + 1]
    for i in range(n):
        graph[i, nearest[i]] = d[i, nearest[i]]
    graph = np.maximum(graph, graph.T)
    distances = shortest_path(graph, directed=False)
    if np.isinf(distances).any():  # the graph falls apart: link more neighbours
        return pixel_distances(x, k + 1)
    return distances


def stress(embedding, i, j, target):
    """Sammon's stress over pairs (i, j): squared error of the embedded distance, weighted
    towards the short target distances that carry the topology."""
    diff = embedding[i] - embedding[j]
    dist = np.sqrt(np.sum(diff ** 2, axis=1) + 1e-9)
    return np.mean((dist - target) ** 2 / target)


def neighbour_recovery(embedding, positions, k=4):
    """Fraction of each pixel's k nearest embedded pixels that are its grid neighbours
    (8-neighbourhood), and that fraction for a random layout (chance)."""
    d = np.linalg.norm(embedding[:, None] - embedding[None], axis=-1)
    np.fill_diagonal(d, np.inf)
    nearest = np.argsort(d, axis=1)[:, :k]
    grid = np.max(np.abs(positions[:, None] - positions[None]), axis=-1) == 1
    hits = np.mean([grid[i, nearest[i]].mean() for i in range(len(embedding))])
    chance = grid.sum() / (len(grid) * (len(grid) - 1))
    return float(hits), float(chance)


def inpaint(x, missing, neighbourhoods, fallback):
    """Fill each missing pixel with its mean over the training images (`fallback`) plus
    the mean deviation from their own means of its observed neighbours."""
    observed = ~missing
    deviation = np.where(observed, x - fallback, 0.0)[:, neighbourhoods]   # (n, pixels, k)
    counts = observed[:, neighbourhoods].sum(axis=-1)
    guess = fallback + deviation.sum(axis=-1) / np.maximum(counts, 1)
    return np.where(missing, guess, x)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a few seconds, for CI")
    parser.add_argument("--steps", type=int, default=3000, help="embedding steps")
    parser.add_argument("--knn", type=int, default=3,
                        help="neighbours of each pixel in the similarity graph")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--results", default=None, help="folder for the PNG")
    args = parser.parse_args(argv)
    if args.quick:
        args.steps = 800

    start = time.perf_counter()
    rng = np.random.default_rng(args.seed)
    x, y = data.digits()
    positions = np.stack(np.divmod(np.arange(SIDE * SIDE), SIDE), axis=1)
    permutation = rng.permutation(SIDE * SIDE)
    x_shuffled, true_positions = x[:, permutation], positions[permutation]

    # Pixels that are blank in every image carry no information about where they are.
    informative = x_shuffled.std(axis=0) > 0
    xs = x_shuffled[:, informative]
    target = pixel_distances(xs, args.knn)
    i, j = np.triu_indices(len(target), k=1)
    embedding = rng.normal(0.0, 1.0, size=(len(target), 2))
    embedding, history = train.fit(tl.value_and_grad(stress), embedding, optim.Adam(0.05),
                                   (i, j, target[i, j]), args.steps, 256, rng,
                                   desc="embed pixels", quiet=args.quick)
    recovered, chance = neighbour_recovery(embedding, true_positions[informative])
    print(f"{informative.sum()} informative pixels; recovered nearest neighbours that are "
          f"grid neighbours: {recovered:.2f} (chance {chance:.2f})")

    fig, ax = plots.figure(figsize=(5, 5))
    rows = true_positions[informative][:, 0]
    grid = np.max(np.abs(true_positions[informative][:, None]
                         - true_positions[informative][None]), axis=-1)
    for a, b in zip(*np.nonzero(np.triu(np.abs(grid) == 1)), strict=True):
        if np.abs(true_positions[informative][a] - true_positions[informative][b]).sum() == 1:
            ax.plot(*embedding[[a, b]].T, color="0.8", lw=0.8, zorder=0)
    ax.scatter(*embedding.T, c=rows, cmap="viridis", s=40)
    for (r, c), point in zip(true_positions[informative], embedding, strict=True):
        ax.annotate(f"{r}{c}", point, fontsize=6, ha="center", va="bottom")
    ax.set_title(f"recovered pixel layout (label: true row,col)\n"
                 f"neighbour recovery {recovered:.2f}, chance {chance:.2f}")
    ax.set_aspect("equal")
    path = plots.save(fig, "image_topology.png", args.results and plots.Path(args.results))

    # Is the recovered topology useful? Hide a quarter of the pixels of held-out images
    # and fill each with the mean of its 4 nearest recovered pixels that are visible.
    d = np.linalg.norm(embedding[:, None] - embedding[None], axis=-1)
    np.fill_diagonal(d, np.inf)
    train_idx, test_idx = data.split(rng, len(x), len(x) // 2, -1)
    fallback = xs[train_idx].mean(axis=0)
    test = xs[test_idx]
    missing = rng.random(test.shape) < 0.25
    hoods = {"recovered neighbours": np.argsort(d, axis=1)[:, :4],
             "true grid neighbours": np.argsort(np.abs(true_positions[informative][:, None]
                                                       - true_positions[informative][None]).sum(-1)
                                                + np.eye(len(d)) * 99, axis=1)[:, :4],
             "random pixels": np.stack([rng.choice(np.delete(np.arange(len(d)), p), 4,
                                                   replace=False) for p in range(len(d))])}
    errors = {"pixel means": float(np.mean((np.where(missing, fallback, test) - test) ** 2))}
    for name, hood in hoods.items():
        errors[name] = float(np.mean((inpaint(test, missing, hood, fallback) - test) ** 2)
                             * test.size / missing.sum())
    errors["pixel means"] *= test.size / missing.sum()
    for name, err in errors.items():
        print(f"  hidden-pixel squared error, filled from {name}: {err:.4f}")
    print(f"saved {path}; done in {time.perf_counter() - start:.1f} s")
    return {"recovered": recovered, "chance": chance, **errors}


if __name__ == "__main__":
    main()

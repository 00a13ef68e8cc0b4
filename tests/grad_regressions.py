"""Programs for optimizer bugs that random gradient programs found (tests/test_grad.py
generates them); each is checked by tests/test_golden.py against finite differences."""
# ruff: noqa: B007, F841, SIM108, UP034  (the generated programs' shapes are part of the bugs)

import math

import numpy as np

C0 = 2.0


def loops_rebuilt_and_closures_copied(x, y, n):
    """drop_dead_state renumbered a loop's results while prune_saved copied a closure
    holding the old numbering (same optimizer round): IndexError in the backend."""
    v5, v6 = 3.0, (round(y, 1) + (float(n) and float(n)))
    if (0 % 4) < n:
        for i7 in range(5, (min(1, n)) % 6, 2):
            if (C0 + 2.0) < C0:
                continue
            for i8 in range(0):
                b9 = ((max(float(i7), C0) - (float(i7) + C0)) < y <= math.exp((x * 0.5)))
                x, v5 = v5, x
    else:
        b10 = not ((n if (y <= (-1.5)) else 5) > (5 // 3))
    v5 -= 0.5 * math.tanh(((v6 - (-1.5)) * (v6 if (0.5 >= x) else float(n))))
    if C0 > abs(float(n)):
        return np.tanh(((float(n) - y) - (lambda z11, z12: C0)(x, 3.0))) + v5 * x
    return (C0 ** 3) + v5

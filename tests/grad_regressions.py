"""Programs for optimizer bugs that random gradient programs found (tests/test_grad.py
generates them); each is checked by tests/test_golden.py against finite differences."""
# ruff: noqa: B007, E501, F841, SIM108, UP034  (the generated programs' shapes are part of the bugs)

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


C1 = 0.5


def argument_updated_then_unused(x, y, n):
    """y's sensitivity came back through zeros that the zero rewrites make the symbolic
    ZERO; to_structure_known took y's float kind to mean a float and returned ZERO itself
    as y's gradient (random program, seed 81)."""
    y += 0.5 * math.tanh(math.exp(math.tanh(float(n))))
    pass
    if ((C1 + C1) == 3.0):
        t7 = (math.sqrt(1.0 + 0.5 * 0.5), (y * (-0.125)), (y * C1))
        if (abs((-1)) >= n):
            if (not (not (x > t7[2]))):
                assert ((float(n) < y) and (x > C1)) or True
                def c8(z9, z10):
                    for i11, e12 in enumerate(t7):
                        v15 = math.sin((((math.tanh(float(i11)) ** 2) if ((-3) > n) else z9) * ((C1 + t7[-3]) / (1.0 + (lambda z13, z14: (np.exp(C1) - (C1 if (z9 < C1) else t7[1])))(float(i11), z9) * (lambda z13, z14: (np.exp(C1) - (C1 if (z9 < C1) else t7[1])))(float(i11), z9)))))
                    return math.tanh(C1 + z10 + z10 + x)
            else:
                return abs(math.exp(math.tanh(t7[-2])))
            v16 = np.tanh(round(y, 1))
        else:
            y += 0.5 * math.tanh(((y - float(n)) if (C1 < float(n) <= y) else math.sqrt(1.0 + float(n) * float(n))))
            y = x
            y *= 0.5
    elif (x < y):
        y += 0.5 * math.tanh(min((0.25 - 0.5), (y / (2.0 + math.sin(x)))))
    elif ((not (C1 > (-1.5))) and (float(n) < (-0.125) <= 0.5)):
        pass
    else:
        pass
    return np.tanh(np.abs(C1) + x + x + x)


def derivative_infinite_where_nothing_uses_it(x, y, n):
    """`math.acos(float(n))` at n = 1: the value is 0.0, its derivative -inf; n is an int,
    so that derivative goes nowhere, but the reverse rule divided by zero and Python's
    floats raised ZeroDivisionError (random program, seed 113)."""
    w = 0
    while (float(n) + 3 < 0.25 * C0 <= y) and w < 8:
        w += 1
        x = math.sin(x)
    return math.acos(float(n)) + 0.0 * x * y

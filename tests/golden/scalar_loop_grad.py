def grad_scalar_loop(x):
    x_1 = x
    stack = None
    for _ in range(1000):
        x_2 = math.sin(x_1) * 1.01
        stack = x_1, stack
        x_1 = x_2
    stack_1 = stack
    d1 = 1.0
    while stack_1 is not None:
        rest = stack_1[1]
        saved = stack_1[0]
        stack_1, d1 = rest, d1 * 1.01 * math.cos(saved)
    return d1


def grad_scalar_loop(x):
    x_1 = x
    stack = []
    for _ in range(1000):
        stack.append(x_1)
        x_1 = math.sin(x_1) * 1.01
    d1 = 1.0
    for saved in reversed(stack):
        d1 = d1 * 1.01 * math.cos(saved)
    return d1


def grad_scalar_loop(x):
    _t = []
    x_1 = x
    stack = _t
    for _ in range(1000):
        stack.append(x_1)
        x_1 = math.sin(x_1) * 1.01
    stack_1 = stack
    d1 = 1.0
    while stack_1:
        saved = stack_1.pop()
        d1 = d1 * 1.01 * math.cos(saved)
    return d1


def grad_scalar_loop(x):
    _sin = math.sin
    _cos = math.cos
    x_1 = x
    stack = []
    stack_append = stack.append
    for _ in range(1000):
        stack_append(x_1)
        x_1 = _sin(x_1) * 1.01
    d_x = 1.0
    for saved in reversed(stack):
        d_x = d_x * 1.01 * _cos(saved)
    return d_x


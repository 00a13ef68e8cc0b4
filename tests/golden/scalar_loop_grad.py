def grad_scalar_loop(x):
    _sin = math.sin
    _cos = math.cos
    stack = []
    stack_append = stack.append
    for _ in range(1000):
        stack_append(x)
        x = _sin(x) * 1.01
    d_x = 1.0
    for saved in reversed(stack):
        d_x = d_x * 1.01 * _cos(saved)
    return d_x


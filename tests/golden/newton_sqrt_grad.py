def grad_newton_sqrt(a):
    x = a
    stack = []
    stack_append = stack.append
    while abs(x * x - a) > 1e-12 * a:
        out = a / x
        stack_append((x, out))
        x = 0.5 * (x + out)
    d_x = 1.0
    d_a = 0.0
    for saved in reversed(stack):
        _t = d_x * 0.5
        out_1 = saved[1]
        x_1 = saved[0]
        d_x = _t + -0.5 * d_x * out_1 / x_1
        d_a = d_a + _t / x_1
    return d_x + d_a


def grad_newton_sqrt(a):
    _gadd = _rt.gadd
    x = a
    stack = []
    stack_append = stack.append
    while abs(x * x - a) > 1e-12 * a:
        out = a / x
        stack_append((x, out))
        x = 0.5 * (x + out)
    d0 = 1.0
    d_a = _rt.ZERO
    for saved in reversed(stack):
        _t = d0 * 0.5
        out_1 = saved[1]
        x_1 = saved[0]
        d0 = _t + -0.5 * d0 * out_1 / x_1
        d_a = _gadd(d_a, _t / x_1)
    return _rt.gadd(d0, d_a)


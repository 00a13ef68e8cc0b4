def grad_newton_sqrt(a):
    x = a
    stack = None
    while abs(x * x - a) > 1e-12 * a:
        out = a / x
        x_1 = 0.5 * (x + out)
        stack_1 = (x, out), stack
        x, stack = x_1, stack_1
    stack_2 = stack
    d0 = 1.0
    d_a = _rt.ZERO
    while stack_2 is not None:
        rest = stack_2[1]
        _t = d0 * 0.5
        saved = stack_2[0]
        out_1 = saved[1]
        x_2 = saved[0]
        d_x = _t + -_t * out_1 / x_2
        stack_2, d0, d_a = rest, d_x, _rt.gadd(d_a, _t / x_2)
    d_a_1 = _rt.gadd(d0, d_a)
    return _rt.to_structure(d_a_1, a)


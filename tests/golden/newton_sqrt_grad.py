def grad_newton_sqrt(a):
    x = a
    stack = None
    while abs(x * x - a) > 1e-12 * a:
        out = a / x
        x_1 = 0.5 * (x + out)
        stack = (x, out), stack
        x = x_1
    stack_1 = stack
    d0 = 1.0
    d_a = _rt.ZERO
    while stack_1 is not None:
        rest = stack_1[1]
        _t = d0 * 0.5
        saved = stack_1[0]
        out_1 = saved[1]
        x_2 = saved[0]
        d0 = _t + -_t * out_1 / x_2
        stack_1, d_a = rest, _rt.gadd(d_a, _t / x_2)
    d_a_1 = _rt.gadd(d0, d_a)
    return _rt.to_structure(d_a_1, a)


def grad_newton_sqrt(a):
    _t = []
    x = a
    stack = _t
    while abs(x * x - a) > 1e-12 * a:
        out = a / x
        stack.append((x, out))
        x = 0.5 * (x + out)
    stack_1 = stack
    d0 = 1.0
    d_a = _rt.ZERO
    while stack_1:
        saved = stack_1.pop()
        _t_1 = d0 * 0.5
        out_1 = saved[1]
        x_1 = saved[0]
        d0 = _t_1 + -_t_1 * out_1 / x_1
        d_a = _rt.gadd(d_a, _t_1 / x_1)
    d_a_1 = _rt.gadd(d0, d_a)
    return _rt.to_structure(d_a_1, a)


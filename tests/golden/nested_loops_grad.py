def grad_nested_loops(w, xs):
    _tanh = math.tanh
    _gadd = _rt.gadd
    _t = len(xs)
    _ = _rt.UNBOUND
    stack = []
    stack_append = stack.append
    for i in range(_t):
        x = xs[i]
        __1 = _
        h = x
        stack_1 = None
        for __2 in range(3):
            y = _tanh(w * h + x)
            stack_1 = (y, h), stack_1
            __1, h = __2, y
        stack_append((h, stack_1))
        _ = __1
    _d = _rt.ZERO
    d_w = _rt.ZERO
    for saved in reversed(stack):
        stack_3 = saved[1]
        h_1 = saved[0]
        d_h = h_1 + h_1
        stack_4 = stack_3
        _d_1 = _d
        d_h_1 = d_h
        d_w_1 = _rt.ZERO
        while stack_4 is not None:
            rest = stack_4[1]
            saved_1 = stack_4[0]
            y_1 = saved_1[0]
            _t_1 = d_h_1 * (1.0 - y_1 * y_1)
            h_2 = saved_1[1]
            stack_4, _d_1, d_h_1, d_w_1 = rest, _rt.ZERO, _t_1 * w, _gadd(d_w_1, _t_1 * h_2)
        _d, d_w = _d_1, _gadd(d_w, d_w_1)
    return _rt.to_structure(d_w, w)


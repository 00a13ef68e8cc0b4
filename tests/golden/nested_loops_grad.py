def grad_nested_loops(w, xs):
    _tanh = math.tanh
    _t = len(xs)
    _ = _rt.UNBOUND
    stack = []
    stack_append = stack.append
    for i in range(_t):
        x = xs[i]
        h = x
        stack_1 = None
        for __1 in range(3):
            y = _tanh(w * h + x)
            stack_1 = (y, h), stack_1
            _, h = __1, y
        stack_append((h, stack_1))
    d_w = 0.0
    for saved in reversed(stack):
        stack_2 = saved[1]
        h_1 = saved[0]
        d_h = h_1 + h_1
        d_w_1 = 0.0
        while stack_2 is not None:
            saved_1 = stack_2[0]
            y_1 = saved_1[0]
            _t_1 = d_h * (1.0 - y_1 * y_1)
            h_2 = saved_1[1]
            stack_2, d_h, d_w_1 = stack_2[1], _t_1 * w, d_w_1 + _t_1 * h_2
        d_w = d_w + d_w_1
    return d_w


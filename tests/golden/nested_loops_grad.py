def grad_nested_loops(w, xs):
    _tanh = math.tanh
    _sens_of = _rt.sens_of
    _unbroadcast = _rt.unbroadcast
    _repeat_sens = _rt.repeat_sens
    _gadd = _rt.gadd
    _t = isinstance(xs, _const)
    _t_1 = xs if (_t if _t else hasattr(xs, '__array__')) else tuple(xs)
    _t_2 = len(_t_1)
    _ = _rt.UNBOUND
    total = 0.0
    stack = []
    stack_append = stack.append
    for i in range(_t_2):
        x = _t_1[i]
        __1 = _
        h = x
        stack_1 = None
        for __2 in range(3):
            _t_3 = w * h
            y = _tanh(_t_3 + x)
            stack_1 = (h, _t_3, y, x), stack_1
            __1, h = __2, y
        _t_4 = h * h
        total_1 = total + _t_4
        stack_append((h, total, total_1, _t_4, stack_1))
        _, total = __1, total_1
    _t_5 = _rt.check_scalar_output(total)
    seed = _rt.ones_like_output(_t_5)
    d2 = _rt.ZERO
    d3 = seed
    d_w = _rt.ZERO
    for saved in reversed(stack):
        stack_3 = saved[4]
        h_1 = saved[0]
        total_2 = saved[1]
        total_3 = saved[2]
        _t_6 = _sens_of(d3, total_3)
        _t_7 = saved[3]
        if isinstance(total_2, _const_1):
            n = len(total_2)
            if _t_6 is _rt.ZERO:
                d_total, _t_8 = _rt.ZERO, _rt.ZERO
            else:
                d_total, _t_8 = _t_6[:n], _t_6[n:]
        else:
            d_total, _t_8 = _unbroadcast(_t_6, total_2), _unbroadcast(_t_6, _t_7)
        _t_9 = _sens_of(_t_8, _t_7)
        if isinstance(h_1, _const_1):
            d_h, d_h_1 = _repeat_sens(_t_9, h_1), _rt.ZERO
        else:
            if isinstance(h_1, _const_2):
                d_h, d_h_1 = _rt.ZERO, _repeat_sens(_t_9, h_1)
            else:
                _t_10 = _unbroadcast(_t_9 * h_1, h_1)
                d_h, d_h_1 = _t_10, _t_10
        d_h_2 = _gadd(d_h, d_h_1)
        stack_4 = stack_3
        d0 = d2
        d1 = d_h_2
        d_w_1 = _rt.ZERO
        while stack_4 is not None:
            rest = stack_4[1]
            saved_1 = stack_4[0]
            h_2 = saved_1[0]
            _t_11 = saved_1[1]
            y_1 = saved_1[2]
            _t_12 = _sens_of(d1, y_1) * (1.0 - y_1 * y_1)
            x_1 = saved_1[3]
            if isinstance(_t_11, _const_3):
                n_1 = len(_t_11)
                _t_13, _ = _t_12[:n_1], _t_12[n_1:]
            else:
                _t_13, _ = _unbroadcast(_t_12, _t_11), _unbroadcast(_t_12, x_1)
            _t_14 = (_rt.ZERO, _repeat_sens(_t_13, h_2)) if isinstance(h_2, _const_4) else (_unbroadcast(_t_13 * h_2, w), _unbroadcast(_t_13 * w, h_2))
            d_h_3 = _t_14[1]
            d_w_2 = _t_14[0]
            stack_4, d0, d1, d_w_1 = rest, _rt.ZERO, d_h_3, _gadd(d_w_1, d_w_2)
        d2, d3, d_w = d0, d_total, _gadd(d_w, d_w_1)
    return _rt.to_structure(d_w, w)


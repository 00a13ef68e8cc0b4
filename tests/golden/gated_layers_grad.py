def grad_gated_layers(params, state, xs):
    _concatenate = np.concatenate
    _tanh = np.tanh
    _gadd = _rt.gadd
    _getitem_sens = _rt.getitem_sens
    _scatter_add_pair_known = _rt.scatter_add_pair_known
    _sens_index = _rt.sens_index
    def comprehension_1(item, *, state=state):
        def B_comprehension(dout, *, state=state, item=item):
            d_state = _rt.getitem_sens(dout, state, item)
            return (d_state,), _rt.ZERO
        return state[item], B_comprehension
    results = [comprehension_1(_x) for _x in range(4)]
    st = [comprehension(_x) for _x in results]
    j = _rt.UNBOUND
    b = _rt.UNBOUND
    g = _rt.UNBOUND
    f = _rt.UNBOUND
    s = _rt.UNBOUND
    h = _rt.UNBOUND
    stack = []
    stack_append = stack.append
    for t in range(5):
        _t = len(st) // 2
        new = []
        x = xs[t]
        x_1 = x
        stack_1 = None
        for j_1 in range(_t):
            _t_1 = 2 * j_1
            _t_2 = _concatenate([x_1, st[_t_1], x_1])
            g_1 = _t_2 * params[_t_1]
            _t_3 = _t_1 + 1
            g_1 += params[_t_3]
            f = 1.0 / (1.0 + np.exp(-g_1[0:3]))
            _t_4 = st[_t_3]
            s_1 = _t_4 * f
            y = _tanh(g_1[3:6])
            _t_5 = g_1[6:9]
            s_1 += y * _t_5
            y_1 = _tanh(s_1)
            h = f * y_1
            stack_1 = (_t_4, new, f, y_1, _t_2, y, _t_5, g_1, j_1), stack_1
            j, b, g, s, new, x_1 = j_1, 3, g_1, s_1, new + [h, s_1], h
        stack_append((x, st, stack_1))
        st = new
    d_params = np.zeros((4, 9), dtype=float)
    d_st = _rt.ZERO
    for saved in reversed(stack):
        st_1 = saved[1]
        stack_2 = saved[2]
        _t_6 = 0.2 * saved[0]
        d_new = d_st
        d_x = _t_6
        d_st_1 = _rt.ZERO
        d_params_1 = d_params
        while stack_2 is not None:
            saved_1 = stack_2[0]
            new_1 = saved_1[1]
            n = len(new_1)
            _t_7 = (_rt.ZERO, _rt.ZERO) if d_new is _rt.ZERO else (d_new[:n], d_new[n:])
            d_new_1 = _t_7[0]
            _t_8 = _t_7[1]
            _t_9 = (_rt.ZERO,) * 2 if _t_8 is _rt.ZERO else tuple(_t_8)
            d_s = _t_9[1]
            d_h = _t_9[0]
            d_h = _gadd(d_x, d_h)
            f_1 = saved_1[2]
            y_2 = saved_1[3]
            d_s = _gadd(d_s, d_h * f_1 * (1.0 - y_2 * y_2))
            y_3 = saved_1[5]
            g_2 = saved_1[7]
            d_f = d_h * y_2 + d_s * saved_1[0]
            d_g = _getitem_sens(d_s * y_3, g_2, slice(6, 9, None)) + _getitem_sens(d_s * saved_1[6] * (1.0 - y_3 * y_3), g_2, slice(3, 6, None)) + _getitem_sens(d_f * f_1 * (1.0 - f_1), g_2, slice(0, 3, None))
            j_2 = saved_1[8]
            _t_10 = 2 * j_2
            _t_11 = d_g * params[_t_10]
            d_x_1 = _t_11[0:3]
            d_x_2 = _t_11[6:9]
            _t_12 = _t_10 + 1
            d_params_1[_t_12] += d_g
            d_params_1[_t_10] += d_g * saved_1[4]
            stack_2, d_new, d_x, d_st_1 = stack_2[1], d_new_1, d_x_1 + d_x_2, _scatter_add_pair_known(d_st_1, st_1, _t_12, _t_10, d_s * f_1, _t_11[3:6])
        d_st, d_params = d_st_1, d_params_1
    d_params_2 = _rt.to_structure(d_params, params)
    _t_13 = len(results)
    d_fn = _rt.ZERO
    for i in range(_t_13):
        r = results[i]
        g_3 = r[1](_sens_index(d_st, i))
        d_fn = _gadd(d_fn, g_3[0])
    d_state_1 = _rt.to_structure(d_fn[0], state)
    return d_params_2, d_state_1

def comprehension(item_1):
    return item_1[0]


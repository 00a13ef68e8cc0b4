def grad_grad_branchy(x, y):
    _t = x > y
    if _t:
        z = x * y
        def J_B_if_true(d_z, *, z=z, y=y, x=x):
            _t_3 = _rt.sens_of(d_z, z)
            _t_4 = _t_3 * y
            _t_5 = _t_3 * x
            def B_B_if_true(dout, *, _t_5=_t_5, _t_4=_t_4, y=y):
                _t_6 = ((_rt.ZERO,) * 1)[0] if dout is _rt.ZERO else tuple(dout)[0]
                return (_rt.sens_of(_rt.ZERO, _t_5), _rt.ZERO, _rt.ZERO), _rt.sens_of(_rt.broadcast_like(((_rt.ZERO,) * 2)[0] if _t_6 is _rt.ZERO else tuple(_t_6)[0], _t_4), _t_4) * y
            return ((_t_4, _rt.ZERO),), B_B_if_true
        _t_1, _t_2 = (z, J_B_if_true), (_rt.ZERO,)
    else:
        y_1 = math.exp(x)
        z_1 = y_1 - y
        def J_B_if_false(d_z_1, *, z_1=z_1, y_1=y_1):
            _t_7 = _rt.sens_of(d_z_1, z_1)
            d_x = _t_7 * y_1
            def B_B_if_false(dout_1, *, d_x=d_x, _t_7=_t_7, y_1=y_1):
                _t_8 = ((_rt.ZERO,) * 1)[0] if dout_1 is _rt.ZERO else tuple(dout_1)[0]
                _t_9 = _rt.sens_of(((_rt.ZERO,) * 2)[0] if _t_8 is _rt.ZERO else tuple(_t_8)[0], d_x)
                return (_rt.ZERO, _t_9 * _t_7), _t_9 * y_1
            return ((d_x, _rt.ZERO),), B_B_if_false
        _t_1, _t_2 = (z_1, J_B_if_false), (_rt.ZERO, y_1)
    z_backprop = _t_1[1]
    z_2 = _t_1[0]
    d_z_2 = z_2 + z_2
    _t_10 = z_backprop(d_z_2)
    _t_11 = _t_10[0]
    _t_12 = _t_11[0]
    _t_13 = (_rt.ZERO, _t_12, _rt.ZERO) if _t else (_rt.ZERO, _rt.ZERO, _t_12)
    _t_14 = _rt.tuple_sens(1.0, 0, _t_13[1])
    _t_15 = _rt.tuple_sens(1.0, 0, _t_13[2])
    _t_16 = _t_10[1](_rt.tuple_sens(_t_14 if _t else _t_15, 0, _t_11))
    _t_17 = _t_16[0]
    d_d_z = _t_16[1]
    _t_18 = _rt.sens_of(_rt.broadcast_like(d_d_z, z_2), z_2)
    d_z_3 = _t_18 + _t_18
    if _t:
        d_z_4 = _rt.gadd(d_z_3, _t_17[1])
        _t_19 = _rt.gadd(_t_17[0], d_z_4 * y)
    else:
        d_z_5 = _rt.gadd(d_z_3, _t_17[0])
        d_y = _rt.gadd(_t_17[1], d_z_5)
        y_2 = _t_2[1]
        _t_19 = d_y * y_2
    if _t:
        return _t_19
    else:
        return _t_19


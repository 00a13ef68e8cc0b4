def grad_grad_branchy(x, y):
    _t = x > y
    if _t:
        z = x * y
        def J_B_if_true(d_z, *, z=z, y=y, x=x):
            _t_3 = _rt.sens_of(d_z, z)
            _t_4 = _t_3 * y
            _t_5 = _t_3 * x
            def B_B_if_true(dout, *, _t_5=_t_5, _t_3=_t_3, _t_4=_t_4, x=x, y=y):
                _t_6 = ((_rt.ZERO,) * 1 if dout is _rt.ZERO else tuple(dout))[0]
                _t_7 = (_rt.ZERO,) * 2 if _t_6 is _rt.ZERO else tuple(_t_6)
                d_d_y = _t_7[1]
                _t_8 = _rt.sens_of(_rt.broadcast_like(d_d_y, _t_5), _t_5)
                d_d_x = _t_7[0]
                _t_9 = _rt.sens_of(_rt.broadcast_like(d_d_x, _t_4), _t_4)
                return (_t_8 * _t_3, _rt.ZERO, _t_9 * _t_3), _t_8 * x + _t_9 * y
            return ((_t_4, _t_5),), B_B_if_true
        _t_1, _t_2 = (z, J_B_if_true), (z,)
    else:
        y_1 = math.exp(x)
        z_1 = y_1 - y
        def J_B_if_false(d_z_1, *, z_1=z_1, y_1=y_1):
            _t_10 = _rt.sens_of(d_z_1, z_1)
            d_x = _t_10 * y_1
            _t_11 = -_t_10
            def B_B_if_false(dout_1, *, d_x=d_x, _t_10=_t_10, _t_11=_t_11, y_1=y_1):
                _t_12 = ((_rt.ZERO,) * 1 if dout_1 is _rt.ZERO else tuple(dout_1))[0]
                _t_13 = (_rt.ZERO,) * 2 if _t_12 is _rt.ZERO else tuple(_t_12)
                d_d_x_1 = _t_13[0]
                _t_14 = _rt.sens_of(d_d_x_1, d_x)
                d_d_y_1 = _t_13[1]
                d_d_z = -_rt.sens_of(_rt.broadcast_like(d_d_y_1, _t_11), _t_11) + _t_14 * y_1
                return (_rt.ZERO, _t_14 * _t_10, _rt.ZERO), d_d_z
            return ((d_x, _t_11),), B_B_if_false
        _t_1, _t_2 = (z_1, J_B_if_false), (z_1, y_1)
    z_backprop = _t_1[1]
    z_2 = _t_1[0]
    d_z_2 = _rt.gadd(z_2, z_2)
    _t_15 = z_backprop(d_z_2)
    _t_16 = _t_15[0]
    _t_17 = _t_16[0]
    _t_18 = (((_rt.ZERO, _t_17, _rt.ZERO), ()) if _t else ((_rt.ZERO, _rt.ZERO, _t_17), ()))[0]
    _t_19 = _t_18[1]
    _t_20 = _rt.gadd(_rt.tuple_sens(_rt.ZERO, 1, _t_19), _rt.tuple_sens(1.0, 0, _t_19))
    _t_21 = _t_18[2]
    _t_22 = _rt.gadd(_rt.tuple_sens(_rt.ZERO, 1, _t_21), _rt.tuple_sens(1.0, 0, _t_21))
    _t_23 = (((_t_20,),) if _t else ((_t_22,),))[0]
    _t_24 = (_rt.ZERO, _t_23, _rt.ZERO) if _t else (_rt.ZERO, _rt.ZERO, _t_23)
    _t_25 = _t_15[1](_rt.tuple_sens(_rt.gadd(_t_24[1][0], _t_24[2][0]), 0, _t_16))
    _t_26 = _t_25[0]
    d_d_z_1 = _t_25[1]
    _t_27 = _rt.sens_of(_rt.broadcast_like(d_d_z_1, z_2), z_2)
    d_z_3 = _t_27 + _t_27
    if _t:
        d_z_4 = _rt.gadd(d_z_3, _t_26[1])
        d_x_1 = _rt.gadd(_t_26[0], d_z_4 * y)
        d_y = _rt.gadd(_t_26[2], d_z_4 * x)
        _t_28 = d_x_1, d_y
    else:
        d_z_5 = _rt.gadd(d_z_3, _t_26[0])
        d_y_1 = _rt.gadd(_t_26[1], d_z_5)
        y_2 = _t_2[1]
        d_x_2 = d_y_1 * y_2
        d_y_2 = _rt.gadd(_t_26[2], -d_z_5)
        _t_28 = d_x_2, d_y_2
    _t_29 = (((_t_28[0], _t_28[1]),) if _t else ((_t_28[0], _t_28[1]),))[0]
    _t_30 = (_rt.ZERO, _t_29, _rt.ZERO) if _t else (_rt.ZERO, _rt.ZERO, _t_29)
    d_x_3 = _rt.gadd(_t_30[1][0], _t_30[2][0])
    return _rt.to_structure(d_x_3, x)


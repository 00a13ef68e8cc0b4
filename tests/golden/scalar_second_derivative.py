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
            _t_11 = _t_10 * y_1
            _t_12 = -_t_10
            def B_B_if_false(dout_1, *, _t_11=_t_11, _t_10=_t_10, _t_12=_t_12, y_1=y_1):
                _t_13 = ((_rt.ZERO,) * 1 if dout_1 is _rt.ZERO else tuple(dout_1))[0]
                _t_14 = (_rt.ZERO,) * 2 if _t_13 is _rt.ZERO else tuple(_t_13)
                d_d_x_1 = _t_14[0]
                _t_15 = _rt.sens_of(d_d_x_1, _t_11)
                d_d_y_1 = _t_14[1]
                return (_rt.ZERO, _t_15 * _t_10, _rt.ZERO), _rt.gadd(-_rt.sens_of(_rt.broadcast_like(d_d_y_1, _t_12), _t_12), _rt.broadcast_like(_t_15 * y_1, _t_10))
            return ((_t_11, _t_12),), B_B_if_false
        _t_1, _t_2 = (z_1, J_B_if_false), (z_1, y_1)
    z_2 = _t_1[0]
    _t_16 = z_2 * z_2
    _t_17 = _rt.check_scalar_output(_t_16)
    z_backprop = _t_1[1]
    _t_18 = isinstance(z_2, _const)
    seed = _rt.ones_like_output(_t_17)
    if _t_18:
        _t_21 = _rt.repeat_sens(seed, z_2)
        k = 0 if len(z_2) == 0 else len(seed) // len(z_2)
        _t_19, _t_20 = (_t_21, _rt.ZERO), (_t_21, k)
    else:
        _t_22 = isinstance(z_2, _const_1)
        if _t_22:
            _t_25 = _rt.repeat_sens(seed, z_2)
            k_1 = 0 if len(z_2) == 0 else len(seed) // len(z_2)
            def B_if_true(dout_2, *, _t_25=_t_25, k_1=k_1):
                _t_26 = _rt.sens_of(((_rt.ZERO,) * 2 if dout_2 is _rt.ZERO else tuple(dout_2))[1], _t_25)
                return ((_rt.ZERO if _t_26 is _rt.ZERO else tuple(_t_26) * k_1, _rt.ZERO),)
            _t_23, _t_24 = (_rt.ZERO, _t_25), B_if_true
        else:
            _t_27 = seed * z_2
            def B_if_false(dout_3, *, seed=seed, _t_27=_t_27, z_2=z_2):
                _t_28 = (_rt.ZERO,) * 2 if dout_3 is _rt.ZERO else tuple(dout_3)
                _t_29 = _rt.sens_of(_rt.broadcast_like(_t_28[1], _t_27), _t_27)
                _t_30 = (_rt.repeat_sens(_t_29, seed), _rt.ZERO) if isinstance(seed, _const_2) else ((_rt.ZERO, _rt.repeat_sens(_t_29, z_2)) if isinstance(z_2, _const_3) else (_rt.unbroadcast(_t_29 * z_2, seed), _rt.unbroadcast(_t_29 * seed, z_2)))
                _t_31 = _rt.sens_of(_rt.broadcast_like(_t_28[0], _t_27), _t_27)
                _t_32 = (_rt.repeat_sens(_t_31, seed), _rt.ZERO) if isinstance(seed, _const_2) else ((_rt.ZERO, _rt.repeat_sens(_t_31, z_2)) if isinstance(z_2, _const_4) else (_rt.unbroadcast(_t_31 * z_2, seed), _rt.unbroadcast(_t_31 * seed, z_2)))
                d_z_2 = _t_30[1]
                d_z_3 = _t_32[1]
                d_z_4 = _rt.gadd(d_z_2, d_z_3)
                return ((_rt.gadd(_t_30[0], _t_32[0]), d_z_4),)
            _t_33 = _rt.unbroadcast(_t_27, z_2)
            _t_23, _t_24 = (_t_33, _t_33), B_if_false
        _t_19, _t_20 = _t_23, (_t_24, _t_22)
    d_z_5 = _t_19[0]
    d_z_6 = _t_19[1]
    d_z_7 = _rt.gadd(d_z_5, d_z_6)
    _t_34 = z_backprop(d_z_7)
    _t_35 = _t_34[0]
    _t_36 = _t_35[0]
    _t_37 = (((_rt.ZERO, _t_36, _rt.ZERO), ()) if _t else ((_rt.ZERO, _rt.ZERO, _t_36), ()))[0]
    _t_38 = _t_37[2]
    _t_39 = _rt.from_structure(1.0)
    _t_40 = _t_37[1]
    _t_41 = _rt.gadd(_rt.tuple_sens(_rt.gadd(_rt.tuple_sens(_rt.ZERO, 1, _t_38), _rt.tuple_sens(_t_39, 0, _t_38)), 2, _t_37), _rt.tuple_sens(_rt.gadd(_rt.tuple_sens(_rt.ZERO, 1, _t_40), _rt.tuple_sens(_t_39, 0, _t_40)), 1, _t_37))
    _t_42 = (((((_rt.ZERO,) * 3 if _t_41 is _rt.ZERO else tuple(_t_41))[1],),) if _t else ((((_rt.ZERO,) * 3 if _t_41 is _rt.ZERO else tuple(_t_41))[2],),))[0]
    _t_43 = (_rt.ZERO, _t_42, _rt.ZERO) if _t else (_rt.ZERO, _rt.ZERO, _t_42)
    _t_44 = _t_34[1](_rt.tuple_sens(_rt.gadd(_t_43[1][0], _t_43[2][0]), 0, _t_35))
    d_d_z = _t_44[1]
    _t_45 = _rt.gadd(_rt.tuple_sens(d_d_z, 1, _t_19), _rt.tuple_sens(d_d_z, 0, _t_19))
    if _t_18:
        _t_47 = _rt.sens_of(((_rt.ZERO,) * 2 if _t_45 is _rt.ZERO else tuple(_t_45))[0], _t_20[0])
        k_2 = _t_20[1]
        _t_46 = _rt.ZERO if _t_47 is _rt.ZERO else tuple(_t_47) * k_2, _rt.ZERO
    else:
        _t_48 = _t_20[0](_t_45)
        _t_49 = _t_48[0]
        _t_50 = (_rt.ZERO, _t_49, _rt.ZERO) if _t_20[1] else (_rt.ZERO, _rt.ZERO, _t_49)
        _t_51 = _t_50[1]
        _t_52 = _t_50[2]
        d_z_8 = _rt.gadd(_t_51[1], _t_52[1])
        _t_46 = d_z_8, _rt.gadd(_t_51[0], _t_52[0])
    _t_53 = (_rt.ZERO, _t_46, _rt.ZERO) if _t_18 else (_rt.ZERO, _rt.ZERO, _t_46)
    d_z_9 = _rt.gadd(_t_53[1][1], _t_53[2][0])
    _t_54 = _rt.sens_of(_rt.ZERO, _t_16)
    if isinstance(z_2, _const_5):
        d_z_10, d_z_11 = _rt.repeat_sens(_t_54, z_2), _rt.ZERO
    else:
        if isinstance(z_2, _const_6):
            d_z_10, d_z_11 = _rt.ZERO, _rt.repeat_sens(_t_54, z_2)
        else:
            _t_55 = _rt.unbroadcast(_t_54 * z_2, z_2)
            d_z_10, d_z_11 = _t_55, _t_55
    d_z_12 = _rt.gadd(_rt.gadd(d_z_9, d_z_10), d_z_11)
    _t_56 = _rt.gadd(_rt.tuple_sens(_t_44[0], 1, _t_1), _rt.tuple_sens(d_z_12, 0, _t_1))
    if _t:
        _t_58 = (_rt.ZERO,) * 2 if _t_56 is _rt.ZERO else tuple(_t_56)
        _t_59 = _t_58[1]
        d_z_13 = _t_58[0]
        d_z_14 = _rt.gadd(d_z_13, _t_59[1])
        z_3 = _t_2[0]
        _t_60 = _rt.sens_of(d_z_14, z_3)
        d_x = _rt.gadd(_t_59[0], _t_60 * y)
        d_y = _rt.gadd(_t_59[2], _t_60 * x)
        _t_57 = d_x, d_y
    else:
        _t_61 = (_rt.ZERO,) * 2 if _t_56 is _rt.ZERO else tuple(_t_56)
        _t_62 = _t_61[1]
        d_z_15 = _t_61[0]
        d_z_16 = _rt.gadd(d_z_15, _t_62[0])
        z_4 = _t_2[0]
        _t_63 = _rt.sens_of(d_z_16, z_4)
        d_y_1 = _rt.gadd(_t_62[1], _t_63)
        y_2 = _t_2[1]
        d_y_2 = _rt.gadd(_t_62[2], -_t_63)
        _t_57 = d_y_1 * y_2, d_y_2
    _t_64 = (((_t_57[0], _t_57[1]),) if _t else ((_t_57[0], _t_57[1]),))[0]
    _t_65 = (_rt.ZERO, _t_64, _rt.ZERO) if _t else (_rt.ZERO, _rt.ZERO, _t_64)
    d_x_1 = _rt.gadd(_t_65[1][0], _t_65[2][0])
    return _rt.to_structure(d_x_1, x)


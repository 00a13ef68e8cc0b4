def grad_grad_branchy(x, y):
    _t = x > y
    if _t:
        z = x * y
        def J_B_if_true(d_z, *, z=z, y=y, x=x):
            _t_3 = _rt.sens_of(d_z, z)
            _t_4 = _t_3 * y
            _t_5 = _t_3 * x
            _t_6 = _t_4, _t_5
            def B_B_if_true(dout, *, _t_6=_t_6, _t_5=_t_5, _t_3=_t_3, _t_4=_t_4, x=x, y=y):
                _t_7 = ((_rt.ZERO,) * 1 if dout is _rt.ZERO else tuple(dout))[0]
                _t_8 = (_rt.ZERO,) * 2 if _t_7 is _rt.ZERO else tuple(_t_7)
                d_d_y = _t_8[1]
                d_d_x = _t_8[0]
                _t_9 = _rt.gadd(_rt.tuple_sens(d_d_y, 1, _t_6), _rt.tuple_sens(d_d_x, 0, _t_6))
                _t_10 = (_rt.ZERO,) * 2 if _t_9 is _rt.ZERO else tuple(_t_9)
                _t_11 = _rt.sens_of(_rt.broadcast_like(_t_10[1], _t_5), _t_5)
                _t_12 = _rt.sens_of(_rt.broadcast_like(_t_10[0], _t_4), _t_4)
                return (_t_11 * _t_3, _rt.ZERO, _t_12 * _t_3), _t_11 * x + _t_12 * y
            return (_t_6,), B_B_if_true
        _t_1, _t_2 = (z, J_B_if_true), (z,)
    else:
        y_1 = math.exp(x)
        z_1 = y_1 - y
        def J_B_if_false(d_z_1, *, z_1=z_1, y_1=y_1):
            _t_13 = _rt.sens_of(d_z_1, z_1)
            _t_14 = _rt.sens_of(_t_13, y_1)
            _t_15 = _t_14 * y_1
            _t_16 = -_t_13
            _t_17 = (_t_15,)
            _t_18 = _t_13, _t_16
            def B_B_if_false(dout_1, *, _t_17=_t_17, _t_15=_t_15, _t_14=_t_14, _t_18=_t_18, y_1=y_1, _t_16=_t_16, _t_13=_t_13):
                _t_19 = ((_rt.ZERO,) * 1 if dout_1 is _rt.ZERO else tuple(dout_1))[0]
                _t_20 = (_rt.ZERO,) * 2 if _t_19 is _rt.ZERO else tuple(_t_19)
                d_d_x_1 = _t_20[0]
                _t_21 = _rt.tuple_sens(d_d_x_1, 0, _t_17)
                _t_22 = _rt.sens_of(((_rt.ZERO,) * 1 if _t_21 is _rt.ZERO else tuple(_t_21))[0], _t_15)
                d_d_y_1 = _t_20[1]
                _t_23 = tuple(_rt.gadd(_rt.tuple_sens(d_d_y_1, 1, _t_18), _rt.tuple_sens(_t_22 * y_1, 0, _t_18)))
                return (_rt.ZERO, _t_22 * _t_14, _rt.ZERO), _rt.gadd(-_rt.sens_of(_rt.broadcast_like(_t_23[1], _t_16), _t_16), _rt.broadcast_like(_t_23[0], _t_13))
            return ((_t_15, _t_16),), B_B_if_false
        _t_1, _t_2 = (z_1, J_B_if_false), (z_1, y_1)
    z_2 = _t_1[0]
    _t_24 = z_2 * z_2
    _t_25 = _rt.check_scalar_output(_t_24)
    z_backprop = _t_1[1]
    def J_B_branchy(dout_2, *, z_2=z_2, _t_24=_t_24, z_backprop=z_backprop, _t=_t):
        _t_26 = isinstance(z_2, _const)
        _t_27 = _rt.sens_of(dout_2, _t_24)
        if _t_26:
            _t_30 = _rt.repeat_sens(_t_27, z_2)
            _t_31 = _t_27 is _rt.ZERO
            k = 0 if (_t_31 if _t_31 else len(z_2) == 0) else len(_t_27) // len(z_2)
            _t_28, _t_29 = (_t_30, _rt.ZERO), (_t_30, k)
        else:
            _t_32 = isinstance(z_2, _const_1)
            if _t_32:
                _t_35 = _rt.repeat_sens(_t_27, z_2)
                _t_36 = _t_27 is _rt.ZERO
                k_1 = 0 if (_t_36 if _t_36 else len(z_2) == 0) else len(_t_27) // len(z_2)
                def B_if_true(dout_3, *, _t_35=_t_35, k_1=k_1):
                    _t_37 = _rt.sens_of(((_rt.ZERO,) * 2 if dout_3 is _rt.ZERO else tuple(dout_3))[1], _t_35)
                    return ((_rt.ZERO if _t_37 is _rt.ZERO else tuple(_t_37) * k_1, _rt.ZERO),)
                _t_33, _t_34 = (_rt.ZERO, _t_35), B_if_true
            else:
                _t_38 = _t_27 * z_2
                def B_if_false(dout_4, *, _t_27=_t_27, _t_38=_t_38, z_2=z_2):
                    _t_39 = (_rt.ZERO,) * 2 if dout_4 is _rt.ZERO else tuple(dout_4)
                    _t_40 = _rt.sens_of(_rt.broadcast_like(_t_39[1], _t_38), _t_38)
                    _t_41 = (_rt.repeat_sens(_t_40, _t_27), _rt.ZERO) if isinstance(_t_27, _const_2) else ((_rt.ZERO, _rt.repeat_sens(_t_40, z_2)) if isinstance(z_2, _const_3) else (_rt.unbroadcast(_t_40 * z_2, _t_27), _rt.unbroadcast(_t_40 * _t_27, z_2)))
                    _t_42 = _rt.sens_of(_rt.broadcast_like(_t_39[0], _t_38), _t_38)
                    _t_43 = (_rt.repeat_sens(_t_42, _t_27), _rt.ZERO) if isinstance(_t_27, _const_2) else ((_rt.ZERO, _rt.repeat_sens(_t_42, z_2)) if isinstance(z_2, _const_4) else (_rt.unbroadcast(_t_42 * z_2, _t_27), _rt.unbroadcast(_t_42 * _t_27, z_2)))
                    d_z_2 = _t_41[1]
                    d_z_3 = _t_43[1]
                    d_z_4 = _rt.gadd(d_z_2, d_z_3)
                    return ((_rt.gadd(_t_41[0], _t_43[0]), d_z_4),)
                _t_44 = _rt.unbroadcast(_t_38, z_2)
                _t_33, _t_34 = (_t_44, _t_44), B_if_false
            _t_28, _t_29 = _t_33, (_t_34, _t_32)
        d_z_5 = _t_28[0]
        d_z_6 = _t_28[1]
        d_z_7 = _rt.gadd(d_z_5, d_z_6)
        _t_45 = z_backprop(d_z_7)
        _t_46 = _t_45[0]
        _t_47 = _t_46[0]
        _t_48 = (((_rt.ZERO, _t_47, _rt.ZERO), ()) if _t else ((_rt.ZERO, _rt.ZERO, _t_47), ()))[0]
        _t_49 = _t_48[1]
        _t_50 = _t_48[2]
        d_x = _rt.gadd(_t_49[0], _t_50[0])
        d_y = _rt.gadd(_t_49[1], _t_50[1])
        _t_51 = _t_45[1]
        def B_B_branchy(dout_5, *, _t_50=_t_50, _t_48=_t_48, _t_49=_t_49, _t=_t, _t_46=_t_46, _t_51=_t_51, _t_28=_t_28, _t_26=_t_26, _t_29=_t_29):
            _t_52 = (_rt.ZERO,) * 3 if dout_5 is _rt.ZERO else tuple(dout_5)
            d_d_y_2 = _t_52[2]
            d_d_x_2 = _t_52[1]
            _t_53 = _rt.gadd(_rt.tuple_sens(_rt.gadd(_rt.tuple_sens(d_d_y_2, 1, _t_50), _rt.tuple_sens(d_d_x_2, 0, _t_50)), 2, _t_48), _rt.tuple_sens(_rt.gadd(_rt.tuple_sens(d_d_y_2, 1, _t_49), _rt.tuple_sens(d_d_x_2, 0, _t_49)), 1, _t_48))
            _t_54 = (((((_rt.ZERO,) * 3 if _t_53 is _rt.ZERO else tuple(_t_53))[1],),) if _t else ((((_rt.ZERO,) * 3 if _t_53 is _rt.ZERO else tuple(_t_53))[2],),))[0]
            _t_55 = (_rt.ZERO, _t_54, _rt.ZERO) if _t else (_rt.ZERO, _rt.ZERO, _t_54)
            _t_56 = _t_51(_rt.tuple_sens(_rt.gadd(_t_55[1][0], _t_55[2][0]), 0, _t_46))
            d_d_z = _t_56[1]
            _t_57 = _rt.gadd(_rt.tuple_sens(d_d_z, 1, _t_28), _rt.tuple_sens(d_d_z, 0, _t_28))
            if _t_26:
                _t_59 = _rt.sens_of(((_rt.ZERO,) * 2 if _t_57 is _rt.ZERO else tuple(_t_57))[0], _t_29[0])
                k_2 = _t_29[1]
                _t_58 = _rt.ZERO if _t_59 is _rt.ZERO else tuple(_t_59) * k_2, _rt.ZERO
            else:
                _t_60 = _t_29[0](_t_57)
                _t_61 = _t_60[0]
                _t_62 = (_rt.ZERO, _t_61, _rt.ZERO) if _t_29[1] else (_rt.ZERO, _rt.ZERO, _t_61)
                _t_63 = _t_62[1]
                _t_64 = _t_62[2]
                d_z_8 = _rt.gadd(_t_63[1], _t_64[1])
                _t_58 = d_z_8, _rt.gadd(_t_63[0], _t_64[0])
            _t_65 = (_rt.ZERO, _t_58, _rt.ZERO) if _t_26 else (_rt.ZERO, _rt.ZERO, _t_58)
            _t_66 = _t_65[1]
            _t_67 = _t_65[2]
            d_z_9 = _rt.gadd(_t_66[1], _t_67[0])
            return (d_z_9, _rt.ZERO, _t_56[0], _t_55[0]), _rt.gadd(_t_66[0], _t_67[1])
        return ((), d_x, d_y), B_B_branchy
    seed = _rt.ones_like_output(_t_25)
    _t_68 = J_B_branchy(seed)
    sensitivities_backprop = _t_68[1]
    sensitivities = _t_68[0]
    _t_69 = sensitivities_backprop(_rt.tuple_sens(_rt.from_structure(1.0), 1, sensitivities))
    _t_70 = _rt.tuple_sens(_t_69[0], 1, (_t_24, J_B_branchy))
    _t_71 = (_rt.ZERO,) * 2 if _t_70 is _rt.ZERO else tuple(_t_70)
    _t_72 = _t_71[1]
    _t_73 = _rt.sens_of(_rt.gadd(_t_71[0], _t_72[1]), _t_24)
    if isinstance(z_2, _const_5):
        d_z_10, d_z_11 = _rt.repeat_sens(_t_73, z_2), _rt.ZERO
    else:
        if isinstance(z_2, _const_6):
            d_z_10, d_z_11 = _rt.ZERO, _rt.repeat_sens(_t_73, z_2)
        else:
            _t_74 = _rt.unbroadcast(_t_73 * z_2, z_2)
            d_z_10, d_z_11 = _t_74, _t_74
    d_z_12 = _rt.gadd(_rt.gadd(_t_72[0], d_z_10), d_z_11)
    _t_75 = _rt.gadd(_rt.tuple_sens(_t_72[2], 1, _t_1), _rt.tuple_sens(d_z_12, 0, _t_1))
    if _t:
        _t_77 = (_rt.ZERO,) * 2 if _t_75 is _rt.ZERO else tuple(_t_75)
        _t_78 = _t_77[1]
        d_z_13 = _t_77[0]
        d_z_14 = _rt.gadd(d_z_13, _t_78[1])
        z_3 = _t_2[0]
        _t_79 = _rt.sens_of(d_z_14, z_3)
        d_x_1 = _rt.gadd(_t_78[0], _t_79 * y)
        d_y_1 = _rt.gadd(_t_78[2], _t_79 * x)
        _t_76 = d_x_1, d_y_1
    else:
        _t_80 = (_rt.ZERO,) * 2 if _t_75 is _rt.ZERO else tuple(_t_75)
        _t_81 = _t_80[1]
        d_z_15 = _t_80[0]
        d_z_16 = _rt.gadd(d_z_15, _t_81[0])
        z_4 = _t_2[0]
        _t_82 = _rt.sens_of(d_z_16, z_4)
        d_y_2 = _rt.gadd(_t_81[1], _t_82)
        y_2 = _t_2[1]
        d_y_3 = _rt.gadd(_t_81[2], -_t_82)
        _t_76 = _rt.sens_of(d_y_2, y_2) * y_2, d_y_3
    _t_83 = (((_t_76[0], _t_76[1]),) if _t else ((_t_76[0], _t_76[1]),))[0]
    _t_84 = (_rt.ZERO, _t_83, _rt.ZERO) if _t else (_rt.ZERO, _rt.ZERO, _t_83)
    d_x_2 = _rt.gadd(_t_84[1][0], _t_84[2][0])
    return _rt.to_structure(d_x_2, x)


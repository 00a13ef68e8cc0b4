def grad_grad_branchy(x, y):
    def J_J_if_false(*, x=x, y=y):
        y_1 = math.exp(x)
        z = y_1 - y
        def B_J_if_false(dout, *, z=z, y_1=y_1):
            _t = (_rt.ZERO,) * 2 if dout is _rt.ZERO else tuple(dout)
            _t_1 = _t[1]
            d_z = _t[0]
            d_z_1 = _rt.gadd(d_z, _t_1[0])
            _t_2 = _rt.sens_of(d_z_1, z)
            d_y = _rt.gadd(_t_1[1], _t_2)
            d_y_1 = _rt.gadd(_t_1[2], -_t_2)
            return ((_rt.sens_of(d_y, y_1) * y_1, d_y_1),)
        def J_B_if_false(d_z_2, *, z=z, y_1=y_1):
            _t_3 = _rt.sens_of(d_z_2, z)
            _t_4 = _rt.sens_of(_t_3, y_1)
            _t_5 = _t_4 * y_1
            _t_6 = -_t_3
            _t_7 = (_t_5,)
            _t_8 = _t_3, _t_6
            def B_B_if_false(dout_1, *, _t_7=_t_7, _t_5=_t_5, _t_4=_t_4, _t_8=_t_8, y_1=y_1, _t_6=_t_6, _t_3=_t_3):
                _t_9 = ((_rt.ZERO,) * 1 if dout_1 is _rt.ZERO else tuple(dout_1))[0]
                _t_10 = (_rt.ZERO,) * 2 if _t_9 is _rt.ZERO else tuple(_t_9)
                d_d_x = _t_10[0]
                _t_11 = _rt.tuple_sens(d_d_x, 0, _t_7)
                _t_12 = _rt.sens_of(((_rt.ZERO,) * 1 if _t_11 is _rt.ZERO else tuple(_t_11))[0], _t_5)
                d_d_y = _t_10[1]
                _t_13 = tuple(_rt.gadd(_rt.tuple_sens(d_d_y, 1, _t_8), _rt.tuple_sens(_t_12 * y_1, 0, _t_8)))
                return (_rt.ZERO, _t_12 * _t_4, _rt.ZERO), _rt.gadd(-_rt.sens_of(_rt.broadcast_like(_t_13[1], _t_6), _t_6), _rt.broadcast_like(_t_13[0], _t_3))
            return ((_t_5, _t_6),), B_B_if_false
        return (z, J_B_if_false), B_J_if_false
    def J_J_if_true(*, x=x, y=y):
        z_1 = x * y
        def B_J_if_true(dout_2, *, z_1=z_1, y=y, x=x):
            _t_14 = (_rt.ZERO,) * 2 if dout_2 is _rt.ZERO else tuple(dout_2)
            _t_15 = _t_14[1]
            d_z_3 = _t_14[0]
            d_z_4 = _rt.gadd(d_z_3, _t_15[1])
            _t_16 = _rt.sens_of(d_z_4, z_1)
            d_x = _rt.gadd(_t_15[0], _t_16 * y)
            d_y_2 = _rt.gadd(_t_15[2], _t_16 * x)
            return ((d_x, d_y_2),)
        def J_B_if_true(d_z_5, *, z_1=z_1, y=y, x=x):
            _t_17 = _rt.sens_of(d_z_5, z_1)
            _t_18 = _t_17 * y
            _t_19 = _t_17 * x
            _t_20 = _t_18, _t_19
            def B_B_if_true(dout_3, *, _t_20=_t_20, _t_19=_t_19, _t_17=_t_17, _t_18=_t_18, x=x, y=y):
                _t_21 = ((_rt.ZERO,) * 1 if dout_3 is _rt.ZERO else tuple(dout_3))[0]
                _t_22 = (_rt.ZERO,) * 2 if _t_21 is _rt.ZERO else tuple(_t_21)
                d_d_y_1 = _t_22[1]
                d_d_x_1 = _t_22[0]
                _t_23 = _rt.gadd(_rt.tuple_sens(d_d_y_1, 1, _t_20), _rt.tuple_sens(d_d_x_1, 0, _t_20))
                _t_24 = (_rt.ZERO,) * 2 if _t_23 is _rt.ZERO else tuple(_t_23)
                _t_25 = _rt.sens_of(_rt.broadcast_like(_t_24[1], _t_19), _t_19)
                _t_26 = _rt.sens_of(_rt.broadcast_like(_t_24[0], _t_18), _t_18)
                return (_t_25 * _t_17, _rt.ZERO, _t_26 * _t_17), _t_25 * x + _t_26 * y
            return (_t_20,), B_B_if_true
        return (z_1, J_B_if_true), B_J_if_true
    _t_27 = x > y
    _t_28 = (J_J_if_true, B_if_true_1) if _t_27 else (J_J_if_false, B_if_false_1)
    _t_29 = _t_28[0]()
    _t_30 = _t_29[0]
    z_2 = _t_30[0]
    _t_31 = z_2 * z_2
    _t_32 = _rt.check_scalar_output(_t_31)
    z_backprop = _t_30[1]
    def J_B_branchy(dout_4, *, z_2=z_2, _t_31=_t_31, z_backprop=z_backprop, _t_27=_t_27):
        _t_33 = isinstance(z_2, _const)
        _t_34 = _rt.sens_of(dout_4, _t_31)
        if _t_33:
            _t_37 = _rt.repeat_sens(_t_34, z_2)
            _t_38 = _t_34 is _rt.ZERO
            k = 0 if (_t_38 if _t_38 else len(z_2) == 0) else len(_t_34) // len(z_2)
            def B_if_true_2(dout_5, *, _t_37=_t_37, k=k):
                _t_39 = _rt.sens_of(((_rt.ZERO,) * 2 if dout_5 is _rt.ZERO else tuple(dout_5))[0], _t_37)
                return ((_rt.ZERO if _t_39 is _rt.ZERO else tuple(_t_39) * k, _rt.ZERO),)
            _t_35, _t_36 = (_t_37, _rt.ZERO), B_if_true_2
        else:
            _t_40 = isinstance(z_2, _const_1)
            if _t_40:
                _t_43 = _rt.repeat_sens(_t_34, z_2)
                _t_44 = _t_34 is _rt.ZERO
                k_1 = 0 if (_t_44 if _t_44 else len(z_2) == 0) else len(_t_34) // len(z_2)
                def B_if_true_3(dout_6, *, _t_43=_t_43, k_1=k_1):
                    _t_45 = _rt.sens_of(((_rt.ZERO,) * 2 if dout_6 is _rt.ZERO else tuple(dout_6))[1], _t_43)
                    return ((_rt.ZERO if _t_45 is _rt.ZERO else tuple(_t_45) * k_1, _rt.ZERO),)
                _t_41, _t_42 = (_rt.ZERO, _t_43), B_if_true_3
            else:
                _t_46 = _t_34 * z_2
                def B_if_false_2(dout_7, *, _t_34=_t_34, _t_46=_t_46, z_2=z_2):
                    _t_47 = (_rt.ZERO,) * 2 if dout_7 is _rt.ZERO else tuple(dout_7)
                    _t_48 = _rt.sens_of(_rt.broadcast_like(_t_47[1], _t_46), _t_46)
                    _t_49 = (_rt.repeat_sens(_t_48, _t_34), _rt.ZERO) if isinstance(_t_34, _const_2) else ((_rt.ZERO, _rt.repeat_sens(_t_48, z_2)) if isinstance(z_2, _const_3) else (_rt.unbroadcast(_t_48 * z_2, _t_34), _rt.unbroadcast(_t_48 * _t_34, z_2)))
                    _t_50 = _rt.sens_of(_rt.broadcast_like(_t_47[0], _t_46), _t_46)
                    _t_51 = (_rt.repeat_sens(_t_50, _t_34), _rt.ZERO) if isinstance(_t_34, _const_2) else ((_rt.ZERO, _rt.repeat_sens(_t_50, z_2)) if isinstance(z_2, _const_4) else (_rt.unbroadcast(_t_50 * z_2, _t_34), _rt.unbroadcast(_t_50 * _t_34, z_2)))
                    d_z_6 = _t_49[1]
                    d_z_7 = _t_51[1]
                    d_z_8 = _rt.gadd(d_z_6, d_z_7)
                    return ((_rt.gadd(_t_49[0], _t_51[0]), d_z_8),)
                _t_52 = _rt.unbroadcast(_t_46, z_2)
                _t_41, _t_42 = (_t_52, _t_52), B_if_false_2
            def B_if_false_3(dout_8, *, _t_42=_t_42, _t_40=_t_40):
                _t_53 = _t_42(dout_8)
                _t_54 = _t_53[0]
                _t_55 = (_rt.ZERO, _t_54, _rt.ZERO) if _t_40 else (_rt.ZERO, _rt.ZERO, _t_54)
                _t_56 = _t_55[1]
                _t_57 = _t_55[2]
                d_z_9 = _rt.gadd(_t_56[1], _t_57[1])
                return ((d_z_9, _rt.gadd(_t_56[0], _t_57[0])),)
            _t_35, _t_36 = _t_41, B_if_false_3
        d_z_10 = _t_35[0]
        d_z_11 = _t_35[1]
        d_z_12 = _rt.gadd(d_z_10, d_z_11)
        _t_58 = z_backprop(d_z_12)
        _t_59 = _t_58[0]
        _t_60 = _t_59[0]
        _t_61 = ((_rt.ZERO, _t_60, _rt.ZERO), B_if_true) if _t_27 else ((_rt.ZERO, _rt.ZERO, _t_60), B_if_false)
        _t_62 = _t_61[0]
        _t_63 = _t_62[1]
        _t_64 = _t_62[2]
        d_x_1 = _rt.gadd(_t_63[0], _t_64[0])
        d_y_3 = _rt.gadd(_t_63[1], _t_64[1])
        _t_65 = _t_61[1]
        _t_66 = _t_58[1]
        def B_B_branchy(dout_9, *, _t_64=_t_64, _t_62=_t_62, _t_63=_t_63, _t_65=_t_65, _t_27=_t_27, _t_59=_t_59, _t_66=_t_66, _t_35=_t_35, _t_36=_t_36, _t_33=_t_33):
            _t_67 = (_rt.ZERO,) * 3 if dout_9 is _rt.ZERO else tuple(dout_9)
            d_d_y_2 = _t_67[2]
            d_d_x_2 = _t_67[1]
            _t_68 = _t_65(_rt.gadd(_rt.tuple_sens(_rt.gadd(_rt.tuple_sens(d_d_y_2, 1, _t_64), _rt.tuple_sens(d_d_x_2, 0, _t_64)), 2, _t_62), _rt.tuple_sens(_rt.gadd(_rt.tuple_sens(d_d_y_2, 1, _t_63), _rt.tuple_sens(d_d_x_2, 0, _t_63)), 1, _t_62)))
            _t_69 = _t_68[0]
            _t_70 = (_rt.ZERO, _t_69, _rt.ZERO) if _t_27 else (_rt.ZERO, _rt.ZERO, _t_69)
            _t_71 = _t_66(_rt.tuple_sens(_rt.gadd(_t_70[1][0], _t_70[2][0]), 0, _t_59))
            d_d_z = _t_71[1]
            _t_72 = _t_36(_rt.gadd(_rt.tuple_sens(d_d_z, 1, _t_35), _rt.tuple_sens(d_d_z, 0, _t_35)))
            _t_73 = _t_72[0]
            _t_74 = (_rt.ZERO, _t_73, _rt.ZERO) if _t_33 else (_rt.ZERO, _rt.ZERO, _t_73)
            _t_75 = _t_74[1]
            _t_76 = _t_74[2]
            d_z_13 = _rt.gadd(_t_75[1], _t_76[0])
            return (d_z_13, _rt.ZERO, _t_71[0], _t_70[0]), _rt.gadd(_t_75[0], _t_76[1])
        return ((), d_x_1, d_y_3), B_B_branchy
    seed = _rt.ones_like_output(_t_32)
    _t_77 = J_B_branchy(seed)
    sensitivities_backprop = _t_77[1]
    sensitivities = _t_77[0]
    _t_78 = sensitivities_backprop(_rt.tuple_sens(_rt.from_structure(1.0), 1, sensitivities))
    _t_79 = _rt.tuple_sens(_t_78[0], 1, (_t_31, J_B_branchy))
    _t_80 = (_rt.ZERO,) * 2 if _t_79 is _rt.ZERO else tuple(_t_79)
    _t_81 = _t_80[1]
    _t_82 = _rt.sens_of(_rt.gadd(_t_80[0], _t_81[1]), _t_31)
    if isinstance(z_2, _const_5):
        d_z_14, d_z_15 = _rt.repeat_sens(_t_82, z_2), _rt.ZERO
    else:
        if isinstance(z_2, _const_6):
            d_z_14, d_z_15 = _rt.ZERO, _rt.repeat_sens(_t_82, z_2)
        else:
            _t_83 = _rt.unbroadcast(_t_82 * z_2, z_2)
            d_z_14, d_z_15 = _t_83, _t_83
    d_z_16 = _rt.gadd(_rt.gadd(_t_81[0], d_z_14), d_z_15)
    _t_84 = _t_29[1](_rt.gadd(_rt.tuple_sens(_t_81[2], 1, _t_30), _rt.tuple_sens(d_z_16, 0, _t_30)))
    _t_85 = _t_28[1](_t_84[0])
    _t_86 = _t_85[0]
    _t_87 = (_rt.ZERO, _t_86, _rt.ZERO) if _t_27 else (_rt.ZERO, _rt.ZERO, _t_86)
    d_x_2 = _rt.gadd(_t_87[1][0], _t_87[2][0])
    return _rt.to_structure(d_x_2, x)

def B_if_false(dout_10):
    return ((((_rt.ZERO,) * 3 if dout_10 is _rt.ZERO else tuple(dout_10))[2],),)

def B_if_true(dout_11):
    return ((((_rt.ZERO,) * 3 if dout_11 is _rt.ZERO else tuple(dout_11))[1],),)

def B_if_false_1(dout_12):
    return ((dout_12[0], dout_12[1]),)

def B_if_true_1(dout_13):
    return ((dout_13[0], dout_13[1]),)


def grad_branchy(x, y):
    _t = x > y
    if _t:
        z_1 = x * y
        def B_if_true(d_z, *, z_1=z_1, y=y, x=x):
            _t_1 = _rt.sens_of(d_z, z_1)
            return ((_t_1 * y, _t_1 * x),)
        z, z_backprop = z_1, B_if_true
    else:
        y_1 = math.exp(x)
        z_2 = y_1 - y
        def B_if_false(d_z_1, *, z_2=z_2, y_1=y_1):
            _t_2 = _rt.sens_of(d_z_1, z_2)
            return ((_rt.sens_of(_t_2, y_1) * y_1, -_t_2),)
        z, z_backprop = z_2, B_if_false
    d_z_2 = z + z
    _t_3 = z_backprop(d_z_2)
    _t_4 = _t_3[0]
    _t_5 = (_rt.ZERO, _t_4, _rt.ZERO) if _t else (_rt.ZERO, _rt.ZERO, _t_4)
    _t_6 = _t_5[1]
    _t_7 = _t_5[2]
    d_x = _rt.gadd(_t_6[0], _t_7[0])
    d_x_1 = _rt.to_structure(d_x, x)
    d_y = _rt.gadd(_t_6[1], _t_7[1])
    d_y_1 = _rt.to_structure(d_y, y)
    return d_x_1, d_y_1


def grad_branchy(x, y):
    _t = x > y
    if _t:
        z_1 = x * y
        z, z_backprop = z_1, (_rt.ZERO,)
    else:
        y_1 = math.exp(x)
        z_2 = y_1 - y
        z, z_backprop = z_2, (_rt.ZERO, y_1)
    d_z = z + z
    if _t:
        _t_1 = d_z * y, d_z * x
    else:
        y_2 = z_backprop[1]
        d_x = d_z * y_2
        _t_1 = d_x, -d_z
    _t_2 = (_rt.ZERO, _t_1, _rt.ZERO) if _t else (_rt.ZERO, _rt.ZERO, _t_1)
    _t_3 = _t_2[1]
    _t_4 = _t_2[2]
    d_x_1 = _rt.gadd(_t_3[0], _t_4[0])
    d_x_1 = _rt.to_structure(d_x_1, x)
    d_y = _rt.gadd(_t_3[1], _t_4[1])
    d_y = _rt.to_structure(d_y, y)
    return d_x_1, d_y


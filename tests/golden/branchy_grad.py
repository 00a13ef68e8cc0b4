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
        d_x, d_y = d_z * y, d_z * x
    else:
        y_2 = z_backprop[1]
        d_x_1 = d_z * y_2
        d_x, d_y = d_x_1, -d_z
    return d_x, d_y


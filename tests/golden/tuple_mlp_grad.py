def grad_tuple_mlp(params, x, y):
    _t = params[0]
    w1 = _t[0]
    b1 = _t[1]
    y_1 = np.tanh(x @ w1 + b1)
    _t_1 = params[1]
    w2 = _t_1[0]
    b2 = _t_1[1]
    out = y_1 @ w2 + b2
    _t_2 = out - y
    out_1 = _t_2 ** 2
    _t_3 = _rt.expand_reduced(1.0, out_1, None, False) / 32 * 2 * _t_2 ** 1
    _t_4 = _t_3 @ w2.T * (1.0 - y_1 * y_1)
    return (x.T @ _t_4, np.sum(_t_4, axis=0)), (y_1.T @ _t_3, np.sum(_t_3, axis=0))


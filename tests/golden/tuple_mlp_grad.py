def grad_tuple_mlp(params, x, y):
    _t = params[0]
    w1 = _t[0]
    b1 = _t[1]
    h = np.tanh(x @ w1 + b1)
    _t_1 = params[1]
    w2 = _t_1[0]
    b2 = _t_1[1]
    out = h @ w2 + b2
    _t_2 = 0.0625 * (out - y)
    _t_3 = _t_2 @ w2.T * (1.0 - h * h)
    return (x.T @ _t_3, _t_3.sum(axis=0)), (h.T @ _t_2, _t_2.sum(axis=0))


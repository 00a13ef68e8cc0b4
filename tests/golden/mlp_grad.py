def grad_mlp(W1, b1, W2, b2, X):
    y = np.tanh(W1 @ X + b1)
    y_1 = np.tanh(W2 @ y + b2)
    _t = 1.0 - y_1 * y_1
    _t_1 = W2.T @ _t * (1.0 - y * y)
    return _t_1 @ X.T, np.sum(_t_1, axis=1, keepdims=True), _t @ y.T, np.sum(_t, axis=1, keepdims=True)


def grad_mixture_log_likelihood(scores, alpha):
    mx = np.max(scores, axis=0, keepdims=True)
    y = np.exp(scores - mx)
    mx_1 = np.max(alpha, axis=0, keepdims=True)
    y_1 = np.exp(alpha - mx_1)
    return (1.0 / y.sum(axis=0))[None, :] * y, -7.0 / y_1.sum(axis=0) * y_1


def grad_mixture_log_likelihood(scores, alpha):
    mx = np.max(scores, axis=0, keepdims=True)
    y = np.exp(scores - mx)
    mx_1 = np.max(alpha, axis=0, keepdims=True)
    y_1 = np.exp(alpha - mx_1)
    return np.expand_dims(1.0 / np.sum(y, axis=0), 0) * y, -7.0 / np.sum(y_1, axis=0) * y_1


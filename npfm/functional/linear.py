"""The affine layer, the workhorse of every transformer.

Forward, for x with any leading axes flattened to N rows:

    y = x @ W + b                  x: (N, in)   W: (in, out)   b: (out,)

Backward, reversing that one line:

    dx = dy @ W^T                  (N, in)
    dW = x^T @ dy                  (in, out)    one matrix product over all N rows
    db = sum over rows of dy       (out,)
"""



def linear_forward(x, W, b=None):
    """y = x @ W + b over the last axis of x.

    x: (..., in)   W: (in, out)   b: (out,) or None   ->   y: (..., out), cache
    """
    x2d = x.reshape(-1, W.shape[0])                        # (N, in): every row in one product
    y = x2d @ W                                            # (N, out)
    if b is not None:
        y = y + b
    return y.reshape(*x.shape[:-1], W.shape[1]), (x, W, b is not None)   # (..., out)


def linear_backward(dy, cache):
    """dy: (..., out) -> dx (..., in), dW (in, out), db (out,) or None without bias."""
    x, W, has_bias = cache
    x2d = x.reshape(-1, W.shape[0])                        # (N, in)
    dy2d = dy.reshape(-1, W.shape[1])                      # (N, out)
    dx = (dy2d @ W.T).reshape(x.shape)                     # (..., in)
    dW = x2d.T @ dy2d                                      # (in, out)
    db = dy2d.sum(axis=0) if has_bias else None            # (out,)
    return dx, dW, db

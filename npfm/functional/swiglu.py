"""SwiGLU (Shazeer, 2020), the feed-forward network of Llama.

A gated linear unit: one projection of x, passed through SiLU, gates another
projection of x elementwise, and a third projection maps back to the width:

    a = x @ W1                  gate pre-activation          (..., F)
    u = x @ W3                  the "up" projection          (..., F)
    h = silu(a) * u                                          (..., F)
    y = h @ W2                  the "down" projection        (..., C)

W1, W3: (C, F), W2: (F, C), no biases (Llama's w1, w3, w2; the names of the
Module's Parameters say what they do: W_gate, W_up, W_down). Llama takes
F of about 8/3 C so that three matrices cost what GELU's two of 4 C do.

Backward, reversing the four lines:

    dh = dy @ W2^T              dW2 = h^T dy                 (rows of all leading axes)
    du = dh * silu(a)           da  = silu'(a) * (dh * u)
    dW3 = x^T du                dW1 = x^T da
    dx = da @ W1^T + du @ W3^T  (x feeds both branches: their gradients add)

with silu'(a) = s (1 + a (1 - s)), s = sigmoid(a) (see ``silu.py``).
"""



from .silu import silu_backward, silu_forward


def swiglu_forward(x, W1, W3, W2):
    """y = (silu(x @ W1) * (x @ W3)) @ W2 over the last axis of x.

    x: (..., C)   W1, W3: (C, F)   W2: (F, C)   ->   y: (..., C), cache
    """
    a = x @ W1                                                     # (..., F)
    s, silu_cache = silu_forward(a)                                # (..., F)
    u = x @ W3                                                     # (..., F)
    h = s * u                                                      # (..., F)
    return h @ W2, (x, W1, W3, W2, s, silu_cache, u, h)


def swiglu_backward(dy, cache):
    """dy: (..., C) -> dx (..., C), dW1 (C, F), dW3 (C, F), dW2 (F, C)."""
    x, W1, W3, W2, s, silu_cache, u, h = cache
    C, F = W1.shape
    dy2 = dy.reshape(-1, C)                                        # (N, C)
    dh = dy @ W2.T                                                 # (..., F)
    dW2 = h.reshape(-1, F).T @ dy2                                 # (F, C)
    du = dh * s                                                    # (..., F)
    da = silu_backward(dh * u, silu_cache)                         # (..., F)
    x2 = x.reshape(-1, C)                                          # (N, C)
    dW1 = x2.T @ da.reshape(-1, F)                                 # (C, F)
    dW3 = x2.T @ du.reshape(-1, F)                                 # (C, F)
    dx = da @ W1.T + du @ W3.T                                     # (..., C)
    return dx, dW1, dW3, dW2

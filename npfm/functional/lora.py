"""LoRA: low-rank adaptation of a frozen Linear (Hu et al., 2021).

Fine-tuning changes a pre-trained weight by a matrix of low "intrinsic
rank". LoRA trains that change directly, as a product of two thin matrices,
and leaves the pre-trained W and b frozen:

    y = x @ W + b + scale * (x @ A) @ B        scale = alpha / r

    x: (N, C_in)   W: (C_in, C_out)   A: (C_in, r)   B: (r, C_out)

A starts random and B at zero, so the adapted layer starts equal to the base
one and the first step already moves B (A's gradient, through B, is zero
then). Dividing by r keeps the update's size about the same when r changes,
so alpha need not be retuned. It trains r (C_in + C_out) numbers instead of
C_in C_out. (The paper writes W x + (alpha / r) B A x for column vectors; in
npfm's row layout x @ W its A and B are our A^T and B^T, transposed.)

Backward. With u = x @ A (N, r), the three terms give

    dW = x^T dy        db = sum over rows of dy           (frozen: not used)
    dB = scale * u^T dy
    du = scale * dy @ B^T           dA = x^T du
    dx = dy @ W^T + du @ A^T

For export the adapter folds back into one matrix: W' = W + scale * A @ B
gives exactly the same outputs (``LoRALinear.merge``).
"""




def lora_forward(x, W, b, A, B, scale):
    """y = x @ W + b + scale * (x @ A) @ B over the last axis of x (b may be None).

    x: (..., C_in)   W: (C_in, C_out)   b: (C_out,) or None   A: (C_in, r)   B: (r, C_out)
    ->   y: (..., C_out), cache
    """
    u = x @ A                                                      # (..., r)
    y = x @ W + scale * (u @ B)                                    # (..., C_out)
    if b is not None:
        y = y + b                                                  # (..., C_out)
    return y, (x, W, b is not None, A, B, scale, u)


def lora_backward(dy, cache):
    """dy: (..., C_out) -> dx (..., C_in), dW (C_in, C_out), db (C_out,) or None,
    dA (C_in, r), dB (r, C_out)."""
    x, W, has_bias, A, B, scale, u = cache
    C_in, C_out = W.shape
    dy2 = dy.reshape(-1, C_out)                                    # (N, C_out)
    x2 = x.reshape(-1, C_in)                                       # (N, C_in)
    dW = x2.T @ dy2                                                # (C_in, C_out)
    db = dy2.sum(axis=0) if has_bias else None                     # (C_out,)
    dB = scale * (u.reshape(-1, u.shape[-1]).T @ dy2)              # (r, C_out)
    du = scale * (dy @ B.T)                                        # (..., r)
    dA = x2.T @ du.reshape(-1, B.shape[0])                         # (C_in, r)
    dx = dy @ W.T + du @ A.T                                       # (..., C_in)
    return dx, dW, db, dA, dB

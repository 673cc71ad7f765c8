"""Every concept as a pure pair, in one namespace for students and graders.

    y, cache = thing_forward(x, *params, ...)
    dx, *dparams = thing_backward(dy, cache)

No state and no globals: the pairs are the textbook pages, and the unit a
student implements in the coursework.
"""

from .layers.activations import (gelu_backward, gelu_forward, relu_backward, relu_forward,
                                 tanh_backward, tanh_forward)
from .layers.attention import attention_backward, attention_forward, causal_mask
from .layers.clip_loss import (clip_loss_backward, clip_loss_forward, l2_normalize_backward,
                               l2_normalize_forward)
from .layers.dropout import dropout_backward, dropout_forward
from .layers.embedding import embedding_backward, embedding_forward
from .layers.layernorm import layernorm_backward, layernorm_forward
from .layers.linear import linear_backward, linear_forward
from .layers.positional import sinusoidal_positions
from .layers.softmax import softmax_backward, softmax_forward
from .losses import cross_entropy_backward, cross_entropy_forward

__all__ = [
    "linear_forward", "linear_backward",
    "embedding_forward", "embedding_backward",
    "sinusoidal_positions",
    "layernorm_forward", "layernorm_backward",
    "gelu_forward", "gelu_backward", "relu_forward", "relu_backward",
    "tanh_forward", "tanh_backward",
    "softmax_forward", "softmax_backward",
    "dropout_forward", "dropout_backward",
    "attention_forward", "attention_backward", "causal_mask",
    "cross_entropy_forward", "cross_entropy_backward",
    "l2_normalize_forward", "l2_normalize_backward", "clip_loss_forward", "clip_loss_backward",
]

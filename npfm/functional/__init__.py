"""The textbook floor: every concept as a pure pair, the math alone.

    y, cache = thing_forward(x, *params, ...)
    dx, *dparams = thing_backward(dy, cache)

No state, no globals, no threads, no buffers, no input checks beyond what
the math needs: each file is the page a student reads, and each pair the
unit an assignment hands out. What a pair keeps in its cache is its own
business: nothing outside the pair reads it.

The Modules (``npfm.nn``) check their inputs and call these pairs, or the
fast kernels of ``npfm.fast`` (the same contracts, proven equal) unless
``npfm.use_reference()`` asks for the textbook alone.
"""

from .activations import (gelu_backward, gelu_forward, relu_backward, relu_forward,
                          tanh_backward, tanh_forward)
from .attention import attention_backward, attention_forward, attention_weights, causal_mask
from .clip_loss import clip_loss_backward, clip_loss_forward
from .cross_entropy import cross_entropy_backward, cross_entropy_forward
from .dropout import dropout_backward, dropout_forward
from .embedding import embedding_backward, embedding_forward
from .erf import erf, erfc
from .l2_normalize import l2_normalize_backward, l2_normalize_forward
from .layernorm import layernorm_backward, layernorm_forward
from .linear import linear_backward, linear_forward
from .lora import lora_backward, lora_forward
from .positional import (positional_embedding_backward, positional_embedding_forward,
                         sinusoidal_positions)
from .rmsnorm import rmsnorm_backward, rmsnorm_forward
from .rope import rope_backward, rope_forward, rope_tables, rotate_half
from .silu import silu_backward, silu_forward
from .softmax import log_softmax, softmax_backward, softmax_forward
from .swiglu import swiglu_backward, swiglu_forward

__all__ = [
    "linear_forward", "linear_backward",
    "embedding_forward", "embedding_backward",
    "sinusoidal_positions", "positional_embedding_forward", "positional_embedding_backward",
    "layernorm_forward", "layernorm_backward",
    "gelu_forward", "gelu_backward", "relu_forward", "relu_backward",
    "tanh_forward", "tanh_backward", "erf", "erfc",
    "softmax_forward", "softmax_backward", "log_softmax",
    "dropout_forward", "dropout_backward",
    "attention_forward", "attention_backward", "attention_weights", "causal_mask",
    "cross_entropy_forward", "cross_entropy_backward",
    "l2_normalize_forward", "l2_normalize_backward", "clip_loss_forward", "clip_loss_backward",
    "rmsnorm_forward", "rmsnorm_backward", "rope_forward", "rope_backward", "rope_tables",
    "rotate_half", "silu_forward", "silu_backward", "swiglu_forward", "swiglu_backward",
    "lora_forward", "lora_backward",
]

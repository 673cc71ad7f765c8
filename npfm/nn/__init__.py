"""The Modules: each checks its inputs, owns its Parameters, and runs its
concept's pair (the fast kernel when there is one, else the textbook pair;
see ``npfm.fast.pair``), keeping the cache for its backward."""

from ..core import Module, Parameter
from .activations import GELU, ReLU, Tanh
from .attention import KVCache, MultiHeadAttention
from .block import TransformerBlock
from .clip_loss import CLIPLoss
from .cross_entropy import CrossEntropyLoss
from .dropout import Dropout
from .embedding import Embedding
from .feedforward import FeedForward
from .layernorm import LayerNorm
from .linear import Linear
from .lora import LoRALinear, add_lora, merge_lora
from .positional import PositionalEmbedding, SinusoidalPositionalEncoding
from .rmsnorm import RMSNorm
from .rope import RoPE
from .silu import SiLU
from .softmax import Softmax
from .swiglu import SwiGLU

__all__ = [
    "Module", "Parameter", "Linear", "Embedding", "PositionalEmbedding",
    "SinusoidalPositionalEncoding", "LayerNorm", "GELU", "ReLU", "Tanh", "Softmax", "Dropout",
    "MultiHeadAttention", "KVCache", "FeedForward", "TransformerBlock", "CrossEntropyLoss",
    "CLIPLoss", "RMSNorm", "RoPE", "SiLU", "SwiGLU", "LoRALinear", "add_lora", "merge_lora",
]

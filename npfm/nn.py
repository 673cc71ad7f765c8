"""The Modules over the pairs: each owns its Parameters and its last cache."""

from .core import Module, Parameter
from .layers.activations import GELU, ReLU, Tanh
from .layers.attention import KVCache, MultiHeadAttention
from .layers.block import TransformerBlock
from .layers.clip_loss import CLIPLoss
from .layers.dropout import Dropout
from .layers.embedding import Embedding
from .layers.feedforward import FeedForward
from .layers.layernorm import LayerNorm
from .layers.linear import Linear
from .layers.positional import PositionalEmbedding, SinusoidalPositionalEncoding
from .losses import CrossEntropyLoss

__all__ = [
    "Module", "Parameter", "Linear", "Embedding", "PositionalEmbedding",
    "SinusoidalPositionalEncoding", "LayerNorm", "GELU", "ReLU", "Tanh", "Dropout",
    "MultiHeadAttention", "KVCache", "FeedForward", "TransformerBlock", "CrossEntropyLoss", "CLIPLoss",
]

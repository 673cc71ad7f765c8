"""Parameter and Module: the protocol every layer and model follows.

A Module owns Parameters and sub-Modules. ``forward`` computes the output and
keeps whatever the backward pass needs (the *cache*); ``backward(dy)`` takes
the gradient of the loss with respect to the output and

* returns the gradient with respect to each (float) input, and
* **adds** the gradient of each Parameter into ``param.grad``.

Gradients accumulate (``+=``) so that a Parameter used twice (a tied
embedding and LM head) receives the sum of both contributions; call
``zero_grad()`` before each step.
"""

from __future__ import annotations

import numpy as np

DEFAULT_DTYPE = np.float32


class Parameter:
    """A trainable array and the gradient accumulated for it.

    ``data`` and ``grad`` always have the same shape and dtype. ``decay`` says
    whether AdamW's weight decay applies: by default only to matrices
    (ndim >= 2); embeddings and LayerNorm pass ``decay=False``.
    ``trainable`` False freezes the Parameter: optimizers leave it unchanged
    (no update, no decay), ``param_groups`` and ``clip_grad_norm`` skip it, and
    a Module may skip computing its gradient (LoRA freezes the wrapped weight).
    """

    def __init__(self, data, decay=None, trainable=True):
        data = np.asarray(data)
        if not np.issubdtype(data.dtype, np.floating):
            raise TypeError(f"Parameter data must be a float array, got dtype {data.dtype}")
        self.data = data
        self.grad = np.zeros_like(data)
        self.decay = data.ndim >= 2 if decay is None else bool(decay)
        self.trainable = bool(trainable)

    @property
    def shape(self):
        return self.data.shape

    @property
    def dtype(self):
        return self.data.dtype

    @property
    def size(self):
        return self.data.size

    def astype(self, dtype):
        """Cast data (and reset grad) to ``dtype`` in place."""
        self.data = self.data.astype(dtype)
        self.grad = np.zeros_like(self.data)
        return self

    def __repr__(self):
        return f"Parameter(shape={self.data.shape}, dtype={self.data.dtype})"


class Module:
    """Base class of every layer and model.

    Sub-classes set Parameters and sub-Modules as attributes (lists of Modules
    are allowed and named ``blocks.0``, ``blocks.1``, ...) and implement
    ``forward`` and ``backward``.

    Calling ``backward`` twice after one ``forward`` adds the gradients twice
    (each call ``+=`` into ``param.grad``; the cache is not consumed). This is
    what makes tied weights and gradient accumulation over micro-batches work,
    and it is why the training loop calls ``zero_grad()`` before every step;
    micrograd's issue #53 is the same behaviour, there reported as a surprise.
    """

    training = True

    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    def forward(self, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__}.forward is not implemented")

    def backward(self, dy):
        raise NotImplementedError(f"{type(self).__name__}.backward is not implemented")

    def infer(self, *args, **kwargs):
        """forward's output for inference (the one-position decode of generation):
        the same pair on the same arrays, without the input checks and the cache
        a backward would need. Modules on the decode path override it."""
        return self.forward(*args, **kwargs)

    # ----- the cache of the last forward ---------------------------------
    def _saved(self):
        """The cache of the last forward; a clear error if there was none."""
        cache = self.__dict__.get("_cache")
        if cache is None:
            raise ValueError(f"{type(self).__name__}.backward called before forward: "
                             "run forward first (backward needs its cache)")
        return cache

    def _check_dy(self, dy, last_dim=None, shape=None):
        """The upstream gradient as a float array of the output's shape, or a clear error."""
        dy = check_array(dy, "dy", min_ndim=0, who=f"{type(self).__name__}.backward")
        if shape is not None and dy.shape != tuple(shape):
            raise ValueError(f"{type(self).__name__}.backward: dy has shape {dy.shape}, "
                             f"the output of forward had shape {tuple(shape)}")
        if last_dim is not None and (dy.ndim == 0 or dy.shape[-1] != last_dim):
            raise ValueError(f"{type(self).__name__}.backward: dy has shape {dy.shape}, "
                             f"expected a last dimension of {last_dim}")
        return dy

    # ----- walking the tree ------------------------------------------------
    def named_children(self):
        """(name, Module) for each direct sub-Module, in attribute order."""
        for name, value in vars(self).items():
            if isinstance(value, Module):
                yield name, value
            elif isinstance(value, (list, tuple)) and value and all(isinstance(v, Module) for v in value):
                for i, v in enumerate(value):
                    yield f"{name}.{i}", v

    def named_modules(self, prefix=""):
        """(dotted name, Module) for this Module and every descendant."""
        yield prefix, self
        for name, child in self.named_children():
            yield from child.named_modules(f"{prefix}.{name}" if prefix else name)

    def named_parameters(self, prefix=""):
        """(dotted name, Parameter) in attribute order, depth first; a Parameter
        reachable under several names (a tied weight) is listed once, under the first."""
        seen = set()

        def walk(module, prefix):
            for name, value in vars(module).items():
                full = f"{prefix}.{name}" if prefix else name
                if isinstance(value, Parameter):
                    if id(value) not in seen:
                        seen.add(id(value))
                        yield full, value
                elif isinstance(value, Module):
                    yield from walk(value, full)
                elif isinstance(value, (list, tuple)) and value and all(isinstance(v, Module) for v in value):
                    for i, v in enumerate(value):
                        yield from walk(v, f"{full}.{i}")

        yield from walk(self, prefix)

    def parameters(self):
        return [p for _, p in self.named_parameters()]

    def num_parameters(self):
        return sum(p.size for p in self.parameters())

    def zero_grad(self):
        for p in self.parameters():
            p.grad.fill(0)

    # ----- modes and dtype ---------------------------------------------------
    def train(self, mode=True):
        for _, module in self.named_modules():
            module.training = mode
        return self

    def eval(self):
        return self.train(False)

    def astype(self, dtype):
        """Cast every Parameter to ``dtype`` (float32 to train, float64 to check)."""
        dtype = np.dtype(dtype)
        for _, module in self.named_modules():
            if "dtype" in vars(module):
                module.dtype = dtype
        for p in self.parameters():
            p.astype(dtype)
        return self

    @property
    def param_dtype(self):
        params = self.parameters()
        return params[0].dtype if params else np.dtype(DEFAULT_DTYPE)

    # ----- state -------------------------------------------------------------
    def state_dict(self):
        """{dotted name: copy of the array}, one entry per distinct Parameter."""
        return {name: p.data.copy() for name, p in self.named_parameters()}

    def load_state_dict(self, state, strict=True):
        """Copy arrays into the Parameters (cast to their float dtype).

        strict: every Parameter must be present and nothing else; shapes must
        always match. Only real floating-point arrays are accepted: an object,
        string, complex, boolean or integer array is refused (casting would turn
        None into NaN, drop imaginary parts, or hide a wrong file).
        Returns (missing, unexpected) names.
        """
        params = dict(self.named_parameters())
        missing = [k for k in params if k not in state]
        unexpected = [k for k in state if k not in params]
        if strict and (missing or unexpected):
            parts = []
            if missing:
                parts.append(f"missing keys {missing}")
            if unexpected:
                parts.append(f"unexpected keys {unexpected}")
            raise ValueError(f"load_state_dict for {type(self).__name__}: " + "; ".join(parts))
        for name, p in params.items():
            if name not in state:
                continue
            value = state[name]
            kind = getattr(getattr(value, "dtype", None), "kind", None)
            if kind != "f":
                what = (f"dtype {value.dtype}" if kind is not None
                        else f"a {type(value).__name__}, not an array")
                raise TypeError(f"load_state_dict: key {name!r} is {what}; a Parameter "
                                f"needs a float array")
            value = np.asarray(value)
            if value.shape != p.shape:
                raise ValueError(f"load_state_dict: key {name!r} has shape {value.shape}, "
                                 f"the model expects {p.shape}")
            p.data = value.astype(p.dtype, copy=True)
            p.grad = np.zeros_like(p.data)
        return missing, unexpected

    def __repr__(self):
        return f"{type(self).__name__}({self.num_parameters():,} parameters)"


# ----- input checks shared by every layer ------------------------------------

def _who(who):
    return f"{who}: " if who else ""


def check_array(x, name="x", min_ndim=1, last_dim=None, who=None):
    """Return ``x`` as a float ndarray or raise a clear error naming the problem."""
    if not isinstance(x, np.ndarray):
        x = np.asarray(x)
    if x.dtype.kind != "f":                       # float16/32/64 (cheaper than issubdtype)
        raise TypeError(f"{_who(who)}{name} must be a float array, got dtype {x.dtype}")
    if x.ndim < min_ndim:
        raise ValueError(f"{_who(who)}{name} must have at least {min_ndim} dimensions, got shape {x.shape}")
    if last_dim is not None and x.shape[-1] != last_dim:
        raise ValueError(f"{_who(who)}{name} has last dimension {x.shape[-1]} (shape {x.shape}), "
                         f"expected {last_dim}")
    return x


def check_ids(ids, vocab_size, name="ids", who=None):
    """Return ``ids`` as an integer ndarray with every id in [0, vocab_size)."""
    who = f"{who}: " if who else ""
    ids = np.asarray(ids)
    if ids.size == 0 and ids.dtype == np.float64:     # np.asarray([]) is float64
        ids = ids.astype(np.int64)
    if ids.dtype == bool or not np.issubdtype(ids.dtype, np.integer):
        raise TypeError(f"{who}{name} must be integers, got dtype {ids.dtype}")
    if ids.size and (ids.min() < 0 or ids.max() >= vocab_size):
        bad = ids[(ids < 0) | (ids >= vocab_size)].ravel()[0]
        raise ValueError(f"{who}{name} contains id {int(bad)} outside the vocabulary "
                         f"[0, {vocab_size})")
    return ids

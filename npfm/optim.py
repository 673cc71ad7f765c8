"""Optimizers, the learning-rate schedule and gradient clipping.

An optimizer changes each Parameter in place from the gradient that the
backward pass accumulated in ``p.grad``. Two are here:

* ``SGD``, with optional momentum (``torch.optim.SGD`` semantics), and
* ``AdamW``, Adam with *decoupled* weight decay (``torch.optim.AdamW``
  semantics, checked against it to ~1e-12 in ``tests/test_torch_optim.py``).

Parameters come in *groups*: a group is a dict ``{"params": [...], "lr": ...,
"weight_decay": ...}`` whose keys override the optimizer's defaults.
``param_groups(model, wd)`` makes the usual two groups: matrices decay,
biases / LayerNorm / embeddings do not.

The training loop around them reads

    lr = warmup_cosine(step, base_lr, warmup_steps, total_steps)
    opt.set_lr(lr)
    model.zero_grad()
    loss = ...forward...; ...backward...
    norm = clip_grad_norm(model.parameters(), max_norm=1.0)
    opt.step()

Updates are computed with in-place operations and Python-float constants, so
a float32 Parameter stays float32 (and costs no float64 temporaries).
"""

from __future__ import annotations

import math

import numpy as np

from .core import Module, Parameter


class Optimizer:
    """Base class: parameter groups, ``zero_grad``, ``set_lr`` and the state.

    params: a list of Parameters, or a list of group dicts
        ``{"params": [...], "lr": ..., "weight_decay": ...}``; a key a group
        leaves out takes the optimizer's default.

    Each Parameter owns the arrays named in ``buffer_names`` (Adam's ``m`` and
    ``v``, SGD's momentum ``b``), shaped and typed like it. A subclass sets
    ``buffer_names`` and writes ``update(w, g, buffers, lr, weight_decay)``,
    which changes the array ``w`` in place; ``step`` calls it for every
    Parameter after counting the step in ``self.t`` (1 at the first step).
    """

    buffer_names = ()

    def __init__(self, params, lr, weight_decay):
        who = type(self).__name__
        defaults = {"lr": _number(lr, "lr", who), "weight_decay": _number(weight_decay, "weight_decay", who)}
        self.param_groups = _make_groups(params, defaults, who)
        self.t = 0
        self.buffers = [{name: np.zeros_like(p.data) for name in self.buffer_names}
                        for p, _ in self._each_param()]

    def update(self, w, g, buffers, lr, weight_decay):
        raise NotImplementedError(f"{type(self).__name__}.update is not implemented")

    def _each_param(self):
        """(Parameter, its group) in a fixed order: the order of the state keys."""
        for group in self.param_groups:
            for p in group["params"]:
                yield p, group

    def step(self):
        """Update every Parameter in place from its ``.grad`` (grads are left as they are)."""
        self.t += 1
        for i, (p, group) in enumerate(self._each_param()):
            if not p.trainable:                 # frozen (e.g. the base weight under LoRA)
                continue
            if p.grad.shape != p.data.shape:
                raise ValueError(f"{type(self).__name__}.step: parameter {i} has grad of shape "
                                 f"{p.grad.shape} but data of shape {p.data.shape}")
            buffers = self.buffers[i]
            for name, buf in buffers.items():
                if buf.dtype != p.data.dtype:   # the model was cast after the optimizer was made
                    buffers[name] = buf.astype(p.data.dtype)
            self.update(p.data, p.grad, buffers, group["lr"], group["weight_decay"])

    def zero_grad(self):
        """Set every Parameter's ``.grad`` to zero (backward passes accumulate into it)."""
        for p, _ in self._each_param():
            p.grad.fill(0)

    def set_lr(self, lr):
        """Set the learning rate of every group (a schedule calls this before each step)."""
        lr = _number(lr, "lr", f"{type(self).__name__}.set_lr")
        for group in self.param_groups:
            group["lr"] = lr

    # ----- state: a flat {name: array} dict that np.savez can store -------------
    def _state_shapes(self):
        """{key: shape} of everything ``state_dict`` holds, in order."""
        shapes = {"t": ()}
        for g in range(len(self.param_groups)):
            shapes[f"lr.{g}"] = ()
            shapes[f"weight_decay.{g}"] = ()
        for name in self.buffer_names:
            for i, (p, _) in enumerate(self._each_param()):
                shapes[f"{name}.{i}"] = p.shape
        return shapes

    def state_dict(self):
        """A flat dict of arrays: ``"t"`` (steps taken), ``"lr.g"`` and
        ``"weight_decay.g"`` per group g (0-d arrays), and ``"<buffer>.i"`` per
        Parameter i (copies). Hyperparameters such as betas belong to the
        training config, not here."""
        state = {"t": np.array(self.t, dtype=np.int64)}
        for g, group in enumerate(self.param_groups):
            state[f"lr.{g}"] = np.array(group["lr"], dtype=np.float64)
            state[f"weight_decay.{g}"] = np.array(group["weight_decay"], dtype=np.float64)
        for name in self.buffer_names:
            for i, buffers in enumerate(self.buffers):
                state[f"{name}.{i}"] = buffers[name].copy()
        return state

    def load_state_dict(self, state):
        """Restore what ``state_dict`` returned, exactly; continue as if never stopped.

        Everything is checked before anything changes: a missing or unexpected
        key (a different number of parameters or groups, another optimizer's
        state) or a wrong shape raises a ValueError naming the key.
        """
        who = f"{type(self).__name__}.load_state_dict"
        if not hasattr(state, "keys"):
            raise TypeError(f"{who}: expected a dict of arrays, got {type(state).__name__}")
        shapes = self._state_shapes()
        missing = [k for k in shapes if k not in state]
        unexpected = [k for k in state if k not in shapes]
        if missing or unexpected:
            parts = [f"{label} key {keys[0]!r}" + (f" (and {len(keys) - 1} more)" if len(keys) > 1 else "")
                     for label, keys in (("missing", missing), ("unexpected", unexpected)) if keys]
            n_params = sum(len(g["params"]) for g in self.param_groups)
            raise ValueError(f"{who}: " + "; ".join(parts) + f". This optimizer has {n_params} "
                             f"parameters in {len(self.param_groups)} groups with buffers "
                             f"{list(self.buffer_names)}: is the state from another model or optimizer?")
        for key, shape in shapes.items():
            value = np.asarray(state[key])
            if value.shape != shape:
                raise ValueError(f"{who}: key {key!r} has shape {value.shape}, expected {shape}")
            if not (np.issubdtype(value.dtype, np.floating) or np.issubdtype(value.dtype, np.integer)):
                raise TypeError(f"{who}: key {key!r} has dtype {value.dtype}, expected numbers")
        t = int(state["t"])
        if t < 0:
            raise ValueError(f"{who}: key 't' is {t}, expected a step count >= 0")
        lrs = [_number(float(state[f"lr.{g}"]), f"lr.{g}", who) for g in range(len(self.param_groups))]
        wds = [_number(float(state[f"weight_decay.{g}"]), f"weight_decay.{g}", who)
               for g in range(len(self.param_groups))]

        self.t = t
        for group, lr, wd in zip(self.param_groups, lrs, wds):
            group["lr"], group["weight_decay"] = lr, wd
        for i, (p, _) in enumerate(self._each_param()):
            for name in self.buffer_names:
                self.buffers[i][name] = np.array(state[f"{name}.{i}"], dtype=p.dtype, copy=True)


class SGD(Optimizer):
    """Stochastic gradient descent with momentum (``torch.optim.SGD`` semantics).

        g = grad + weight_decay * w        (L2 decay, coupled into the gradient)
        b = momentum * b + g               (b starts at 0, so b_1 = g_1)
        w = w - lr * b                     (w - lr * g when momentum = 0)
    """

    def __init__(self, params, lr=0.01, momentum=0.0, weight_decay=0.0):
        self.momentum = _number(momentum, "momentum", "SGD")
        self.buffer_names = ("b",) if self.momentum else ()
        super().__init__(params, lr, weight_decay)

    def update(self, w, g, buffers, lr, weight_decay):
        if weight_decay:
            g = g + weight_decay * w        # a new array: p.grad itself is not changed
        if self.momentum:
            b = buffers["b"]
            b *= self.momentum
            b += g
            g = b
        w -= lr * g


class AdamW(Optimizer):
    """Adam with decoupled weight decay, exactly as ``torch.optim.AdamW``.

    At step t (1, 2, ...) with gradient g:

        w   = w * (1 - lr * weight_decay)          decay, outside the moments
        m   = beta1 * m + (1 - beta1) * g          first moment
        v   = beta2 * v + (1 - beta2) * g^2        second moment
        m^  = m / (1 - beta1^t)                    bias corrections: m, v start at 0
        v^  = v / (1 - beta2^t)
        w   = w - lr * m^ / (sqrt(v^) + eps)

    eps is added to sqrt(v^), after the bias correction, as torch does.
    Decoupled decay shrinks w by the same factor whatever the gradient's
    scale; L2 decay inside g would be divided by sqrt(v^) like the gradient.
    """

    buffer_names = ("m", "v")

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01):
        if len(betas) != 2:
            raise ValueError(f"AdamW: betas must be a pair (beta1, beta2), got {betas!r}")
        self.betas = tuple(_number(b, f"betas[{k}]", "AdamW", upper=1.0) for k, b in enumerate(betas))
        self.eps = _number(eps, "eps", "AdamW")
        super().__init__(params, lr, weight_decay)

    def update(self, w, g, buffers, lr, weight_decay):
        beta1, beta2 = self.betas
        m, v = buffers["m"], buffers["v"]
        if weight_decay:
            w *= 1.0 - lr * weight_decay
        m *= beta1
        m += (1.0 - beta1) * g
        v *= beta2
        v += (1.0 - beta2) * (g * g)
        bias1 = 1.0 - beta1 ** self.t
        bias2 = 1.0 - beta2 ** self.t
        delta = np.sqrt(v)                               # sqrt(v)
        delta /= math.sqrt(bias2)                        # sqrt(v^)
        delta += self.eps
        np.divide(m, delta, out=delta)                   # m / (sqrt(v^) + eps)
        delta *= lr / bias1                              # lr * m^ / (sqrt(v^) + eps)
        w -= delta


def param_groups(module_or_named_params, weight_decay):
    """Split Parameters into the two usual AdamW groups.

    Parameters with ``p.decay`` True (weight matrices) get ``weight_decay``;
    the rest (biases, LayerNorm gains, embeddings: ``decay=False``) get 0.0.
    Decaying a LayerNorm gain towards 0 would fight the normalisation, and an
    embedding row only gets gradient when its token appears, so decay would
    shrink rare tokens for nothing.

    module_or_named_params: a Module, or (name, Parameter) pairs, or Parameters.
    Frozen Parameters (``p.trainable`` False) are left out.
    Returns a list of group dicts for an optimizer; empty groups are dropped.
    """
    weight_decay = _number(weight_decay, "weight_decay", "param_groups")
    if isinstance(module_or_named_params, Module):
        items = module_or_named_params.named_parameters()
    else:
        items = module_or_named_params
    decay, no_decay, seen = [], [], set()
    for item in items:
        p = item if isinstance(item, Parameter) else item[1]
        if not isinstance(p, Parameter):
            raise TypeError(f"param_groups: expected Parameters or (name, Parameter) pairs, "
                            f"got {type(p).__name__}")
        if id(p) in seen or not p.trainable:     # frozen Parameters get no optimizer state
            continue
        seen.add(id(p))
        (decay if p.decay else no_decay).append(p)
    groups = [{"params": decay, "weight_decay": weight_decay},
              {"params": no_decay, "weight_decay": 0.0}]
    return [g for g in groups if g["params"]]


def clip_grad_norm(params, max_norm):
    """Scale all gradients together so that their global L2 norm is at most ``max_norm``.

        total = sqrt(sum over every Parameter of sum(grad^2))
        if max_norm / (total + 1e-6) < 1:  every grad *= max_norm / (total + 1e-6)

    (``torch.nn.utils.clip_grad_norm_``: the 1e-6 guards a zero norm, and one
    factor for all grads keeps the update's direction.) The sum is accumulated
    in float64 so that a float32 model does not lose it to rounding.

    params: Parameters (or a Module); frozen ones (``p.trainable`` False) are
    neither counted nor scaled. Returns the norm *before* clipping as a
    Python float. A non-finite norm (a NaN or inf gradient) is returned and
    nothing is scaled: scaling would spread the NaN to every grad, and the
    caller should decide (typically: skip this step and report it).
    """
    max_norm = _number(max_norm, "max_norm", "clip_grad_norm")
    if isinstance(params, Module):
        params = params.parameters()
    grads = []
    for p in params:
        if not isinstance(p, Parameter):
            raise TypeError(f"clip_grad_norm: expected Parameters, got {type(p).__name__}")
        if p.trainable:                         # a frozen Parameter's grad is never used
            grads.append(p.grad)
    total_sq = 0.0
    for g in grads:
        g64 = g.astype(np.float64, copy=False).ravel()
        total_sq += float(g64 @ g64)
    total = math.sqrt(total_sq)
    if not math.isfinite(total):
        return total
    scale = max_norm / (total + 1e-6)
    if scale < 1.0:
        for g in grads:
            g *= scale
    return total


def warmup_cosine(step, base_lr, warmup_steps, total_steps, min_lr=0.0):
    """Learning rate at ``step`` (0-based): linear warmup, then cosine decay.

        step < W:        lr = base_lr * (step + 1) / W
        W <= step < S:   lr = min_lr + (base_lr - min_lr) * (1 + cos(pi * (step - W) / (S - W))) / 2
        step >= S:       lr = min_lr

    with W = warmup_steps and S = total_steps. Warmup starts at base_lr / W
    (not 0, which would waste the first step) and reaches base_lr at step
    W - 1; the cosine starts from base_lr at step W and reaches min_lr at
    step S, after which the rate stays there. W = 0 means no warmup. Warmup
    keeps Adam's first updates small while its second-moment estimate v is
    still noisy; the slow cosine end lets the weights settle.
    """
    who = "warmup_cosine"
    if isinstance(step, bool) or not isinstance(step, (int, np.integer)) or step < 0:
        raise ValueError(f"{who}: step must be an integer >= 0, got {step!r}")
    base_lr = _number(base_lr, "base_lr", who)
    min_lr = _number(min_lr, "min_lr", who)
    for name, value in (("warmup_steps", warmup_steps), ("total_steps", total_steps)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
            raise ValueError(f"{who}: {name} must be an integer >= 0, got {value!r}")
    if warmup_steps > total_steps:
        raise ValueError(f"{who}: warmup_steps ({warmup_steps}) must not exceed "
                         f"total_steps ({total_steps})")
    if step < warmup_steps:
        return base_lr * (step + 1) / warmup_steps
    if step >= total_steps:
        return min_lr
    progress = (step - warmup_steps) / (total_steps - warmup_steps)   # in [0, 1)
    return min_lr + (base_lr - min_lr) * 0.5 * (1.0 + math.cos(math.pi * progress))


# ----- checks on arguments -----------------------------------------------------

def _number(value, name, who, upper=None):
    """``value`` as a Python float in [0, upper), or a ValueError naming it.

    A Python float keeps float32 arrays float32 (a NumPy float64 scalar would not).
    """
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{who}: {name} must be a number, got {value!r}") from None
    if not math.isfinite(x) or x < 0 or (upper is not None and x >= upper):
        bound = f"in [0, {upper})" if upper is not None else ">= 0"
        raise ValueError(f"{who}: {name} must be a finite number {bound}, got {value!r}")
    return x


def _make_groups(params, defaults, who):
    """Normalise ``params`` into a list of group dicts with every key filled in."""
    if isinstance(params, Module):
        raise TypeError(f"{who}: pass module.parameters() or param_groups(module, weight_decay), "
                        "not the Module itself (param_groups keeps LayerNorm and biases out of weight decay)")
    if isinstance(params, (Parameter, dict)):
        params = [params]
    try:
        params = list(params)
    except TypeError:
        raise TypeError(f"{who}: params must be a list of Parameters or of group dicts, "
                        f"got {type(params).__name__}") from None
    is_group = [isinstance(p, dict) for p in params]
    if any(is_group) and not all(is_group):
        raise TypeError(f"{who}: params mixes group dicts and Parameters; use one or the other")
    groups = params if params and all(is_group) else [{"params": params}]

    result, seen = [], set()
    for gi, group in enumerate(groups):
        if "params" not in group:
            raise ValueError(f"{who}: param group {gi} has no 'params' key")
        unknown = sorted(set(group) - {"params", *defaults})
        if unknown:
            raise ValueError(f"{who}: param group {gi} has unknown keys {unknown}; "
                             f"allowed: 'params', " + ", ".join(repr(k) for k in defaults))
        members = group["params"]
        members = [members] if isinstance(members, Parameter) else list(members)
        for p in members:
            if not isinstance(p, Parameter):
                hint = " (use module.parameters(), not named_parameters())" if isinstance(p, tuple) else ""
                raise TypeError(f"{who}: param group {gi} holds a {type(p).__name__}, "
                                f"expected Parameter{hint}")
            if id(p) in seen:
                raise ValueError(f"{who}: a Parameter of shape {p.shape} appears twice; "
                                 "each Parameter must be in one group, once")
            seen.add(id(p))
        filled = {"params": members}
        for key, default in defaults.items():
            filled[key] = _number(group.get(key, default), key, f"{who} param group {gi}")
        result.append(filled)
    if not seen:
        raise ValueError(f"{who}: got an empty parameter list")
    return result

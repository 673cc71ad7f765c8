"""What every model's configuration shares: a frozen dataclass that travels
inside checkpoints as a plain JSON dict."""

from __future__ import annotations

from dataclasses import asdict


class ConfigMixin:
    """``to_dict()`` / ``from_dict(d)`` for a model's config dataclass.

    ``from_dict`` refuses keys the dataclass does not know, naming them, so a
    checkpoint from another model or a newer npfm fails clearly instead of
    building a different model.
    """

    def to_dict(self):
        return asdict(self)

    @classmethod
    def from_dict(cls, d):
        unknown = set(d) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"{cls.__name__}: unknown keys {sorted(unknown)}")
        return cls(**d)


def default_hidden(config, factor=4):
    """hidden = 0 in a config means the usual feed-forward width, factor * dim."""
    if config.hidden == 0:
        object.__setattr__(config, "hidden", factor * config.dim)

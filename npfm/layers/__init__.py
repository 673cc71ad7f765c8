"""Layers: one file per concept, each holding a pure forward/backward pair and its Module."""

"""PyTorch twins of npfm models, for cross-check tests and benchmarks only.

Importing this package needs torch; nothing else in npfm imports it.
"""

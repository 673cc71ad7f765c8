"""Evaluations that stand apart from training: the text-to-image judge and the CLIP reranker."""

"""Differentiable ops, one ``Function`` subclass each, grouped by kind. The public names are in
``tinygrad_cv.functional``."""

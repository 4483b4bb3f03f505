"""The one seeded random generator behind every random tensor, dropout mask and shuffle."""
import numpy as np

_generator = np.random.default_rng(0)


def manual_seed(seed):
    """Reseed the global generator: the same seed gives the same numbers, run after run."""
    global _generator
    _generator = np.random.default_rng(int(seed))
    return _generator


def generator():
    """The global ``numpy.random.Generator`` (draws happen on the host, then move to the device)."""
    return _generator

"""Optimisers, learning-rate schedules, gradient clipping and discriminative learning rates."""
from . import lr_scheduler  # noqa: F401
from .adagrad import Adagrad  # noqa: F401
from .adam import Adam, AdamW  # noqa: F401
from .clip import clip_grad_norm_  # noqa: F401
from .discriminative import even_mults, lr_range  # noqa: F401
from .optimizer import Optimizer  # noqa: F401
from .rmsprop import RMSprop  # noqa: F401
from .sgd import SGD  # noqa: F401

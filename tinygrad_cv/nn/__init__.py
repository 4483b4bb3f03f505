"""Neural-network building blocks: ``Module``, the layers and the losses, with PyTorch's names."""
from .module import Module, ModuleDict, ModuleList, Parameter, ParameterList, Sequential  # noqa: F401
from . import init  # noqa: F401
from .layers import (AdaptiveAvgPool2d, AdaptiveMaxPool2d, AvgPool2d, BatchNorm1d, BatchNorm2d, Conv2d,  # noqa: F401
                     ConvTranspose2d, Dropout, Flatten, GELU, GroupNorm, Identity, LayerNorm, LeakyReLU, Linear,
                     LogSoftmax, MaxPool2d, ReLU, Sigmoid, SiLU, Softmax, Tanh, Upsample)
from .losses import (BCELoss, BCEWithLogitsLoss, CrossEntropyLoss, L1Loss, MSELoss, NLLLoss,  # noqa: F401
                     SmoothL1Loss)
from .sync_batchnorm import SyncBatchNorm, convert_sync_batchnorm  # noqa: F401

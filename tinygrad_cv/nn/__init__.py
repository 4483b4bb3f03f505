"""Neural-network building blocks: ``Module`` and the layers, with PyTorch's names."""
from .module import Module, ModuleList, Parameter, Sequential  # noqa: F401
from . import init  # noqa: F401
from .layers import (AdaptiveAvgPool2d, AdaptiveMaxPool2d, AvgPool2d, BatchNorm2d, Conv2d, ConvTranspose2d, Dropout,  # noqa: F401
                     Flatten, Identity, LeakyReLU, Linear, MaxPool2d, ReLU, Sigmoid, Upsample)
from .sync_batchnorm import SyncBatchNorm, convert_sync_batchnorm  # noqa: F401

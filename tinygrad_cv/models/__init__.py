"""Models: ResNet classifiers, a U-Net on a ResNet encoder, and a small Mask R-CNN."""
from .resnet import (BasicBlock, Bottleneck, ResNet, load_resnet_weights, resnet18, resnet34, resnet50,  # noqa: F401
                     resnet_small)
from .unet import UNet, unet_resnet  # noqa: F401
from .mask_rcnn import MaskRCNN, MaskRCNNConfig  # noqa: F401

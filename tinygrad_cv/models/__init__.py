"""Models: ResNet classifiers, a U-Net on a ResNet encoder, and a small Mask R-CNN."""
from .resnet import BasicBlock, Bottleneck, ResNet, resnet18, resnet34, resnet_small  # noqa: F401
from .unet import UNet, unet_resnet  # noqa: F401
from .mask_rcnn import MaskRCNN, MaskRCNNConfig  # noqa: F401

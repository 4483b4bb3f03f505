"""A small Mask R-CNN that trains on the CPU (see model.py for the architecture)."""
from .config import MaskRCNNConfig  # noqa: F401
from .inference import Detections, paste_masks  # noqa: F401
from .model import MaskRCNN, backbone_resnet, prepare_images  # noqa: F401

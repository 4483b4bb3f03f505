"""A small Mask R-CNN that trains on the CPU (see model.py for the architecture)."""
from .config import MaskRCNNConfig  # noqa: F401
from .inference import Detections, paste_masks  # noqa: F401
from .model import MaskRCNN, backbone_resnet, prepare_images  # noqa: F401
from .train import (evaluate, fit, load_coco_instances, predict, pretrain_backbone, score_detections,  # noqa: F401
                    train)

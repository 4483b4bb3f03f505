"""A small Mask R-CNN that trains on the CPU with the Learner (see model.py for the architecture, data.py for
its DataLoaders, evaluate.py for COCO and VOC scores)."""
from .config import MaskRCNNConfig  # noqa: F401
from .data import detection_dataloaders, load_coco_instances, presence_dataloaders  # noqa: F401
from .evaluate import evaluate, predict, score_detections  # noqa: F401
from .inference import Detections, paste_masks  # noqa: F401
from .model import MaskRCNN, backbone_resnet, prepare_images  # noqa: F401

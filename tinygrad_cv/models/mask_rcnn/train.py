"""Loading COCO instances, training by stages, and evaluating (COCO mAP and VOC AP50).

Training is a plain loop over an optimiser rather than a Learner: a Learner's batches are (input,
target) tensors scored by a loss function of the model's output, while Mask R-CNN's targets are
per-image lists of boxes and masks of varying length, and its loss comes out of the model itself
(which samples anchors and ROIs against those targets). Written out, the loop is a few lines:

    for each batch:  losses = model.losses(images, targets);  sum(losses).backward();  clip;  step
"""
import time

import numpy as np

from ...data import Coco, read_image
from ...metrics import coco_evaluate, compute_ap, to_coco_results
from ...optim import AdamW, clip_grad_norm_
from ...optim.lr_scheduler import OneCycleLR
from .model import prepare_images


# --------------------------------------------------------------------------- data
def load_coco_instances(json_path, image_folder):
    """The images of a COCO instances file with their targets: (samples, coco).

    Each sample is a dict with 'image_id', 'image' (H, W, 3) uint8 and the targets 'boxes',
    'labels' (1..K: the categories sorted by id) and 'instance_masks' (n, H, W); ``coco`` is the
    checked ``Coco`` file (``coco.vocab`` names the labels, ``coco.categories[label - 1]['id']`` is
    a label's category id).
    """
    coco = Coco.read(json_path)
    samples = []
    for record in coco.images:
        sample = {"image_id": record["id"], "image": read_image(f"{image_folder}/{record['file_name']}")}
        sample.update(coco.targets(record))
        samples.append(sample)
    return samples, coco


def flip_horizontally(sample):
    """The sample mirrored left to right: image, masks and boxes (x -> width - x)."""
    width = sample["image"].shape[1]
    boxes = sample["boxes"].copy()
    boxes[:, [0, 2]] = width - sample["boxes"][:, [2, 0]]
    return {**sample, "image": sample["image"][:, ::-1], "boxes": boxes,
            "instance_masks": sample["instance_masks"][:, :, ::-1]}


def _batches(n, batch_size, rng):
    order = rng.permutation(n)
    return [order[i:i + batch_size] for i in range(0, n - batch_size + 1, batch_size)]


# --------------------------------------------------------------------------- training
def adamw(params, lr, weight_decay):
    """AdamW. Matterport uses SGD with momentum, starting from COCO weights; from random weights,
    Adam's per-parameter step sizes get the RPN's and the heads' very differently scaled outputs
    moving in far fewer steps."""
    return AdamW(params, lr=lr, weight_decay=weight_decay)


def train(model, samples, layers, epochs, lr, batch_size=8, weight_decay=1e-4, max_grad_norm=5.0,
          flip=True, seed=0, device="cpu", log_every=10, opt_func=adamw):
    """Train the parameters of ``layers`` ('heads', '3+', 'all' or a name pattern; see
    ``MaskRCNN.set_trainable``) for ``epochs`` passes over ``samples`` (from ``load_coco_instances``).

    ``opt_func(params, lr, weight_decay)`` makes the optimiser (AdamW by default); the learning rate
    follows the one-cycle schedule peaking at ``lr``; the gradient norm is clipped at
    ``max_grad_norm`` (Matterport's 5); half the images are flipped left to right at random.
    Returns the history: one dict of loss values (and 'seconds') per step.
    """
    rng = np.random.default_rng(seed)
    model.set_trainable(layers)
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = opt_func(params, lr, weight_decay)
    steps_per_epoch = len(samples) // batch_size
    if steps_per_epoch == 0:
        raise ValueError(f"train: {len(samples)} samples make no batch of {batch_size}; lower batch_size")
    schedule = OneCycleLR(optimizer, lr, epochs=epochs, steps_per_epoch=steps_per_epoch)
    history, start = [], time.perf_counter()
    for epoch in range(epochs):
        for indices in _batches(len(samples), batch_size, rng):
            batch = [flip_horizontally(samples[i]) if flip and rng.random() < 0.5 else samples[i]
                     for i in indices]
            images = prepare_images([s["image"] for s in batch], model.config, device)
            losses = model.losses(images, batch, rng)
            total = sum(losses.values())
            optimizer.zero_grad()
            total.backward()
            clip_grad_norm_(params, max_grad_norm)
            optimizer.step()
            schedule.step()
            history.append({**{k: v.item() for k, v in losses.items()},
                            "seconds": time.perf_counter() - start})
            if log_every and len(history) % log_every == 0:
                _log(layers, epoch, len(history), history[-log_every:])
    return history


def _log(layers, epoch, step, recent):
    """The mean of each loss over the recent steps."""
    mean = {k: np.mean([h[k] for h in recent]) for k in recent[0] if k != "seconds"}
    print(f"[{layers}] epoch {epoch} step {step}: total {sum(mean.values()):.3f}  "
          + "  ".join(f"{k} {v:.3f}" for k, v in mean.items()) + f"  ({recent[-1]['seconds']:.0f} s)")


# --------------------------------------------------------------------------- evaluation
def predict(model, samples, batch_size=16, device="cpu", score_threshold=None):
    """``model.detect`` over the samples in batches: one detection dict per sample."""
    detections = []
    for start in range(0, len(samples), batch_size):
        images = [s["image"] for s in samples[start:start + batch_size]]
        detections += model.detect(prepare_images(images, model.config, device), score_threshold)
    return detections


def evaluate(model, samples, coco, ground_truth, batch_size=16, device="cpu", verbose=False):
    """``score_detections`` of the model's detections on ``samples``."""
    return score_detections(samples, predict(model, samples, batch_size, device), coco, ground_truth, verbose)


def score_detections(samples, detections, coco, ground_truth, verbose=False):
    """COCO mAP for masks ('segm') and boxes ('bbox') of one detection dict per sample, against
    ``ground_truth`` (the COCO JSON path or dict the samples came from), and the mean over images
    of the VOC-style mask AP at IoU 0.5 that the Matterport shapes notebook reports."""
    category_of = np.array([0] + [c["id"] for c in coco.categories])
    results, voc = [], []
    for sample, found in zip(samples, detections):
        results += to_coco_results(sample["image_id"], found["boxes"], category_of[found["labels"]],
                                   found["scores"], found["masks"])
        voc.append(_voc_ap50(sample, found))
    return {"segm": coco_evaluate(ground_truth, results, "segm", verbose),
            "bbox": coco_evaluate(ground_truth, results, "bbox", verbose),
            "voc_ap50": float(np.nanmean(voc)) if not np.all(np.isnan(voc)) else float("nan")}


def _voc_ap50(sample, found):
    """``compute_ap`` of one image's masks; an image without detections scores 0 (NaN without objects),
    decided here because ``mask_iou`` cannot take an empty stack."""
    if len(found["labels"]) == 0:
        return 0.0 if len(sample["labels"]) else float("nan")
    return compute_ap(sample["boxes"], sample["labels"], sample["instance_masks"], found["boxes"],
                      found["labels"], found["scores"], found["masks"])[0]

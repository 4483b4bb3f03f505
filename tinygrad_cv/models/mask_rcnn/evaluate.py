"""Loading COCO instances, training by stages, and evaluating (COCO mAP and VOC AP50).

Training is a plain loop over an optimiser rather than a Learner: a Learner's batches are (input,
target) tensors scored by a loss function of the model's output, while Mask R-CNN's targets are
per-image lists of boxes and masks of varying length, and its loss comes out of the model itself
(which samples anchors and ROIs against those targets). Written out, the loop is a few lines:

    for each batch:  losses = model.losses(images, targets);  sum(losses).backward();  clip;  step
"""
import time

import numpy as np

from ... import functional as F
from ...data import Coco, read_image
from ...metrics import coco_evaluate, compute_ap, to_coco_results
from ...optim import AdamW, clip_grad_norm_
from ...optim.lr_scheduler import OneCycleLR
from ...train.progress import progress_bar
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


def fit(params, batch_losses, n_samples, epochs, lr, batch_size=8, weight_decay=1e-4, max_grad_norm=5.0,
        seed=0, log_every=10, opt_func=adamw, name="fit"):
    """The optimisation loop. Each epoch visits the samples in a random order, batch_size at a time;
    ``batch_losses(indices, rng)`` returns a dict of scalar loss Tensors for a batch, and their sum
    is backpropagated into ``params``.

    ``opt_func(params, lr, weight_decay)`` makes the optimiser (AdamW by default); the learning rate
    follows the one-cycle schedule peaking at ``lr``; the gradient norm is clipped at
    ``max_grad_norm`` (Matterport's 5). Returns the history: one dict of loss values (and
    'seconds') per step.
    """
    rng = np.random.default_rng(seed)
    optimizer = opt_func(params, lr, weight_decay)
    steps_per_epoch = n_samples // batch_size
    if steps_per_epoch == 0:
        raise ValueError(f"{name}: {n_samples} samples make no batch of {batch_size}; lower batch_size")
    schedule = OneCycleLR(optimizer, lr, epochs=epochs, steps_per_epoch=steps_per_epoch)
    history, start = [], time.perf_counter()
    for epoch in range(epochs):
        for indices in _batches(n_samples, batch_size, rng):
            losses = batch_losses(indices, rng)
            optimizer.zero_grad()
            sum(losses.values()).backward()
            clip_grad_norm_(params, max_grad_norm)
            optimizer.step()
            schedule.step()
            seconds = time.perf_counter() - start
            history.append({**{k: v.item() for k, v in losses.items()}, "seconds": seconds})
            if log_every and len(history) % log_every == 0:
                _log(name, epoch, len(history), history[-log_every:])
    return history


def _images(samples, indices, config, flip, device, rng):
    """The batch's samples, each flipped left to right with probability 1/2 when ``flip``, and their
    images as the model's input Tensor."""
    batch = [flip_horizontally(samples[i]) if flip and rng.random() < 0.5 else samples[i] for i in indices]
    return prepare_images([s["image"] for s in batch], config, device), batch


def train(model, samples, layers, epochs, lr, flip=True, device="cpu", **options):
    """Train the parameters of ``layers`` ('heads', '3+', 'all' or a name pattern; see
    ``MaskRCNN.set_trainable``) for ``epochs`` passes over ``samples`` (from ``load_coco_instances``)
    on the sum of the model's five losses. ``options`` go to ``fit`` (batch_size, weight_decay,
    max_grad_norm, seed, log_every, opt_func). Returns the history of the losses."""
    model.set_trainable(layers)
    model.train()

    def batch_losses(indices, rng):
        images, batch = _images(samples, indices, model.config, flip, device, rng)
        return model.losses(images, batch, rng)
    params = [p for p in model.parameters() if p.requires_grad]
    return fit(params, batch_losses, len(samples), epochs, lr, name=layers, **options)


def pretrain_backbone(resnet, samples, config, epochs, lr, flip=True, device="cpu", **options):
    """Train a ResNet classifier (``backbone_resnet(config, config.num_classes - 1, multi_label=True)``)
    to tell which classes appear in each image, with binary cross-entropy per class.

    Matterport's Mask R-CNN starts from a backbone trained on ImageNet (or COCO); this is our
    stand-in: a backbone that already responds to the shapes and colours of the data, and whose
    batch norm statistics are those of these images. Pass ``resnet.body`` to ``MaskRCNN``."""
    resnet.train()
    n_classes = config.num_classes - 1

    def batch_losses(indices, rng):
        images, batch = _images(samples, indices, config, flip, device, rng)
        present = np.zeros((len(batch), n_classes), dtype=np.float32)
        rows = np.repeat(np.arange(len(batch)), [len(s["labels"]) for s in batch])
        present[rows, np.concatenate([s["labels"] for s in batch]).astype(np.int64) - 1] = 1
        return {"presence": F.binary_cross_entropy_with_logits(resnet(images), present)}
    return fit(list(resnet.parameters()), batch_losses, len(samples), epochs, lr, name="backbone", **options)


def _log(name, epoch, step, recent):
    """The mean of each loss over the recent steps."""
    mean = {k: np.mean([h[k] for h in recent]) for k in recent[0] if k != "seconds"}
    print(f"[{name}] epoch {epoch} step {step}: total {sum(mean.values()):.3f}  "
          + "  ".join(f"{k} {v:.3f}" for k, v in mean.items()) + f"  ({recent[-1]['seconds']:.0f} s)")


# --------------------------------------------------------------------------- evaluation
def predict(model, samples, batch_size=16, device="cpu", score_threshold=None):
    """``model.detect`` over the samples in batches: one detection dict per sample (a progress bar on a
    terminal or in a notebook)."""
    detections = []
    for start in progress_bar(range(0, len(samples), batch_size), desc="detect", unit="batch"):
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

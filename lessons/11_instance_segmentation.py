# %% [markdown]
# # Lesson 11: instance segmentation with a small Mask R-CNN, on the synthetic "shapes" data
#
# Semantic segmentation (lesson 8) gives every pixel a class. Instance segmentation also tells the
# objects apart: two overlapping circles are two masks, each with its own class and score. Mask R-CNN
# (He et al., 2017) does it in two stages:
#
#   1. a region proposal network (RPN) slides over the backbone's feature map and, at every cell,
#      scores a set of *anchor* boxes (several sizes and shapes) for "is there an object" and says
#      how to move each onto it; the best few hundred moved anchors are the *proposals*;
#   2. for each proposal (a region of interest, ROI), RoIAlign cuts a fixed-size grid of features out
#      of the feature map; a box head classifies it and refines its box, and a mask head paints a
#      28 x 28 binary mask for it, one per class (a sigmoid per pixel, see section 7).
#
# Training samples anchors and ROIs against the ground truth and adds five losses; see
# tinygrad_cv/models/mask_rcnn/. This lesson trains one on the CPU in a few minutes with the same
# Learner as every other model, the Matterport "shapes" notebook's way: the heads first (backbone
# frozen), then all the layers.
#
#     python lessons/11_instance_segmentation.py [--quick] [--out DIR] [--data DIR] [--image PATH]

# %%
import os
import time

import numpy as np

import tinygrad_cv as tg
import tinygrad_cv.functional as F
from tinygrad_cv.data import read_image
from tinygrad_cv.data.synthetic import make_shapes
from tinygrad_cv.metrics import COCOMetric, format_summary
from tinygrad_cv.models.mask_rcnn import (MaskRCNN, MaskRCNNConfig, backbone_resnet, detection_dataloaders,
                                          evaluate, load_coco_instances, predict, prepare_images,
                                          presence_dataloaders)
from tinygrad_cv.optim import AdamW
from tinygrad_cv.train import GradientClip, Learner
from lesson_utils import parse_args, pyplot, save_lesson_figure

args = parse_args("Lesson 11: instance segmentation with Mask R-CNN", "11_instance_segmentation", data="shapes",
                  full_minutes=5,
                  configure=lambda parser: parser.add_argument(
                      "--image", help="an image file of your own to run the trained model on"))
tg.manual_seed(0)
plt = pyplot()

if args.quick:
    size, n_train, n_valid, batch, epochs = 64, 16, 4, 4, {"backbone": 1, "heads": 1, "all": 1}
    data_dir = os.path.join(args.out, "data")
else:
    size, n_train, n_valid, batch, epochs = 128, 600, 100, 8, {"backbone": 3, "heads": 2, "all": 8}
    data_dir = args.data

# %% [markdown]
# ## 1. The data
#
# Coloured squares, circles and triangles on a textured background, written as a COCO instances
# file: per object a category, a box [x, y, w, h] and a mask (run-length encoded). The training and
# validation images come from different seeds. load_coco_instances gives one dict per image: the
# image, 'boxes' (x1, y1, x2, y2), 'labels' (1 square, 2 circle, 3 triangle; 0 is the background)
# and 'instance_masks', one full-size 0/1 mask per object.

# %%
splits = {}
for split, n, seed in [("train", n_train, 0), ("valid", n_valid, 1)]:
    folder = make_shapes(os.path.join(data_dir, f"{split}_{size}px"), n=n, size=size, seed=seed)
    json_path = os.path.join(folder, "annotations", "instances.json")
    splits[split] = (*load_coco_instances(json_path, os.path.join(folder, "images")), json_path)
train_samples, coco, _ = splits["train"]
valid_samples, valid_coco, valid_json = splits["valid"]
vocab = coco.vocab
print(f"{len(train_samples)} training and {len(valid_samples)} validation images; classes {vocab[1:]}; "
      f"{sum(len(s['labels']) for s in train_samples)} training objects")

# %% [markdown]
# ## 1b. Four tasks on one image
#
# The same picture answers four questions of growing detail:
#
# - **classification with localisation**: what is the (main) object, and where is its box? One class, one box;
# - **object detection**: every object's class and box, however many there are;
# - **semantic segmentation** (lesson 8): the class of every pixel; two circles are one "circle" region;
# - **instance segmentation** (this lesson): every object's own mask, class and score; two circles are
#   two masks.

# %%
from tinygrad_cv.data import class_colors  # noqa: E402
from tinygrad_cv.data.show import class_legend  # noqa: E402

example = max(train_samples[:20], key=lambda sample: len(sample["labels"]))   # a busy image
masks, labels, boxes = example["instance_masks"] > 0, example["labels"], example["boxes"]
semantic = np.zeros(masks.shape[1:], np.int64)
for mask, label in zip(masks, labels):
    semantic[mask] = label
instances = np.zeros(masks.shape[1:], np.int64)
for k, mask in enumerate(masks, start=1):
    instances[mask] = k
largest = int(np.argmax(masks.reshape(len(masks), -1).sum(1)))
# Objects get colours of their own (matplotlib's tab10, on a black background), unrelated to the classes'.
tab10 = np.array(plt.cm.tab10.colors) * 255
object_colors = np.vstack([[0, 0, 0], tab10[np.arange(len(labels)) % 10]]).astype(np.uint8)
fig, axes = plt.subplots(1, 4, figsize=(13, 3.8))
titles = ["classification + localisation", "object detection", "semantic segmentation\n(a colour per class)",
          "instance segmentation\n(a colour per object)"]
shown = [example["image"], example["image"], class_colors(len(vocab))[semantic],   # a colour per class
         object_colors[instances]]                                                  # a colour per object
for ax, title, picture in zip(axes, titles, shown):
    ax.imshow(picture)
    ax.set_title(title, fontsize=9)
    ax.axis("off")
for ax, chosen in ((axes[0], [largest]), (axes[1], range(len(labels)))):
    for k in chosen:
        x1, y1, x2, y2 = boxes[k]
        ax.add_patch(plt.Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, ec="yellow", lw=1.5))
        ax.text(x1, y1 - 1, vocab[labels[k]], color="black", fontsize=7, bbox=dict(facecolor="yellow", pad=1, lw=0))
for k, (x1, y1, _, _) in enumerate(boxes, start=1):
    axes[3].text(x1, y1 - 1, f"{vocab[labels[k - 1]]} #{k}", color="white", fontsize=7,
                 bbox=dict(facecolor=object_colors[k] / 255, pad=1, lw=0))
class_legend(fig, range(len(vocab)), vocab)      # the semantic panel's colours are classes
save_lesson_figure(fig, args.out, "four_tasks.png")

# %% [markdown]
# ## 1c. One COCO annotation
#
# The instances file has three lists: "images" (id, file_name, width, height), "categories" (id, name) and
# "annotations", one per object:
#
# - `bbox`: [x, y, width, height] in pixels, from the top-left corner (not x1, y1, x2, y2);
# - `segmentation`: the mask, either as **polygons** (a list of [x1, y1, x2, y2, ...] outlines, what people
#   draw) or as **RLE**, run-length encoding (`{"size": [height, width], "counts": ...}`: the lengths of
#   alternating runs of 0s and 1s down the columns, compressed into a string), what programs write;
# - `area`: the number of mask pixels (not the box's area);
# - `iscrowd`: 1 marks one annotation covering a crowd of objects (always RLE); detections that match a crowd
#   are neither rewarded nor punished by the evaluation. Ours are all 0.

# %%
import json  # noqa: E402

from tinygrad_cv.data import coco_mask  # noqa: E402

with open(splits["train"][2]) as f:
    instances_file = json.load(f)
annotation = dict(instances_file["annotations"][0])
counts = annotation["segmentation"]["counts"]
for key, value in {**annotation, "segmentation": {**annotation["segmentation"], "counts": counts[:24] + "..."}}.items():
    print(f"  {key:13s} {json.dumps(value)}")
decoded = coco_mask.rle_to_mask(annotation["segmentation"])
print(f"decoded RLE: a {decoded.shape} 0/1 mask with {int(decoded.sum())} pixels set (= area "
      f"{annotation['area']}); its box {coco_mask.to_bbox(annotation['segmentation'])} (= bbox {annotation['bbox']})")
# The same kind of mask as a polygon: a triangle outlined by its three corners, turned into RLE.
triangle = [[10.0, 40.0, 30.0, 5.0, 50.0, 40.0]]
rle = coco_mask.from_polygons(triangle, 48, 64)
print(f"polygon {triangle[0]} -> RLE of area {int(coco_mask.area(rle))} px, box {coco_mask.to_bbox(rle)}")

# %% [markdown]
# ## 2. RoIPool against RoIAlign
#
# Both cut a fixed grid (here 3 x 3 bins) out of a feature map for any box. RoIPool (Fast R-CNN)
# rounds the box to whole feature cells and each bin to whole cells, then takes the maximum: at
# stride 8 a rounding of half a cell moves the features by 4 image pixels, which hardly matters to a
# class but ruins a mask. RoIAlign (Mask R-CNN) rounds nothing: each bin averages a few points
# (2 x 2 here) read off the map by bilinear interpolation, so the output follows the box smoothly.

# %%
def pool_bins(start, end, bins):
    """RoIPool's bins along one axis, in whole cells [lo, hi): the box rounded to cells, at least one
    cell long, bin p covering floor(p * s) .. ceil((p + 1) * s) cells from the start (s = length / bins)."""
    start, end = np.floor(start + 0.5), np.floor(end + 0.5)
    step = max(end - start + 1, 1) / bins
    return [(start + np.floor(p * step), start + np.ceil((p + 1) * step)) for p in range(bins)]


def draw_roi_comparison():
    """One box on a small feature map: RoIPool's snapped bins, RoIAlign's exact bins and sample points,
    how one output moves as the box slides, and the two 3 x 3 results."""
    yy, xx = np.mgrid[:8, :8]
    feature = np.sin(xx / 2.0) + np.cos(yy / 3.0) + 0.3 * xx     # a smooth 8 x 8 "feature map"
    box, bins, samples = (1.3, 0.8, 6.1, 5.4), 3, 2
    fig, axes = plt.subplots(1, 4, figsize=(17, 4.2))
    for ax, title in zip(axes[:2], ["RoIPool: the box and its bins snapped to cells",
                                    "RoIAlign: exact bins, 2 x 2 bilinear samples each"]):
        ax.imshow(feature, cmap="viridis", extent=(0, 8, 8, 0))
        width, height = box[2] - box[0], box[3] - box[1]
        ax.add_patch(plt.Rectangle(box[:2], width, height, fill=False, ec="white", ls="--", lw=2))
        ax.set_title(title, fontsize=10)
    for x_lo, x_hi in pool_bins(box[0], box[2], bins):
        for y_lo, y_hi in pool_bins(box[1], box[3], bins):
            axes[0].add_patch(plt.Rectangle((x_lo, y_lo), x_hi - x_lo, y_hi - y_lo, fill=False, ec="red"))
    # aligned=True reads the map with pixel centres at half-integers, the coordinates drawn here
    bin_w, bin_h = (box[2] - box[0]) / bins, (box[3] - box[1]) / bins
    for p in range(bins + 1):
        axes[1].plot([box[0] + p * bin_w] * 2, [box[1], box[3]], color="red", lw=1)
        axes[1].plot([box[0], box[2]], [box[1] + p * bin_h] * 2, color="red", lw=1)
    offsets = (np.arange(bins * samples) + 0.5) / samples
    sx, sy = np.meshgrid(box[0] + offsets * bin_w, box[1] + offsets * bin_h)
    axes[1].scatter(sx, sy, color="white", s=12)
    # how bin (0, 0) responds when the box slides right by a fraction of a cell
    shifts = np.linspace(0, 2, 81)
    feature_t = tg.tensor(feature[None, None])
    boxes = np.array([[0, box[0] + s, box[1], box[2] + s, box[3]] for s in shifts])   # (K, 5): image, box
    pooled = F.roi_pool(feature_t, boxes, bins).numpy()[:, 0, 0, 0]
    aligned = F.roi_align(feature_t, boxes, bins, sampling_ratio=samples, aligned=True).numpy()[:, 0, 0, 0]
    axes[2].plot(shifts, pooled, label="RoIPool (max over snapped cells)")
    axes[2].plot(shifts, aligned, label="RoIAlign (average of bilinear samples)")
    axes[2].set_xlabel("box shifted right by (feature cells)")
    axes[2].set_title("output of bin (0, 0) as the box slides", fontsize=10)
    axes[2].legend(fontsize=8)
    one = np.array([[0, *box]])
    grids = [F.roi_pool(feature_t, one, bins).numpy()[0, 0],
             F.roi_align(feature_t, one, bins, sampling_ratio=samples, aligned=True).numpy()[0, 0]]
    side_by_side = np.concatenate([grids[0], np.full((bins, 1), np.nan), grids[1]], axis=1)
    axes[3].imshow(side_by_side, cmap="viridis", vmin=feature.min(), vmax=feature.max())
    axes[3].set_title("the 3 x 3 outputs: RoIPool | RoIAlign", fontsize=10)
    axes[3].axis("off")
    save_lesson_figure(fig, args.out, "roipool_vs_roialign.png")
    plt.close(fig)


draw_roi_comparison()

# %% [markdown]
# ## 3. A pretrained backbone
#
# The backbone is a small ResNet body (stem + two stages) with one feature map at stride 8: 16 x 16
# cells for a 128-pixel image. Matterport's starts from ImageNet or COCO weights, so that its
# "heads first" stage trains new heads on features that already mean something. Our stand-in: train
# the same ResNet, with a classifier head, to say which shapes each image contains (a multi-label
# task, binary cross-entropy per class). It takes seconds, and it also leaves the batch norm layers
# with running statistics of these images, which the frozen backbone will use in the heads stage.
# The Learner trains it like any classifier: AdamW on the one-cycle schedule, with the gradient norm
# clipped at 5 (Matterport's setting, kept for the detector below). The schedule's shape is PyTorch
# OneCycleLR's (warm-up over 30% of the steps, ending at lr_max / 2.5e5), which this lesson's rates were
# tuned with, rather than `fit_one_cycle`'s default, fastai's (25%, lr_max / 1e5); exercise 3 below
# tries fastai's.

# %%
ONE_CYCLE = dict(pct_start=0.3, div_final=2.5e5)
config = MaskRCNNConfig(num_classes=len(vocab), image_size=size)
started = time.perf_counter()
classifier = backbone_resnet(config, num_classes=len(vocab) - 1, multi_label=True)
presence = presence_dataloaders(train_samples, valid_samples, config, batch_size=2 * batch)
pretraining = Learner(presence, classifier, F.binary_cross_entropy_with_logits, opt_func=AdamW,
                      cbs=[GradientClip(5.0)], path=args.out)
pretraining.fit_one_cycle(epochs["backbone"], 3e-3, wd=1e-4, **ONE_CYCLE)

# %% [markdown]
# ## 4. The model
#
# Each of the 16 x 16 cells has 5 anchor sizes (8 to 128 pixels) x 3 shapes (width/height 0.5, 1,
# 2) = 15 anchors. Matterport uses a five-level feature pyramid instead; one level is far cheaper
# and enough for objects of 20 to 50 pixels.

# %%
model = MaskRCNN(config, backbone=classifier.body)
print(f"{len(model.anchors)} anchors; {sum(p.numel() for p in model.parameters())} parameters")

# %% [markdown]
# ## 5. Training by stages
#
# The batches are (images, targets): the normalised images and one dict per image of its boxes,
# labels and instance masks, flipped left to right at random. model(images, targets) returns the
# five losses of a batch as a dict, as torchvision's detection models do:
#   rpn_objectness  is each sampled anchor an object? (256 anchors per image, at most half positive)
#   rpn_box         how to move the positive anchors onto their objects (smooth L1 on the deltas)
#   head_class      the class of each sampled ROI (32 per image, a third positive) or background
#   head_box        the refined box of positive ROIs, read from the deltas of their true class
#   mask            per-pixel sigmoid binary cross-entropy of the 28 x 28 mask of the ROI's true class
#                   (one binary mask per class; the other classes' masks get no loss), positive ROIs only
# Given loss_func=None, the Learner lets the model compute its own losses from (images, targets),
# sums them, backpropagates, clips the gradient norm at 5 and steps AdamW on the one-cycle schedule;
# it logs each loss (the table's columns, learn.recorder.term_losses) and, after each epoch, the
# validation losses and the COCO mask AP of the model's detections (the COCOMetric).
#
# The stages follow Matterport: first only the heads (RPN, box and mask heads) learn while the
# backbone is frozen, so that the large, random gradients of brand-new heads do not wreck the
# pretrained features; then every layer, at a lower learning rate, with an optimiser of its own (as
# Matterport's train() compiles one per stage: Adam's statistics of the heads stage are left behind).
# freeze_to names the stage ('heads', '3+', 'all'; the backbone's stages are the layer groups, the
# heads the last group), and train_bn=False freezes the backbone's batch norm statistics with it,
# as Matterport does.

# %%
dls = detection_dataloaders(train_samples, valid_samples, config, batch_size=batch, vocab=vocab)
category_ids = [0] + [c["id"] for c in coco.categories]
learn = Learner(dls, model, None, opt_func=AdamW, metrics=[COCOMetric(valid_json, category_ids)],
                cbs=[GradientClip(5.0)], train_bn=False, path=args.out)
learn.freeze_to("heads")
learn.fit_one_cycle(epochs["heads"], 2e-3, wd=1e-4, **ONE_CYCLE)
history = {name: list(values) for name, values in learn.recorder.term_losses.items()}
heads_steps = len(learn.recorder.losses)
learn.unfreeze()
learn.create_opt()                                   # a fresh AdamW for the second stage
learn.fit_one_cycle(epochs["all"], 1e-3, wd=1e-4, **ONE_CYCLE)
for name, values in learn.recorder.term_losses.items():
    history[name] += values
minutes = (time.perf_counter() - started) / 60
print(f"training: {len(pretraining.recorder.losses)} backbone steps, then {heads_steps + len(learn.recorder.losses)} "
      f"Mask R-CNN steps of {batch} images, in {minutes:.1f} min")

fig, ax = plt.subplots(figsize=(8, 4))
for name, values in history.items():
    smooth = np.convolve(values, np.ones(5) / 5, mode="valid") if len(values) >= 5 else values
    ax.plot(smooth, label=name)
ax.axvline(heads_steps, color="gray", ls=":", label="unfreeze all")
ax.set_xlabel("step")
ax.set_ylabel("loss (moving average of 5)")
ax.legend(fontsize=8)
save_lesson_figure(fig, args.out, "losses.png")
plt.close(fig)

# %% [markdown]
# ## 6. Evaluation
#
# COCO's mAP averages the precision over recall levels, classes and IoU thresholds 0.5 to 0.95: a
# detection counts at threshold t when its mask (segm) or box (bbox) overlaps an unmatched object
# of its class by IoU >= t. AP50 is the lenient end, AP75 the strict one. The Matterport notebook
# reports the VOC-style AP at IoU 0.5 averaged over images.

# %%
scores = evaluate(model, valid_samples, valid_coco, valid_json)
print("masks (segm):\n" + format_summary(scores["segm"]))
for kind in ("segm", "bbox"):
    print(f"{kind}: " + "  ".join(f"{name} {scores[kind][name]:.3f}" for name in ("AP", "AP50", "AP75")))
print("by object size (COCO: small < 32^2 px, medium to 96^2, large above; -1: no object of that size):")
for kind in ("segm", "bbox"):
    print(f"{kind}: " + "  ".join(f"{name} {scores[kind][name]:.3f}" for name in ("APs", "APm", "APl")))
print(f"VOC mask AP50 (mean over images): {scores['voc_ap50']:.3f}; training took {minutes:.1f} min")

# %% [markdown]
# ## 7. Predictions
#
# model.detect: proposals -> box head -> for every class its own refined box, scored by the class's
# probability; per-class NMS; then the mask head on the kept boxes, and each detection's 28 x 28 mask
# of its class resized bilinearly into its box and thresholded at 0.5.

# %%
COLORS = np.array([[0.9, 0.1, 0.1], [0.1, 0.6, 1.0], [1.0, 0.8, 0.0], [0.2, 0.9, 0.3], [0.8, 0.3, 1.0]])


def draw_instances(ax, image, found, title):
    """The image with each detection's mask tinted, its box, and 'class score'."""
    shown = image.astype(np.float64) / 255
    for k, mask in enumerate(found["masks"]):
        shown[mask] = 0.5 * shown[mask] + 0.5 * COLORS[k % len(COLORS)]
    ax.imshow(shown)
    for k, (x1, y1, x2, y2) in enumerate(found["boxes"]):
        color = COLORS[k % len(COLORS)]
        ax.add_patch(plt.Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, ec=color, lw=1.5))
        score = f" {found['scores'][k]:.2f}" if "scores" in found else ""
        ax.text(x1, y1 - 1, vocab[found["labels"][k]] + score, color="white", fontsize=7,
                bbox=dict(facecolor=color, alpha=0.7, pad=1, lw=0))
    ax.set_title(title, fontsize=9)
    ax.axis("off")


shown = valid_samples[:4]
detections = predict(model, shown, score_threshold=0.5)
fig, axes = plt.subplots(2, len(shown), figsize=(3.2 * len(shown), 6.6), squeeze=False)
for k, (sample, found) in enumerate(zip(shown, detections)):
    truth = {"boxes": sample["boxes"], "labels": sample["labels"], "masks": sample["instance_masks"] > 0}
    draw_instances(axes[0, k], sample["image"], truth, "ground truth")
    draw_instances(axes[1, k], sample["image"], found, "predicted (score > 0.5)")
save_lesson_figure(fig, args.out, "predictions.png")
plt.close(fig)

# %% [markdown]
# ## 7b. Anchors and the RPN's best proposals
#
# Left: the 15 anchors of the feature cell nearest the image's centre (5 sizes x 3 shapes), the fixed boxes
# the RPN starts from; there are as many at every one of the feature map's cells. Right: the ten proposals
# with the highest objectness after the RPN moved its anchors by the predicted deltas and NMS removed
# duplicates, the boxes the second stage looks at.

# %%
from tinygrad_cv.models.mask_rcnn.rpn import compact_proposals, propose  # noqa: E402

sample = valid_samples[0]
images_in = prepare_images([sample["image"]], config)
was_training = model.training
model.eval()
with tg.no_grad():
    features = model.features(images_in)
    objectness, anchor_deltas = model.rpn(features)
    top_proposals = compact_proposals(*propose(model.anchors, objectness.numpy(), anchor_deltas.numpy(), config, 10))
model.train(was_training)
centres = (model.anchors[:, :2] + model.anchors[:, 2:]) / 2
nearest = np.abs(centres - size / 2).sum(1)
cell = model.anchors[nearest == nearest.min()][:15]
fig, axes = plt.subplots(1, 2, figsize=(8, 4.2))
for ax, drawn, title in ((axes[0], cell, f"15 anchors of one cell (of {len(model.anchors)})"),
                         (axes[1], top_proposals[:, 1:], "top 10 RPN proposals")):
    ax.imshow(sample["image"])
    for k, (x1, y1, x2, y2) in enumerate(drawn):
        ax.add_patch(plt.Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, lw=1,
                                   ec=plt.cm.viridis(k / max(len(drawn) - 1, 1))))
    ax.set(xlim=(-size / 2, 1.5 * size), ylim=(1.5 * size, -size / 2), title=title)
    ax.axis("off")
save_lesson_figure(fig, args.out, "anchors_and_proposals.png")

# %% [markdown]
# ## 7c. One binary mask per class, decoupled from the class
#
# For each ROI the mask head paints one 28 x 28 mask *per class*, each pixel an independent sigmoid:
# "is this pixel part of a <class>?". The class itself comes from the box head. At training time only the
# mask of the ROI's true class enters the loss (binary cross-entropy per pixel); at test time only the
# mask of the predicted class is used. So the classes never compete for a pixel: the mask head only has to
# separate object from background, the box head decides what the object is. (A softmax over the classes at
# every pixel, as in semantic segmentation, couples the two, and He et al. found it clearly worse.) Below:
# the first detection's masks for every class; its predicted class's mask is the one that is used.

# %%
found = model.detect(images_in, score_threshold=0.0)[0]
if len(found["boxes"]):
    model.eval()
    with tg.no_grad():
        rois = np.column_stack([np.zeros(1), found["boxes"][:1]])
        per_class = F.sigmoid(model.mask_head(features, rois)).numpy()[0]      # (classes, 28, 28)
    model.train(was_training)
    fig, axes = plt.subplots(1, len(vocab) - 1, figsize=(2.6 * (len(vocab) - 1), 2.9))
    for c, ax in enumerate(axes, start=1):          # channel 0 (background) is never used
        ax.imshow(per_class[c], vmin=0, vmax=1, cmap="magma")
        used = " (used)" if c == found["labels"][0] else ""
        ax.set_title(f"mask for '{vocab[c]}'{used}", fontsize=8, color="tab:red" if used else "black")
        ax.axis("off")
    fig.suptitle(f"first detection: {vocab[found['labels'][0]]} {found['scores'][0]:.2f}; "
                 "28 x 28 sigmoid per pixel, one mask per class", fontsize=9)
    save_lesson_figure(fig, args.out, "per_class_masks.png")

# %% [markdown]
# ## 8. Your own image
#
# The model only knows 128-pixel images of flat shapes; any picture is resized to that square.

# %%
if args.image:
    from PIL import Image
    picture = np.asarray(Image.fromarray(read_image(args.image)).resize((size, size), Image.BILINEAR))
    found = model.detect(prepare_images([picture], config), score_threshold=0.5)[0]
    named = [f"{vocab[c]} {s:.2f}" for c, s in zip(found["labels"], found["scores"])]
    print(f"{args.image}: " + (", ".join(named) if named else "nothing found above 0.5"))
    fig, ax = plt.subplots(figsize=(4, 4))
    draw_instances(ax, picture, found, os.path.basename(args.image))
    save_lesson_figure(fig, args.out, "your_image.png")
    plt.close(fig)


# %% [markdown]
# ## What to look at
#
# - `four_tasks.png`: one image, four tasks; semantic segmentation merges objects of a class, instance
#   segmentation keeps them apart.
# - `anchors_and_proposals.png`: anchors are fixed boxes everywhere; the proposals sit on the objects.
# - `per_class_masks.png`: one mask per class; only the predicted class's is used.
# - `roipool_vs_roialign.png`: RoIPool's output jumps as the box slides, RoIAlign's moves smoothly.
#
# ## Exercises (change one line)
#
# 1. In `predict(model, shown, score_threshold=0.5)` use 0.9: the figure shows the same or fewer detections.
# 2. In `propose(..., config, 10)` use 50: more proposals are drawn, the extra ones with lower objectness.
# 3. In `ONE_CYCLE = dict(pct_start=0.3, div_final=2.5e5)` use `dict()` (fastai's schedule shape) and compare
#    the mask AP printed at the end with this run's.

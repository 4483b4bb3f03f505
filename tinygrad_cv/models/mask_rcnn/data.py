"""Mask R-CNN's data: COCO instances as samples, and the DataLoaders a Learner trains it on.

A detection batch is ``(images, targets)``: the images as the model takes them (float32 (N, 3, S, S),
normalised with the config's pixel_mean and pixel_std, as ``prepare_images``) and one target dict per
image ('boxes', 'labels', 'instance_masks', 'image_id'), which the model's ``forward(images, targets)``
turns into its losses. The pieces are the data pipeline's: ``DataLoader`` (shuffled, seeded), ``Flip``
(mirrors the image, the masks and the boxes together) and ``DataLoaders`` (normalise, to the device).
"""
import numpy as np

from ...data import Coco, DataLoader, DataLoaders, Flip, read_image


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


def detection_dataloaders(train_samples, valid_samples, config, batch_size=8, flip=True, device="cpu", seed=0,
                          vocab=None):
    """DataLoaders of detection batches (see the module docstring) from samples of
    ``load_coco_instances``. Training batches are shuffled (seeded by ``seed``), the last incomplete one
    dropped, and each training image flipped left to right with probability 1/2 when ``flip``;
    validation batches keep the samples' order."""
    return _dataloaders(train_samples, valid_samples, config, batch_size, flip, device, seed, vocab,
                        "detection_dataloaders")


def presence_dataloaders(train_samples, valid_samples, config, batch_size=16, flip=True, device="cpu", seed=0):
    """DataLoaders of (images, presence) batches for pretraining a backbone as a multi-label classifier:
    presence (N, num_classes - 1) float32 is 1 where the image holds an object of that class (label k at
    column k - 1). Otherwise as ``detection_dataloaders``."""
    def presence(samples):
        return [{"image": s["image"], "target": _presence(s["labels"], config.num_classes - 1)} for s in samples]
    return _dataloaders(presence(train_samples), presence(valid_samples), config, batch_size, flip, device, seed,
                        None, "presence_dataloaders")


def _presence(labels, n_classes):
    target = np.zeros(n_classes, dtype=np.float32)
    target[np.asarray(labels, dtype=np.int64) - 1] = 1
    return target


def _dataloaders(train, valid, config, batch_size, flip, device, seed, vocab, caller):
    size = config.image_size
    for split, samples in (("train_samples", train), ("valid_samples", valid)):
        odd = [np.shape(s["image"]) for s in samples if np.shape(s["image"]) != (size, size, 3)]
        if odd:
            raise ValueError(f"{caller}: {split} holds images of shape {odd[0]}, but the model "
                             f"takes ({size}, {size}, 3) (config.image_size); resize them first")
    train_loader = DataLoader(train, batch_size, shuffle=True, drop_last=True, seed=seed,
                              transform=Flip() if flip else None)
    valid_loader = DataLoader(valid, batch_size, seed=seed)
    return DataLoaders(train_loader, valid_loader, device=device, stats=(config.pixel_mean, config.pixel_std),
                       vocab=vocab)

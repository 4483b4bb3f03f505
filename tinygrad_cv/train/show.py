"""``show_results``: validation samples with their targets and the model's predictions, as a grid Figure."""
from __future__ import annotations

import math
import os
import textwrap
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np
import numpy.typing as npt

from ..data.show import caption, class_legend, overlay
from ..data.show import blank_figure, finish_figure

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def displayable(x, mean=None, std=None):
    """(N, C, H, W) normalised floats -> (N, H, W, 3) uint8: the normalisation undone, pixel = x * std + mean
    per channel (the loader's statistics; without them x is taken as already in [0, 1]), clipped to [0, 1].
    Every image keeps its true colours and brightness: nothing is stretched per image."""
    x = np.asarray(x, dtype=np.float64)
    channels = x.shape[1]
    mean = np.zeros(channels) if mean is None else np.asarray(mean, dtype=np.float64).reshape(-1)
    std = np.ones(channels) if std is None else np.asarray(std, dtype=np.float64).reshape(-1)
    if mean.shape != (channels,) or std.shape != (channels,):
        raise ValueError(f"show_results: need one mean and one std per channel ({channels}), got mean "
                         f"{mean.tolist()} and std {std.tolist()}")
    pixels = x * std.reshape(1, -1, 1, 1) + mean.reshape(1, -1, 1, 1)
    images = (np.clip(pixels, 0, 1) * 255 + 0.5).astype(np.uint8).transpose(0, 2, 3, 1)
    return np.repeat(images, 3, axis=-1) if images.shape[-1] == 1 else images[..., :3]


def predictions_as_targets(y, pred, thresh):
    """Predictions in the targets' form: a class index (from (N, C) scores), multi-hot tags ([p > thresh]
    for multi-hot targets) or a mask (arg-max over the channels of (N, C, H, W) scores)."""
    if y.ndim == 2:
        return (pred > thresh).astype(np.float32)
    return pred.argmax(axis=1)


def show_results(x: npt.NDArray[Any], y: npt.NDArray[Any], pred: npt.NDArray[Any],
                 fname: str | os.PathLike[str] | None = None, max_n: int = 9, vocab: Sequence[str] | None = None,
                 thresh: float = 0.5, mean: Any = None, std: Any = None) -> Figure:
    """A Figure of up to ``max_n`` samples: the image titled 'target / prediction' (classes, or tags whose probability
    is above ``thresh``), or for masks the target and the predicted mask overlaid side by side with a legend
    of the class colours. ``mean`` and ``std`` (per channel, [0, 1] units: the loader's Normalize) undo the
    normalisation of ``x`` for display. Also written as the PNG ``fname`` when given; returns the Figure."""
    images, y = displayable(x, mean, std), np.asarray(y)
    decoded = predictions_as_targets(y, np.asarray(pred), thresh)
    n = min(max_n, len(images))
    masks = y.ndim == 3
    ncols = 2 if masks else min(3, n)
    nrows = n if masks else math.ceil(n / ncols)
    figure = blank_figure(3.2 * ncols, (3.3 if masks else 4.0) * nrows)
    for i in range(n):
        if masks:
            for k, (title, mask) in enumerate((("target", y[i]), ("prediction", decoded[i]))):
                axes = figure.add_subplot(nrows, ncols, 2 * i + k + 1)
                axes.imshow(overlay(images[i], mask.astype(np.int64)))
                axes.set_title(title, fontsize=8)
                axes.axis("off")
            continue
        axes = figure.add_subplot(nrows, ncols, i + 1)
        axes.imshow(images[i])
        target, predicted = caption({"target": y}, i, vocab), caption({"target": decoded}, i, vocab)
        title = f"target: {target}\npredicted (p > {thresh:g}): {predicted}"
        axes.set_title("\n".join(textwrap.fill(line, 44) for line in title.split("\n")), fontsize=8)
        axes.axis("off")
    figure.tight_layout()
    if masks:
        class_legend(figure, np.union1d(np.unique(y[:n]), np.unique(decoded[:n])), vocab)
    return finish_figure(figure, fname)

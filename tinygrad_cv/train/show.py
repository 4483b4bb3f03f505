"""``show_results``: validation samples with their targets and the model's predictions, as a PNG grid."""
import math

import numpy as np

from ..data.show import caption, overlay
from .recorder import save_figure


def displayable(x):
    """(N, C, H, W) normalised floats -> (N, H, W, 3) uint8, each image stretched to the full range."""
    x = np.asarray(x, dtype=np.float64)
    lo, hi = x.min(axis=(1, 2, 3), keepdims=True), x.max(axis=(1, 2, 3), keepdims=True)
    images = ((x - lo) / np.maximum(hi - lo, 1e-12) * 255 + 0.5).astype(np.uint8).transpose(0, 2, 3, 1)
    return np.repeat(images, 3, axis=-1) if images.shape[-1] == 1 else images[..., :3]


def decode(y, pred, thresh):
    """Predictions in the targets' form: a class index (from (N, C) scores), multi-hot tags ([p > thresh]
    for multi-hot targets) or a mask (arg-max over the channels of (N, C, H, W) scores)."""
    if y.ndim == 2:
        return (pred > thresh).astype(np.float32)
    return pred.argmax(axis=1)


def show_results(x, y, pred, path, n=6, vocab=None, thresh=0.5):
    """Save up to ``n`` samples: the image titled 'target / prediction' (classes or tags), or for masks the
    target and the predicted mask overlaid side by side. Returns the path."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    images, y = displayable(x), np.asarray(y)
    decoded = decode(y, np.asarray(pred), thresh)
    n = min(n, len(images))
    masks = y.ndim == 3
    ncols = 2 if masks else min(3, n)
    nrows = n if masks else math.ceil(n / ncols)
    figure = Figure(figsize=(3 * ncols, 3.3 * nrows))
    FigureCanvasAgg(figure)
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
        axes.set_title(f"target: {target}\npredicted: {predicted}", fontsize=8, wrap=True)
        axes.axis("off")
    figure.tight_layout()
    return save_figure(figure, path)

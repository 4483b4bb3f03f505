"""``show_batch``: a grid figure of a raw batch (images with their tags or class, masks overlaid in
class colours, boxes with their labels), and the figure helpers every ``show_*`` and ``plot_*`` uses.
Matplotlib is imported only when a figure is drawn, and used through its object API: no pyplot, no
global figure state, no backend chosen for the caller (a notebook keeps its inline backend)."""
import functools
import io
import math
import sys

import numpy as np

from .. import distributed as dist
from ..io import save_figure
from .image_io import class_colors


@functools.cache
def _figure_class():
    from matplotlib.figure import Figure

    class InlineFigure(Figure):
        """A matplotlib Figure that IPython shows as a PNG (``_repr_png_``) without pyplot."""

        def _repr_png_(self):
            buffer = io.BytesIO()
            self.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
            return buffer.getvalue()

    return InlineFigure


def blank_figure(width, height):
    """An empty Figure drawn by the Agg canvas (which renders to memory or files; it selects no backend)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    figure = _figure_class()(figsize=(width, height))
    FigureCanvasAgg(figure)
    return figure


def finish_figure(figure, fname=None):
    """The last step of every ``show_*`` and ``plot_*``: write ``figure`` as the PNG ``fname`` when it is
    given (``io.save_figure``; under data parallelism only rank 0 writes) and return the figure (Jupyter
    shows a returned figure)."""
    if fname is not None and dist.rank() == 0:
        save_figure(figure, fname)
    return figure


def show_inline(figure):
    """Display ``figure`` in a running IPython (a notebook shows it as a PNG); elsewhere do nothing."""
    ipython = sys.modules.get("IPython")
    if ipython is not None and ipython.get_ipython() is not None:
        from IPython.display import display
        display(figure)


def caption(batch, i, vocab=None):
    """The title of sample ``i``: its class name, its tags (multi-hot target), or its name."""
    if "target" not in batch:
        return str(batch["name"][i]) if "name" in batch else ""
    target = np.asarray(batch["target"][i])
    names = vocab if vocab is not None else [str(k) for k in range(max(target.size, int(target.max()) + 1))]
    if target.ndim == 1:                                   # multi-hot tags
        return " ".join(names[k] for k in np.flatnonzero(target > 0.5))
    return str(names[int(target)])


def overlay(image, mask, alpha=0.45):
    """The (H, W, 3) uint8 image blended with the class colours of an (H, W) index mask."""
    colors = class_colors(int(mask.max()) + 1)[mask].astype(np.float32)
    return (image.astype(np.float32) * (1 - alpha) + colors * alpha + 0.5).astype(np.uint8)


def class_legend(figure, classes, vocab=None):
    """A figure-wide legend: one colour swatch (the overlay's colour) per class index in ``classes``,
    named by ``vocab`` when given."""
    from matplotlib.patches import Patch

    classes = sorted(int(k) for k in classes)
    if not classes:
        return
    colors = class_colors(max(classes) + 1) / 255.0
    handles = [Patch(facecolor=colors[k], label=vocab[k] if vocab is not None and k < len(vocab) else str(k))
               for k in classes]
    rows = math.ceil(len(handles) / 6)
    figure.subplots_adjust(bottom=min(0.4, 0.2 * rows / figure.get_figheight()))
    figure.legend(handles=handles, loc="lower center", ncol=min(len(handles), 6), fontsize=7, frameon=False)


def show_batch(batch, fname=None, vocab=None, max_n=9, ncols=3):
    """A grid Figure of the first ``max_n`` samples of ``batch`` (a collated dict of NumPy arrays), also
    written as the PNG ``fname`` when given. Returns the Figure."""
    from matplotlib.patches import Rectangle

    images = np.asarray(batch["image"])
    n = min(max_n, len(images))
    ncols = min(ncols, n)
    nrows = math.ceil(n / ncols)
    figure = blank_figure(3 * ncols, 3.2 * nrows)
    for i in range(n):                                     # one panel per sample shown
        axes = figure.add_subplot(nrows, ncols, i + 1)
        shown = overlay(images[i], np.asarray(batch["mask"][i])) if "mask" in batch else images[i]
        axes.imshow(shown)
        axes.set_title(caption(batch, i, vocab), fontsize=8, wrap=True)
        axes.axis("off")
        if "boxes" in batch:
            labels = batch["labels"][i] if "labels" in batch else np.zeros(len(batch["boxes"][i]), int)
            colors = class_colors(int(max(labels, default=0)) + 2) / 255.0
            for (x1, y1, x2, y2), label in zip(np.asarray(batch["boxes"][i]), labels):
                axes.add_patch(Rectangle((x1 - 0.5, y1 - 0.5), x2 - x1, y2 - y1, fill=False, lw=1.5,
                                         edgecolor=colors[int(label) + 1]))
                name = vocab[int(label)] if vocab is not None else str(int(label))
                axes.text(x1, y1, name, fontsize=7, color="white", va="bottom",
                          bbox={"facecolor": colors[int(label) + 1], "pad": 1, "lw": 0})
    figure.tight_layout()
    if "mask" in batch:                                    # which colour is which class
        class_legend(figure, np.unique(np.asarray(batch["mask"][:n])), vocab)
    return finish_figure(figure, fname)

"""Progress bars (tqdm) and the per-epoch table.

Bars come from tqdm, a well-kept library: in a terminal its text bar redraws in place with the count,
items/s and the time left (ETA); in a Jupyter notebook with ipywidgets installed it is the notebook
widget (``tqdm.notebook``, what ``tqdm.auto`` picks there). Anywhere else (CI logs, pipes, the tests:
``sys.stdout.isatty()`` false and not in IPython) bars stay silent, and only the table's one line per
epoch is printed."""
import sys
from importlib.util import find_spec

from tqdm.std import tqdm as text_tqdm

from .callbacks import Callback


def _ipython_shell():
    """The running IPython shell's class name ('ZMQInteractiveShell' in Jupyter), or None."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None and hasattr(ipython, "get_ipython") else None
    return None if shell is None else type(shell).__name__


def interactive(stream=None):
    """True where a person watches: ``stream`` (default sys.stdout) is a terminal, or we run in IPython."""
    stream = sys.stdout if stream is None else stream
    return bool(getattr(stream, "isatty", lambda: False)()) or _ipython_shell() is not None


def progress_bar(iterable=None, total=None, desc="", unit="it", stream=None, leave=False, **tqdm_kwargs):
    """A tqdm bar over ``iterable`` (or one moved by ``update(n)`` up to ``total``) showing done/total,
    items/s and the ETA; silent (``disable=True``, the iterable passes through untouched) when not
    ``interactive``. In Jupyter it is the notebook widget when ipywidgets is importable, else the text bar
    (``tqdm.auto`` would raise there without ipywidgets). ``stream`` defaults to tqdm's (sys.stderr); other
    keywords (``mininterval``, ...) go to tqdm."""
    bar_class = text_tqdm
    if _ipython_shell() == "ZMQInteractiveShell" and find_spec("ipywidgets") is not None:
        from tqdm.notebook import tqdm as bar_class
    return bar_class(iterable, total=total, desc=desc, unit=unit, file=stream, leave=leave,
                     disable=not interactive(stream), dynamic_ncols=True, **tqdm_kwargs)


def format_cell(value, width):
    if value is None:
        text = "-"
    elif isinstance(value, float):
        text = f"{value:.6f}"
    else:
        text = str(value)
    return text.ljust(width)


def format_time(seconds):
    minutes, seconds = divmod(int(round(seconds)), 60)
    return f"{minutes:02d}:{seconds:02d}"


class ProgressCallback(Callback):
    """A bar for the batches of each epoch (training, then validation; the smoothed loss, and each smoothed
    loss term of a dict of losses, beside it) and, with ``table=True``, a table with one row per epoch:
    epoch, train_loss, valid_loss, the loss terms, the metrics, time.
    The LR finder runs it with ``table=False``: bars only."""

    order = 70

    def __init__(self, table=True):
        self.table = table

    def before_fit(self):
        self.bar, self.names = None, None

    def _print_header(self):
        """The table's header, printed with its first row: a dict of losses names its columns only once the
        first batch has run."""
        self.names = self.learn.column_names()
        self.widths = [max(len(name), 10) for name in self.names]
        print("  ".join(name.ljust(w) for name, w in zip(self.names, self.widths)), flush=True)

    def _start_bar(self, phase):
        self._close_bar()
        self.bar = progress_bar(total=len(self.learn.dl), unit="batch",
                                desc=f"epoch {self.learn.epoch + 1}/{self.learn.n_epoch} {phase}")

    def _close_bar(self):
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def before_train(self):
        self._start_bar("train")

    def before_validate(self):
        self._start_bar("valid")

    def after_batch(self):
        if self.learn.training:
            recorder = self.learn.recorder
            terms = "".join(f" {name} {smooth.value:.4f}" for name, smooth in recorder.smooth_terms.items())
            self.bar.set_postfix_str(f"loss {recorder.smooth.value:.4f}{terms}", refresh=False)
        self.bar.update(1)

    def after_train(self):
        self._close_bar()

    def after_validate(self):
        self._close_bar()

    def after_epoch(self):
        if self.table:
            if self.names is None:
                self._print_header()
            values = dict(self.learn.epoch_values, time=format_time(self.learn.epoch_values["time"]))
            print("  ".join(format_cell(values[name], w) for name, w in zip(self.names, self.widths)), flush=True)

    def after_fit(self):
        self._close_bar()

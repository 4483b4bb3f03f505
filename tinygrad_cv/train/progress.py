"""A text progress bar and the per-epoch table.

On a terminal the bar redraws itself in place (at most ten times a second); anywhere else (a log file,
a notebook's captured output, the tests) it stays silent, and only the table's one line per epoch is
printed."""
import sys
import time

from .callbacks import Callback


class ProgressBar:
    """``update(done, comment)`` draws  `label  |#########-----------| 12/40  comment`  on a TTY."""

    def __init__(self, total, label="", width=30, stream=None):
        self.total, self.label, self.width = total, label, width
        self.stream = stream or sys.stdout
        self.live = bool(getattr(self.stream, "isatty", lambda: False)())
        self.last_draw, self.drawn = 0.0, 0

    def update(self, done, comment=""):
        now = time.perf_counter()
        if not self.live or (now - self.last_draw < 0.1 and done < self.total):
            return
        filled = self.width * done // max(self.total, 1)
        line = f"{self.label} |{'#' * filled}{'-' * (self.width - filled)}| {done}/{self.total} {comment}"
        self.stream.write("\r" + line.ljust(self.drawn))
        self.stream.flush()
        self.last_draw, self.drawn = now, len(line)

    def close(self):
        """Erase the bar, so that the next line starts clean."""
        if self.live and self.drawn:
            self.stream.write("\r" + " " * self.drawn + "\r")
            self.stream.flush()
        self.drawn = 0


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
    """Bars for the batches of each epoch (training, then validation) and a table with one row per epoch:
    epoch, train_loss, valid_loss, the metrics, time."""

    order = 70

    def before_fit(self):
        self.bar = None
        self.names = self.learn.column_names()
        self.widths = [max(len(name), 10) for name in self.names]
        print("  ".join(name.ljust(w) for name, w in zip(self.names, self.widths)))

    def _start_bar(self, phase):
        label = f"epoch {self.learn.epoch + 1}/{self.learn.n_epoch} {phase}"
        self.bar = ProgressBar(len(self.learn.dl), label)

    def before_train(self):
        self._start_bar("train")

    def before_validate(self):
        self._start_bar("valid")

    def after_batch(self):
        comment = f"loss {self.learn.recorder.smooth.value:.4f}" if self.learn.training else ""
        self.bar.update(self.learn.iter + 1, comment)

    def after_train(self):
        self.bar.close()

    def after_validate(self):
        self.bar.close()

    def after_epoch(self):
        values = dict(self.learn.epoch_values, time=format_time(self.learn.epoch_values["time"]))
        print("  ".join(format_cell(values[name], w) for name, w in zip(self.names, self.widths)), flush=True)

    def after_fit(self):
        if self.bar is not None:
            self.bar.close()

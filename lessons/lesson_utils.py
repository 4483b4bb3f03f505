"""What every lesson shares: the command line (--quick, --out), the quick mode from TINYGRAD_CV_QUICK,
and figures that are saved to the output folder and, in a notebook, also shown inline."""
import argparse
import os
import sys

QUICK_ENV = "TINYGRAD_CV_QUICK"
# The lessons' folder. A notebook has no __file__, so a lesson that needs its own path (to launch itself
# again, e.g. under mpiexec) takes it from here: os.path.join(LESSONS_DIR, "15_data_parallel.py").
LESSONS_DIR = os.path.dirname(os.path.abspath(__file__))


def in_notebook():
    """True when running inside an IPython kernel (Jupyter), whose command line is the kernel's own."""
    ipython = sys.modules.get("IPython")
    return ipython is not None and getattr(ipython, "get_ipython", lambda: None)() is not None


def quick_from_env():
    """TINYGRAD_CV_QUICK=1 selects the quick mode, 0 or unset the full one; anything else is an error."""
    value = os.environ.get(QUICK_ENV, "0").strip()
    if value not in ("", "0", "1"):
        raise ValueError(f"lessons: {QUICK_ENV} must be 0 or 1, got {value!r}")
    return value == "1"


def parse_args(description, default_out, data=None, configure=None, full_minutes=None):
    """--quick runs a small version (the tests use it; so does TINYGRAD_CV_QUICK=1); --out is the folder for
    figures; with ``data`` (a dataset name), --data is where the lesson generates its dataset
    (out/data/<name> by default). ``configure(parser)`` may add a lesson's own options. Inside a notebook
    the kernel's own arguments (``-f kernel.json``) are ignored. In quick mode the first line printed says
    that this is a smoke run and, with ``full_minutes``, how long the full run took when measured."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help=f"a small, fast run (used by the tests; or {QUICK_ENV}=1)")
    parser.add_argument("--out", default=os.path.join("out", default_out), help="folder for figures")
    if data is not None:
        parser.add_argument("--data", default=os.path.join("out", "data", data), help="where the data is generated")
    if configure is not None:
        configure(parser)
    args = parser.parse_known_args([])[0] if in_notebook() else parser.parse_args()
    args.quick = args.quick or quick_from_env()
    os.makedirs(args.out, exist_ok=True)
    if args.quick:
        took = (f"took about {full_minutes:g} min when measured (README, results)" if full_minutes
                else "is longer (its time is not measured yet)")
        print(f"SMOKE RUN (quick mode): sizes cut down to check that every step runs, so its numbers are not the "
              f"lesson's results; the full run (no --quick, {QUICK_ENV} unset) {took}.")
    return args


def pyplot():
    """matplotlib.pyplot: the inline backend in a notebook, the file-only Agg backend elsewhere (lessons run
    without a screen)."""
    import matplotlib
    if not in_notebook():
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def save_lesson_figure(fig, out, name):
    """Save a matplotlib figure as the PNG ``name`` in ``out`` (``tinygrad_cv.io.save_figure``: atomic),
    say where it is, show it inline in a notebook, then close it (so it is shown once and its memory is
    freed)."""
    from tinygrad_cv.io import save_figure
    path = save_figure(fig, os.path.join(out, name))
    print(f"figure: {path}")
    if in_notebook():
        from IPython.display import display
        display(fig)
    import matplotlib.pyplot as plt
    plt.close(fig)
    return path


def show_file(path):
    """Say where a figure that the library wrote (a PNG path) is, and show it inline in a notebook."""
    print(f"figure: {path}")
    if in_notebook():
        from IPython.display import Image, display
        display(Image(filename=str(path)))
    return path

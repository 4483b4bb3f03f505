"""What every lesson shares: the command line (--quick, --out) and saving figures where it says."""
import argparse
import os


def parse_args(description, default_out, data=None, configure=None):
    """--quick runs a small version (the tests use it); --out is the folder for figures; with ``data``
    (a dataset name), --data is where the lesson generates its dataset (out/data/<name> by default).
    ``configure(parser)`` may add a lesson's own options."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help="a small, fast run (used by the tests)")
    parser.add_argument("--out", default=os.path.join("out", default_out), help="folder for figures")
    if data is not None:
        parser.add_argument("--data", default=os.path.join("out", "data", data), help="where the data is generated")
    if configure is not None:
        configure(parser)
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    return args


def save_figure(fig, out, name):
    """Save a matplotlib figure as PNG in ``out`` and say where it is."""
    path = os.path.join(out, name)
    fig.savefig(path, dpi=100, bbox_inches="tight")
    print(f"figure: {path}")
    return path


def pyplot():
    """matplotlib.pyplot with the file-only Agg backend (lessons run without a screen)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt

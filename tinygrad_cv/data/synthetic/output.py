"""Where the synthetic generators write: a finished dataset folder holds ``synthetic.json`` (kind, n,
size, seed), written last, so a folder with that file is complete, and asking again for the same
dataset returns at once; a run that was interrupted is simply run again (every file is written
atomically, and the same seed redraws the same images)."""
import json
import os
from pathlib import Path

from ..image_io import write_text

MANIFEST = "synthetic.json"


def is_complete(out, params):
    """True when ``out`` already holds the dataset described by ``params``."""
    try:
        with open(Path(out) / MANIFEST, encoding="utf-8") as file:
            return json.load(file) == params
    except (OSError, ValueError):
        return False


def mark_complete(out, params):
    write_text(Path(out) / MANIFEST, json.dumps(params, indent=1) + "\n")


def prepare(out, folders=(), stale=()):
    """Create ``out`` and its sub-``folders``; remove an earlier manifest and the files matching the
    ``stale`` glob patterns (an earlier run's images, which a larger ``n`` may have left behind)."""
    out = Path(out)
    for folder in (out, *(out / f for f in folders)):
        folder.mkdir(parents=True, exist_ok=True)
    for path in [out / MANIFEST, *(p for pattern in stale for p in out.glob(pattern))]:
        if path.exists():
            os.remove(path)
    return out

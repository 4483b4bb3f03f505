"""The one error type of the data readers, and the two value tests their checks share.

``DataFormatError`` is raised wherever a file's content (a CSV, a text list, a COCO JSON, an RLE,
an image or a mask) is not what its reader expects. It is a ``ValueError``, so existing ``except
ValueError`` code keeps working, and its message names the file (and the line, annotation or
image) and says what to do. ``image_io.ImageReadError`` is its subclass for undecodable images.
"""
import math
import numbers


class DataFormatError(ValueError):
    """A data file whose content is malformed or inconsistent; the message names where and why."""


def is_integer(value):
    """An int of JSON (or NumPy), not a bool."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def is_finite_number(value):
    """A JSON number that fits a float (not a bool, NaN or infinity)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return False
    try:
        return math.isfinite(float(value))
    except OverflowError:
        return False

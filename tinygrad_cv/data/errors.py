"""The one error type of the data readers.

``DataFormatError`` is raised wherever a file's content (a CSV, a text list, a COCO JSON, an RLE,
an image or a mask) is not what its reader expects. It is a ``ValueError``, so existing ``except
ValueError`` code keeps working, and its message names the file (and the line, annotation or
image) and says what to do. ``image_io.ImageReadError`` is its subclass for undecodable images.
"""


class DataFormatError(ValueError):
    """A data file whose content is malformed or inconsistent; the message names where and why."""

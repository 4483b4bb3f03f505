"""The data layer: files -> samples -> transformed, batched, normalised Tensors on the device.

    dataset.py     the Dataset protocol; samples are dicts (image, target, mask, boxes, ...);
                   Subset, ConcatDataset, random_split
    image_io.py    read/write images and masks with Pillow (atomically, through tinygrad_cv.io)
    readers.py     CSV, text lists and COCO JSON, checked
    errors.py      DataFormatError, the one error of malformed data files
    transforms/    seeded joint transforms (flips, dihedral, rotate, zoom, perspective, lighting),
                   one resampling per sample; Normalize (geometry, sampling, recipes)
    loader.py      DataLoader (prefetching worker processes, reproducible), default_collate,
                   DataLoaders (train/valid/test -> Tensors)
    sampler.py     SequentialSampler, RandomSampler, SubsetRandomSampler, WeightedRandomSampler,
                   BatchSampler; DistributedSampler: each rank's share of the indices, as PyTorch's
    block.py       the data block: get, split, label, transform, load
    synthetic/     planet-like, camvid-like and COCO "shapes" datasets written in the real formats
    show.py        show_batch figures
"""
from .block import (CocoLabel, DataRecipe, FolderLabel, FolderSplit, ListSplit, MaskLabel,  # noqa: F401
                    RandomSplit, TagLabels, camvid_recipe, coco_recipe, image_files, planet_recipe)
from .dataset import ConcatDataset, Dataset, ItemDataset, Subset, random_split  # noqa: F401
from .image_io import (IMAGE_EXTENSIONS, ImageReadError, class_colors, image_size, read_image,  # noqa: F401
                       read_mask, write_image, write_mask)
from .loader import DataLoader, DataLoaders, DeviceLoader, batch_to_tensors, default_collate  # noqa: F401
from .errors import DataFormatError  # noqa: F401
from .readers import Coco, CsvRow, csv_rows, read_lines  # noqa: F401
from .sampler import (BatchSampler, DistributedSampler, RandomSampler, SequentialSampler,  # noqa: F401
                      SubsetRandomSampler, WeightedRandomSampler)
from .transforms import (IMAGENET_STATS, Compose, Dihedral, Flip, Lighting, Normalize, Perspective,  # noqa: F401
                         RandomCrop, Resize, Rotate, Zoom, aug_transforms, valid_transforms)

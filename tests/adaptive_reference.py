"""The adaptive-pooling reference by loops, shared by the adaptive pools' tests and interpolate's
'area' mode (which PyTorch defines as adaptive average pooling)."""
import math

import numpy as np


def adaptive_bins(size, out):
    """PyTorch's bins: output i averages input [floor(i * size / out), ceil((i + 1) * size / out))."""
    return [(math.floor(i * size / out), math.ceil((i + 1) * size / out)) for i in range(out)]


def naive_adaptive_avg_pool(x, out_size):
    """The mean of each adaptive bin of (N, C, H, W), one output pixel at a time."""
    out = np.zeros(x.shape[:2] + tuple(out_size))
    for i, (r0, r1) in enumerate(adaptive_bins(x.shape[2], out_size[0])):
        for j, (c0, c1) in enumerate(adaptive_bins(x.shape[3], out_size[1])):
            out[:, :, i, j] = x[:, :, r0:r1, c0:c1].mean(axis=(2, 3))
    return out

"""Shared test settings: hypothesis profiles and the device list every parametrized test runs over."""
import os

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

import tinygrad_cv as tg

# "ci": bounded and without deadlines, so the suite is fast and stable on a 2-core machine.
settings.register_profile("ci", max_examples=12, deadline=None, derandomize=True,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.register_profile("thorough", max_examples=200, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

# cpu and emu always; cuda is skipped (and counted as skipped) when CuPy has no device.
DEVICES = [
    "cpu",
    "emu",
    pytest.param("cuda", marks=pytest.mark.skipif(not tg.cuda_available(), reason="no CUDA device")),
]


@pytest.fixture(autouse=True)
def _seed():
    tg.manual_seed(0)
    np.random.seed(0)

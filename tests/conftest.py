"""Shared test settings: hypothesis profiles, the device list every parametrized test runs over, and the
``torch`` marker of the PyTorch comparisons."""
import inspect
import os
import re

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


# ----------------------------------------------------------------------------- PyTorch comparisons
# A test that compares against PyTorch (it calls pytest.importorskip("torch") or "torchvision", or its
# module imports torch) is marked ``torch``, so that ``make test-torch`` runs exactly those with
# ``-m torch``. There TINYGRAD_CV_REQUIRE_TORCH=1 is set, and a comparison skipped because torch or
# torchvision cannot be imported fails instead: a green run means every comparison ran.
_TORCH_IMPORT = re.compile(r"""importorskip\(\s*["']torch(vision)?["']""")


def _compares_with_torch(item):
    function = getattr(item, "function", None)
    if function is None:
        return False
    if inspect.ismodule(getattr(inspect.getmodule(function), "torch", None)):
        return True
    return _TORCH_IMPORT.search(inspect.getsource(function)) is not None


# A test marked ``gpu`` checks what only a real GPU can show (benchmarks/gpu_check.py runs them with
# ``-m gpu``); in any other run it is skipped, so it is never counted as coverage.
_GPU_ONLY = pytest.mark.skip(reason="a GPU check: runs only under -m gpu (python benchmarks/gpu_check.py)")


def pytest_collection_modifyitems(config, items):
    gpu_run = "gpu" in (config.option.markexpr or "")
    for item in items:
        if _compares_with_torch(item):
            item.add_marker(pytest.mark.torch)
        if not gpu_run and item.get_closest_marker("gpu") is not None:
            item.add_marker(_GPU_ONLY)


def _torch_required():
    return os.environ.get("TINYGRAD_CV_REQUIRE_TORCH") == "1"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if _torch_required() and report.skipped and item.get_closest_marker("torch") is not None \
            and "torch" in str(report.longrepr):
        report.outcome = "failed"
        report.longrepr = f"{item.nodeid}: a PyTorch comparison was skipped ({report.longrepr}) " \
                          f"although TINYGRAD_CV_REQUIRE_TORCH=1 asks for every comparison to run"

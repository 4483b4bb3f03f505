"""Every CUDA kernel compiles for real GPUs, with no GPU present: NVRTC, the compiler CuPy uses.

Each ``kernels/*.cu`` file is compiled to a cubin for sm_75 (Turing), sm_80 (Ampere) and sm_90
(Hopper) through ``cupy.cuda.nvrtc`` with the options ``cupy.RawModule`` passes, plus
``-Xptxas -v``: NVRTC 12.9 runs ptxas itself and puts its report (registers, stack frame, spill
stores and loads per kernel) in the program log. Every kernel must use at most 64 registers per
thread (so that 4 blocks of 256 threads fit on an SM) and spill nothing to local memory.

``nvcc`` (CUDA 13 on these machines; it still supports sm_75, and lists up to sm_121) gives a second
opinion when it is on PATH: the same files must compile and meet the same limits, for each of the
architectures that ``nvcc --list-gpu-arch`` offers (the others are skipped). NVRTC stays the
reference, since it is what runs on a GPU machine.
"""
import functools
import shutil
import subprocess

import pytest

from tinygrad_cv.backend import emulator, nvrtc
from tinygrad_cv.io import atomic_write_bytes

pytest.importorskip("cupy", reason="the compile checks need CuPy (pip install -e '.[gpu]')")

MAX_REGISTERS = 64
FILES = nvrtc.kernel_names()


def entry_points(name):
    """The extern "C" __global__ kernels of kernels/<name>.cu, read from the source."""
    return {k.name for k in emulator.parse_kernels(nvrtc.read_kernel(name))}


def assert_within_limits(usage, name, arch, compiler):
    assert set(usage) == entry_points(name), f"{compiler} reported kernels {sorted(usage)} for {name}.cu"
    for kernel, r in usage.items():
        where = f"on sm_{arch} ({compiler})"
        assert r.registers <= MAX_REGISTERS, f"{kernel} uses {r.registers} registers {where}"
        assert r.spill_stores == 0 and r.spill_loads == 0, \
            f"{kernel} spills {r.spill_stores} bytes stored / {r.spill_loads} loaded {where}"


def test_every_kernel_file_is_checked():
    assert {"activation", "batchnorm", "im2col", "loss", "nonfinite", "pool", "roi_align"} <= set(FILES)


@pytest.mark.parametrize("arch", nvrtc.ARCHS)
@pytest.mark.parametrize("name", FILES)
def test_nvrtc_compiles_within_register_budget(name, arch):
    compiled = nvrtc.compile_cubin(nvrtc.read_kernel(name), arch, f"{name}.cu")
    assert compiled.cubin[:4] == b"\x7fELF", "NVRTC's cubin must be an ELF image"
    assert_within_limits(nvrtc.resource_usage(compiled.log), name, arch, "NVRTC")


def test_nvrtc_reports_errors_with_the_log():
    broken = nvrtc.read_kernel("nonfinite").replace("*flag = 1;", "*flag = undefined_name;")
    with pytest.raises(RuntimeError, match="undefined_name"):
        nvrtc.compile_cubin(broken, "80", "broken.cu")


def test_resource_usage_parses_a_ptxas_report():
    log = ("ptxas info    : Compiling entry function 'k' for 'sm_80'\n"
           "ptxas info    : Function properties for k\n"
           "    16 bytes stack frame, 8 bytes spill stores, 4 bytes spill loads\n"
           "ptxas info    : Used 70 registers, used 0 barriers, 372 bytes cmem[0]\n")
    r = nvrtc.resource_usage(log)["k"]
    assert (r.registers, r.spill_stores, r.spill_loads, r.stack_frame) == (70, 8, 4, 16)


def nvcc_resource_usage(name, arch, tmp_path):
    """Compile kernels/<name>.cu with nvcc (its own cuda_fp16.h) and return ptxas's report, cached."""
    source = nvrtc.read_kernel(name)
    version = subprocess.run(["nvcc", "--version"], capture_output=True, text=True).stdout
    key = nvrtc.source_hash(source, nvrtc.headers_text(), version, arch)
    log_path = nvrtc.cache_dir("nvcc") / f"{key}.log"
    if not log_path.is_file():
        command = ["nvcc", "-cubin", f"-arch=sm_{arch}", "-Xptxas", "-v", f"-I{nvrtc.KERNEL_DIR}",
                   str(nvrtc.KERNEL_DIR / f"{name}.cu"), "-o", str(tmp_path / f"{name}.cubin")]
        result = subprocess.run(command, capture_output=True, text=True)
        assert result.returncode == 0, f"nvcc could not compile {name}.cu for sm_{arch}:\n{result.stderr}"
        atomic_write_bytes(log_path, (result.stdout + result.stderr).encode())
    return nvrtc.resource_usage(log_path.read_text())


@functools.lru_cache(maxsize=None)
def nvcc_archs():
    """The virtual architectures this nvcc can compile for, e.g. {'75', '80', '90', ...}."""
    listing = subprocess.run(["nvcc", "--list-gpu-arch"], capture_output=True, text=True).stdout
    return {line.strip().removeprefix("compute_") for line in listing.split()}


@pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc is not on PATH")
@pytest.mark.parametrize("arch", nvrtc.ARCHS)
@pytest.mark.parametrize("name", FILES)
def test_nvcc_second_opinion(name, arch, tmp_path):
    if arch not in nvcc_archs():
        pytest.skip(f"this nvcc cannot compile for sm_{arch}")
    assert_within_limits(nvcc_resource_usage(name, arch, tmp_path), name, arch, "nvcc")

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
import importlib.util
import shutil
import subprocess

import pytest

from tinygrad_cv.backend import emulator, nvrtc
from tinygrad_cv.io import atomic_write_bytes

needs_cupy = pytest.mark.skipif(importlib.util.find_spec("cupy") is None,
                                reason="the NVRTC compile checks need CuPy (pip install -e '.[gpu]')")

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
    assert {"activation", "batchnorm", "im2col", "loss", "nms", "nonfinite", "pool", "roi_align"} <= set(FILES)


@needs_cupy
@pytest.mark.parametrize("arch", nvrtc.ARCHS)
@pytest.mark.parametrize("name", FILES)
def test_nvrtc_compiles_within_register_budget(name, arch):
    compiled = nvrtc.compile_cubin(nvrtc.read_kernel(name), arch, f"{name}.cu")
    assert compiled.cubin[:4] == b"\x7fELF", "NVRTC's cubin must be an ELF image"
    assert_within_limits(nvrtc.resource_usage(compiled.log), name, arch, "NVRTC")


@needs_cupy
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


# ---------------------------------------------------------------------------------------- cuda_fp16.h search
def fake_headers(include_dir, version):
    """A fake CUDA include directory: cuda_fp16.h and the CUDART_VERSION line of cuda_runtime_api.h."""
    include_dir.mkdir(parents=True)
    (include_dir / "cuda_fp16.h").write_text("// fake\n")
    if version is not None:
        major, minor = version
        (include_dir / "cuda_runtime_api.h").write_text(f"#define CUDART_VERSION  {major * 1000 + minor * 10}\n")
    return include_dir.resolve()


@pytest.fixture
def fake_installs(tmp_path):
    """Two site-packages with NVIDIA wheels, CUDA_PATH, /usr/local/cuda and versioned toolkits."""
    site_a, site_b, local = tmp_path / "site_a" / "nvidia", tmp_path / "site_b" / "nvidia", tmp_path / "local"
    dirs = {
        "cu13": fake_headers(site_a / "cu13" / "include", (13, 0)),
        "cu12_wheel": fake_headers(site_a / "cuda_runtime" / "include", (12, 9)),
        "cu14": fake_headers(site_b / "cu14" / "include", (14, 1)),
        "cuda_path": fake_headers(tmp_path / "custom" / "include", None),
        "local_cuda": fake_headers(local / "cuda" / "include", (13, 0)),
        "cuda_12_4": fake_headers(local / "cuda-12.4" / "include", (12, 4)),
        "cuda_12_10": fake_headers(local / "cuda-12.10" / "include", (12, 10)),
    }
    (local / "cuda-11.8" / "include").mkdir(parents=True)  # no cuda_fp16.h: not a candidate
    (site_b / "cu_extra" / "include").mkdir(parents=True)  # not a cuNN directory
    search = dict(nvidia_dirs=[site_a, site_b], environ={"CUDA_PATH": str(tmp_path / "custom")},
                  toolkit_root=local)
    return dirs, search


def test_header_candidates_search_order(fake_installs):
    dirs, search = fake_installs
    names = {path: name for name, path in dirs.items()}
    found = [names[p] for p in nvrtc.header_candidates(**search)]
    assert found == ["cu13", "cu12_wheel", "cu14", "cuda_path", "local_cuda", "cuda_12_10", "cuda_12_4"]


def test_header_version(fake_installs):
    dirs, _ = fake_installs
    assert nvrtc.header_version(dirs["cu12_wheel"]) == (12, 9)
    assert nvrtc.header_version(dirs["cuda_12_10"]) == (12, 10)
    assert nvrtc.header_version(dirs["cuda_path"]) is None


@pytest.mark.parametrize("version, expected", [
    ((13, 0), "cu13"),         # the first exact match: the wheel before the toolkit
    ((12, 9), "cu12_wheel"),
    ((12, 4), "cuda_12_4"),    # an exact match wins over an earlier one of the same major version
    ((12, 8), "cu12_wheel"),   # no exact match: the first of the same major version
    ((14, 0), "cu14"),
    ((11, 8), "cu13"),         # nothing of this major version: the first found
])
def test_cuda_include_dir_prefers_the_nvrtc_version(fake_installs, version, expected):
    dirs, search = fake_installs
    assert nvrtc.cuda_include_dir(version, **search) == dirs[expected]


@pytest.mark.parametrize("loaded, expected", [((12, 9), "cu12_wheel"), ((13, 0), "cu13")])
def test_cuda_include_dir_asks_the_loaded_nvrtc(fake_installs, monkeypatch, loaded, expected):
    dirs, search = fake_installs
    monkeypatch.setattr(nvrtc, "nvrtc_version", lambda: loaded)
    assert nvrtc.cuda_include_dir(**search) == dirs[expected]


def test_cuda_include_dir_without_headers_says_what_to_install(tmp_path):
    with pytest.raises(RuntimeError, match=r"cuda_fp16.h was not found.*gpu13"):
        nvrtc.cuda_include_dir((12, 9), nvidia_dirs=[tmp_path], environ={}, toolkit_root=tmp_path)


@needs_cupy
def test_this_machine_compiles_with_headers_of_its_nvrtc():
    loaded = nvrtc.nvrtc_version()
    versions = [nvrtc.header_version(p) for p in nvrtc.header_candidates()]
    chosen = nvrtc.header_version(nvrtc.cuda_include_dir())
    if loaded[:2] in versions:
        assert chosen == loaded[:2]
    elif any(v is not None and v[0] == loaded[0] for v in versions):
        assert chosen[0] == loaded[0]

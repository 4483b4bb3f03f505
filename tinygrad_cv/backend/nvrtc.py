"""The CUDA kernel sources, where compiled things are cached, and how NVRTC compiles the kernels.

The kernels are ``kernels/*.cu`` files inside the package: one text for NVRTC (through
``cupy.RawModule`` on a GPU, through ``cupy.cuda.nvrtc`` for the compile checks) and for g++ (the
emulator). Each file includes ``kernels/common.h``; ``cuda_fp16.h`` comes from the
``nvidia-cuda-runtime-cu12`` wheel.

Compiling needs no GPU: ``cupy.cuda.nvrtc`` is CuPy's binding of the NVRTC library, and given an
explicit ``-arch=sm_XX`` it produces a cubin (machine code) and, with ``-Xptxas -v``, ptxas's report
of registers and spills per kernel. (CuPy's high-level compile asks the device for its architecture
first, which fails on a machine without one.)
"""
import hashlib
import importlib.util
import os
import re
from dataclasses import dataclass
from pathlib import Path

from ..io import atomic_write_bytes

KERNEL_DIR = Path(__file__).resolve().with_name("kernels")
PROJECT_ROOT = Path(__file__).resolve().parents[2]
# The architectures the compile checks cover: Turing (T4), Ampere (A100), Hopper (H100).
ARCHS = ("75", "80", "90")


def kernel_names():
    """The kernel files, by stem: ``['activation', 'batchnorm', 'im2col', ...]``."""
    return sorted(p.stem for p in KERNEL_DIR.glob("*.cu"))


def read_kernel(name):
    """The source text of ``kernels/<name>.cu``."""
    path = KERNEL_DIR / f"{name}.cu"
    if not path.is_file():
        raise ValueError(f"read_kernel: no kernel file {path.name} in {KERNEL_DIR}; "
                         f"the files are {kernel_names()}")
    return path.read_text()


def headers_text():
    """The text of every header the kernels (or the emulator) include, for cache keys."""
    return "".join(p.read_text() for p in sorted(KERNEL_DIR.glob("*.h")))


def cache_dir(kind):
    """``<project>/.cache/<kind>`` (git-ignored), created on demand.

    ``TINYGRAD_CV_CACHE`` overrides the root; an installed package (no pyproject.toml above it)
    uses ``~/.cache/tinygrad_cv``.
    """
    root = os.environ.get("TINYGRAD_CV_CACHE")
    if root is None:
        in_checkout = (PROJECT_ROOT / "pyproject.toml").is_file()
        root = PROJECT_ROOT / ".cache" if in_checkout else Path.home() / ".cache" / "tinygrad_cv"
    path = Path(root) / kind
    path.mkdir(parents=True, exist_ok=True)
    return path


def source_hash(*parts):
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:24]


def cuda_include_dir():
    """The directory holding ``cuda_fp16.h``: the nvidia-cuda-runtime-cu12 wheel's, else a CUDA toolkit's."""
    spec = importlib.util.find_spec("nvidia.cuda_runtime")
    candidates = [Path(p) / "include" for p in (spec.submodule_search_locations if spec else [])]
    candidates += [Path(os.environ.get("CUDA_PATH", "/usr/local/cuda")) / "include"]
    for path in candidates:
        if (path / "cuda_fp16.h").is_file():
            return path
    raise RuntimeError("cuda_fp16.h was not found: install the GPU extra (pip install -e '.[gpu]', which "
                       "brings nvidia-cuda-runtime-cu12) or set CUDA_PATH to a CUDA toolkit")


def compile_options():
    """Options for ``cupy.RawModule``: our include directory and cuda_fp16.h's. (CuPy adds -ftz=true
    and the architecture itself.)"""
    return (f"-I{KERNEL_DIR}", f"-I{cuda_include_dir()}")


def nvrtc_options(arch):
    """Everything ``cupy.RawModule`` passes to NVRTC for device ``arch``, plus ptxas's resource report."""
    return compile_options() + ("-ftz=true", f"-arch=sm_{arch}", "--device-as-default-execution-space",
                                "-Xptxas", "-v")


@dataclass(frozen=True)
class Compiled:
    cubin: bytes
    log: str  # NVRTC's log, with ptxas's per-kernel resource report


def compile_cubin(source, arch, filename="kernel.cu"):
    """Compile CUDA ``source`` for ``sm_<arch>`` with NVRTC (no GPU needed); cached under .cache/nvrtc.

    Raises RuntimeError with NVRTC's log when the source does not compile.
    """
    from cupy.cuda import nvrtc

    options = nvrtc_options(arch)
    key = source_hash(source, headers_text(), str(options), str(nvrtc.getVersion()))
    cubin_path = cache_dir("nvrtc") / f"{key}.cubin"
    log_path = cubin_path.with_suffix(".log")
    if cubin_path.is_file() and log_path.is_file():
        return Compiled(cubin_path.read_bytes(), log_path.read_text())
    program = nvrtc.createProgram(source, filename, [], [])
    try:
        try:
            nvrtc.compileProgram(program, list(options))
        except nvrtc.NVRTCError as error:
            raise RuntimeError(f"NVRTC could not compile {filename} for sm_{arch} ({error}):\n"
                               f"{nvrtc.getProgramLog(program)}") from None
        compiled = Compiled(nvrtc.getCUBIN(program), nvrtc.getProgramLog(program))
    finally:
        nvrtc.destroyProgram(program)
    atomic_write_bytes(log_path, compiled.log.encode())
    atomic_write_bytes(cubin_path, compiled.cubin)
    return compiled


@dataclass(frozen=True)
class Resources:
    registers: int
    spill_stores: int  # bytes
    spill_loads: int   # bytes
    stack_frame: int   # bytes of local memory per thread


_ENTRY = re.compile(r"Compiling entry function '(\w+)'")
_FRAME = re.compile(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads")
_REGISTERS = re.compile(r"Used (\d+) registers")


def resource_usage(log):
    """ptxas's report in an NVRTC log, as ``{kernel name: Resources}``."""
    usage = {}
    pieces = _ENTRY.split(log)  # [preamble, name1, report1, name2, report2, ...]
    for name, report in zip(pieces[1::2], pieces[2::2]):
        frame, registers = _FRAME.search(report), _REGISTERS.search(report)
        if frame is None or registers is None:
            raise ValueError(f"resource_usage: no register/spill report for kernel {name} in the log:\n"
                             f"{report}")
        stack, stores, loads = map(int, frame.groups())
        usage[name] = Resources(int(registers.group(1)), stores, loads, stack)
    return usage

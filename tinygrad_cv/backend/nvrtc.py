"""The CUDA kernel sources, where compiled things are cached, and how NVRTC compiles the kernels.

The kernels are ``kernels/*.cu`` files inside the package: one text for NVRTC (through
``cupy.RawModule`` on a GPU, through ``cupy.cuda.nvrtc`` for the compile checks) and for g++ (the
emulator). Each file includes ``kernels/common.h``; ``cuda_fp16.h`` comes from the NVIDIA wheels
(``nvidia-cuda-runtime-cu12`` for CUDA 12, ``nvidia-cuda-runtime`` for CUDA 13) or a CUDA toolkit, of
the version of the NVRTC that CuPy loaded where there is a choice (``cuda_include_dir``).

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


# CuPy compiles every RawModule with -ftz=true: fp32 denormals (inputs and results) are flushed to
# zero; fp64 and fp16 arithmetic keeps them (-ftz acts on single precision only). The compile checks
# pass the same option, and the emulator models it (emulator.py).
FTZ_OPTION = "-ftz=true"
TOOLKIT_ROOT = Path("/usr/local")
_CUDART_VERSION = re.compile(r"#define\s+CUDART_VERSION\s+(\d+)")


def nvrtc_version():
    """(major, minor) of the NVRTC library CuPy loaded, e.g. (12, 9) or (13, 0)."""
    from cupy.cuda import nvrtc

    return tuple(nvrtc.getVersion())


def header_version(include_dir):
    """(major, minor) of the CUDA headers in ``include_dir``, read from ``cuda_runtime_api.h``'s
    ``#define CUDART_VERSION 12090`` (= 1000 * major + 10 * minor), or None when it is not there."""
    path = Path(include_dir) / "cuda_runtime_api.h"
    match = _CUDART_VERSION.search(path.read_text(errors="replace")) if path.is_file() else None
    return None if match is None else divmod(int(match.group(1)) // 10, 100)


def _wheel_include_dirs(nvidia_dirs):
    """Where the NVIDIA wheels put the CUDA headers under each ``site-packages/nvidia`` directory:
    ``cu13/include`` (CUDA 13 and later: one directory per major version, newest first), then
    ``cuda_runtime/include`` (the CUDA 12 wheel nvidia-cuda-runtime-cu12)."""
    dirs = []
    for nvidia in map(Path, nvidia_dirs):
        majors = [p for p in nvidia.glob("cu*") if re.fullmatch(r"cu\d+", p.name)]
        majors.sort(key=lambda p: int(p.name[2:]), reverse=True)
        dirs += [p / "include" for p in majors] + [nvidia / "cuda_runtime" / "include"]
    return dirs


def _toolkit_include_dirs(environ, toolkit_root):
    """A CUDA toolkit's headers: ``$CUDA_PATH``, ``$CUDA_HOME``, ``<root>/cuda``, then the versioned
    ``<root>/cuda-X.Y`` installs, newest first."""
    roots = [Path(environ[name]) for name in ("CUDA_PATH", "CUDA_HOME") if environ.get(name)]
    versioned = [p for p in Path(toolkit_root).glob("cuda-*") if re.fullmatch(r"cuda-\d+(\.\d+)?", p.name)]
    versioned.sort(key=lambda p: tuple(int(v) for v in p.name[5:].split(".")), reverse=True)
    return [r / "include" for r in roots + [Path(toolkit_root) / "cuda"] + versioned]


def header_candidates(nvidia_dirs=None, environ=None, toolkit_root=None):
    """Directories holding ``cuda_fp16.h``, in search order: the wheels' (under ``nvidia_dirs``, by
    default wherever the ``nvidia`` namespace package is installed), then the toolkits'."""
    if nvidia_dirs is None:
        spec = importlib.util.find_spec("nvidia")
        nvidia_dirs = list(spec.submodule_search_locations) if spec and spec.submodule_search_locations else []
    environ = os.environ if environ is None else environ
    toolkit_root = TOOLKIT_ROOT if toolkit_root is None else toolkit_root
    dirs = _wheel_include_dirs(nvidia_dirs) + _toolkit_include_dirs(environ, toolkit_root)
    return list(dict.fromkeys(p.resolve() for p in dirs if (p / "cuda_fp16.h").is_file()))


def cuda_include_dir(version=None, **search):
    """The directory of the ``cuda_fp16.h`` to compile with: of the ``header_candidates(**search)``, the
    first whose CUDA version equals NVRTC's ``version`` (default: the NVRTC CuPy loaded), else the
    first of the same major version, else the first found. Headers of another major version may not
    compile with this NVRTC (CUDA 13's headers need NVRTC 13), hence the preference."""
    candidates = header_candidates(**search)
    if not candidates:
        raise RuntimeError("cuda_fp16.h was not found: install the GPU extra that matches your CUDA driver "
                           "(pip install -e '.[gpu]' for CUDA 12, '.[gpu13]' for CUDA 13, which bring the "
                           "CUDA runtime headers) or set CUDA_PATH to a CUDA toolkit")
    version = tuple(nvrtc_version() if version is None else version)
    versions = [header_version(p) for p in candidates]
    for matches in (lambda v: v == version[:2], lambda v: v is not None and v[0] == version[0]):
        for path, v in zip(candidates, versions):
            if matches(v):
                return path
    return candidates[0]


def compile_options():
    """Options for ``cupy.RawModule``: our include directory and cuda_fp16.h's. (CuPy adds FTZ_OPTION
    and the architecture itself.)"""
    return (f"-I{KERNEL_DIR}", f"-I{cuda_include_dir()}")


def nvrtc_options(arch):
    """Everything ``cupy.RawModule`` passes to NVRTC for device ``arch``, plus ptxas's resource report."""
    return compile_options() + (FTZ_OPTION, f"-arch=sm_{arch}", "--device-as-default-execution-space",
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

"""Run the CUDA kernels (``kernels/*.cu``) on the CPU, for the device "emu" and for the kernel tests.

The same ``.cu`` text that NVRTC compiles for a GPU is compiled by g++ against ``kernels/emu_shim.h``
(CUDA's qualifiers, built-in indices, ``__half``, atomics and ``__syncthreads`` for the CPU) into a
shared library, loaded with ctypes. A launch runs every thread of every block, in C++: one after
another for kernels without barriers, and as one fiber per CUDA thread for a file that uses
``__syncthreads`` (each fiber runs to the barrier, then the next one runs).

``EmuModule(code).get_function(name)`` is called like ``cupy.RawModule(...).get_function(name)``:
``kernel(grid, block, args)`` with NumPy arrays for pointers and NumPy scalars for values. It checks
what a GPU would not report, or would report as a crash or silently wrong numbers:

- each array's dtype against the kernel's C signature, and that it is C-contiguous;
- each scalar's exact C type: a Python ``float`` for a ``float`` parameter is a bug on a GPU (CuPy
  passes it as a double), so only ``np.float32(x)`` is accepted there, ``np.int32(n)`` for ``int``;
- the launch: block size against the limits and the kernel's ``__launch_bounds__``;
- out-of-bounds accesses: each array is copied into a buffer with guard bytes before and after it.
  The first array's guards hold 0xFF bytes (NaN as float, -1 as int), so an out-of-bounds read
  poisons the result; each further array's guards hold another byte (0xFE, 0xFD, ...), so that even
  a write copying one guard's bytes into another changes it, and any changed guard raises an error
  after the launch;
- data races: a byte of an output that two threads change without an atomic (and, within a block,
  without a ``__syncthreads`` between them). This compares memory after every thread, so it runs
  when it is cheap (small launches) or when asked for with ``check_races=True``;
- shared memory, always: each ``__shared__ T name[N];`` is rewritten into an ``emu::SharedArray``
  (``_rewrite_shared``) that is fresh in every block (0xFF bytes) and notes every access: a read of an
  element no thread of the block has written, an index out of bounds, and a race (an element written
  by two threads, or written by one and read by another, between the same two barriers) are errors;
- barriers: a ``__syncthreads()`` that some threads of a block skip (they return, or wait at another
  ``__syncthreads()`` line) is an error;
- denormals: CuPy compiles with -ftz=true (``nvrtc.FTZ_OPTION``), which flushes fp32 denormals and
  keeps fp64 and fp16 ones; the emulator flushes for kernels that compute in float and not for those
  in double (``flushes_fp32_denormals``).

Integers are the GPU's: int is 32 bits, long long 64, and signed overflow wraps (g++ -fwrapv).

Not modelled: warp-level primitives (``__shfl_*``, warp-synchronous code), dynamic shared memory,
multi-dimensional ``__shared__`` arrays and pointers into shared memory (elements are reached by index).
Compiled libraries are cached by source hash in ``<project>/.cache/emu``.
"""
import ctypes
import os
import re
import subprocess
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from ..io import atomic_write_bytes
from .nvrtc import KERNEL_DIR, cache_dir, headers_text, source_hash

GUARD_BYTES = 1024        # guard bytes on each side of every array argument
GUARD_VALUE = 0xFF
RACE_CHECK_BUDGET = 2e7   # auto race check when threads x writable bytes is at most this
MAX_THREADS_PER_BLOCK = 1024
MAX_BLOCK_DIM = (1024, 1024, 64)
MAX_GRID_DIM = (2**31 - 1, 65535, 65535)
# -mtls-dialect=gnu2: TLS descriptors make the kernels' reads of threadIdx & co. (thread-locals in a
# shared library) a few instructions instead of a call to __tls_get_addr each. -U_FORTIFY_SOURCE: the
# fortified longjmp refuses to jump between stacks, which is how the fibers switch. -fwrapv: signed
# overflow wraps around (two's complement), as the GPU's 32-bit int and 64-bit long long do, instead of
# being undefined behaviour that g++ optimises on; int is 32 bits and long long 64 here too (x86-64).
CXX_FLAGS = ("-std=c++17", "-O2", "-fPIC", "-shared", "-w", "-mtls-dialect=gnu2", "-U_FORTIFY_SOURCE",
             "-fwrapv")

# C type (as written in a kernel signature, without const and *) -> NumPy dtype.
C_TYPES = {
    "__half": np.float16, "float": np.float32, "double": np.float64,
    "int": np.int32, "unsigned int": np.uint32, "long long": np.int64, "unsigned long long": np.uint64,
}


@dataclass(frozen=True)
class Param:
    name: str
    ctype: str        # e.g. "float", "__half", "int"
    pointer: bool
    const: bool

    @property
    def dtype(self):
        return np.dtype(C_TYPES[self.ctype])

    def __str__(self):
        return f"{'const ' if self.const else ''}{self.ctype}{'*' if self.pointer else ''} {self.name}"


@dataclass(frozen=True)
class KernelSignature:
    name: str
    params: tuple
    max_threads: int  # from __launch_bounds__, else the hardware limit


_KERNEL = re.compile(r'extern\s+"C"\s+__global__\s+void\s+(?:__launch_bounds__\s*\(\s*(\d+)[^)]*\)\s*)?'
                     r'(\w+)\s*\(([^)]*)\)')


def _strip_comments(code):
    return re.sub(r"/\*.*?\*/", " ", re.sub(r"//[^\n]*", " ", code), flags=re.S)


def _parse_param(text, kernel):
    match = re.fullmatch(r"(.*?)(\w+)", " ".join(text.split()))
    if match is None:
        raise ValueError(f"emulator: cannot read parameter {text!r} of kernel {kernel}")
    type_text, name = match.groups()
    tokens = type_text.replace("*", " * ").split()
    ctype = " ".join(t for t in tokens if t not in ("const", "*", "__restrict__"))
    if ctype not in C_TYPES or tokens.count("*") > 1:
        raise ValueError(f"emulator: kernel {kernel} has parameter {text.strip()!r} of a type the emulator "
                         f"does not support; supported: {sorted(C_TYPES)} and pointers to them")
    return Param(name, ctype, pointer="*" in tokens, const="const" in tokens)


def parse_kernels(code):
    """The ``extern "C" __global__`` kernels of a CUDA source, with their parameters."""
    kernels = []
    for bound, name, params in _KERNEL.findall(_strip_comments(code)):
        parsed = tuple(_parse_param(p, name) for p in params.split(",") if p.strip())
        kernels.append(KernelSignature(name, parsed, int(bound) if bound else MAX_THREADS_PER_BLOCK))
    return kernels


_SHARED = re.compile(r"__shared__\s+([^;\[\]]*?)\s*\b(\w+)\s*\[([^\]]+)\]\s*;")


def _rewrite_shared(code, filename):
    """``__shared__ T name[N];`` -> ``static thread_local emu::SharedArray<T, N> name{"name"};`` (on the same
    line): an array whose every access the emulator checks, reset at the start of each block."""
    rewritten = _SHARED.sub(lambda m: f'static thread_local emu::SharedArray<{m[1]}, ({m[3]})> {m[2]}{{"{m[2]}"}};',
                            code)
    if "__shared__" in _strip_comments(rewritten):
        line = next(x for x in _strip_comments(rewritten).splitlines() if "__shared__" in x)
        raise ValueError(f"emulator: {filename}: only one-dimensional static shared arrays "
                         f"(`__shared__ T name[N];`) are supported, got {line.strip()!r}")
    return rewritten


def flushes_fp32_denormals(kernel):
    """Whether ``kernel`` runs with the CPU's flush-to-zero mode on: -ftz=true (``nvrtc.FTZ_OPTION``) flushes
    fp32 denormals on the GPU but keeps fp64 (and fp16) ones, and the CPU's mode (MXCSR) flushes float
    and double alike, so a kernel is taken to compute in the floating type of its parameters: on for
    float and __half (which computes in float), off for double. A kernel mixing float and double is
    refused; one without floating-point parameters runs with it off."""
    types = {p.ctype for p in kernel.params}
    if "double" in types and types & {"float", "__half"}:
        raise ValueError(f"emulator: kernel {kernel.name} takes both double and float (or __half) arguments; the "
                         f"emulator cannot flush fp32 denormals (as -ftz=true does on the GPU) while keeping "
                         f"fp64 ones, so it runs only kernels that compute in one of the two")
    return bool(types & {"float", "__half"})


def _launch_function(kernel, use_fibers):
    """C++ for ``emu_launch_<kernel>``, which runs the kernel over the grid, and for ``emu_run_<kernel>``,
    one thread's call of the kernel with the arguments unpacked from their slots."""
    args = ", ".join(f"*reinterpret_cast<{'const ' if p.const else ''}{p.ctype}{'*' if p.pointer else ''}*>"
                     f"(args[{i}])" for i, p in enumerate(kernel.params))
    return (f'static void emu_run_{kernel.name}(void** args) {{ {kernel.name}({args}); }}\n'
            f'extern "C" int emu_launch_{kernel.name}(void** args, const unsigned int* dims,\n'
            f'                                      int race_check, emu::Region* regions, int n_regions) {{\n'
            f'    const emu::Body body{{emu_run_{kernel.name}, args}};\n'
            f'    return emu::launch(dims, {int(use_fibers)}, {int(flushes_fp32_denormals(kernel))}, race_check,\n'
            f'                       regions, n_regions, body);\n'
            f'}}\n')


@lru_cache(maxsize=None)
def _compiler_version():
    version = subprocess.run(["g++", "-dumpfullversion"], capture_output=True, text=True, check=True)
    return version.stdout.strip()


def _compile(translation_unit, filename):
    """The path of the shared library for ``translation_unit``, compiling it on a cache miss."""
    flags = CXX_FLAGS + (f"-I{KERNEL_DIR}", "-include", str(KERNEL_DIR / "emu_shim.h"))
    key = source_hash(translation_unit, headers_text(), " ".join(flags), _compiler_version())
    library = cache_dir("emu") / f"{key}.so"
    if library.is_file():
        return library
    source = library.with_suffix(".cpp")
    atomic_write_bytes(source, translation_unit.encode())
    tmp = library.with_name(f".{key}.{os.getpid()}.so")
    result = subprocess.run(["g++", *flags, "-x", "c++", str(source), "-o", str(tmp)],
                            capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"emulator: g++ could not compile {filename}:\n{result.stderr}")
    tmp.replace(library)
    return library


class _Region(ctypes.Structure):
    _fields_ = [("data", ctypes.c_void_p), ("size", ctypes.c_size_t)]


class EmuModule:
    """A CUDA source compiled for the CPU; the emulator's ``cupy.RawModule``."""

    def __init__(self, code, name="kernel.cu"):
        self.name = name
        self.kernels = {k.name: k for k in parse_kernels(code)}
        if not self.kernels:
            raise ValueError(f"emulator: {name} defines no extern \"C\" __global__ kernel")
        self.uses_barriers = "__syncthreads" in _strip_comments(code)
        launchers = "".join(_launch_function(k, self.uses_barriers) for k in self.kernels.values())
        unit = f'#line 1 "{name}"\n{_rewrite_shared(code, name)}\n#line 1 "emu_launchers"\n{launchers}'
        self._library = ctypes.CDLL(str(_compile(unit, name)))
        self._library.emu_last_error.restype = ctypes.c_char_p

    def get_function(self, name):
        if name not in self.kernels:
            raise ValueError(f"emulator: {self.name} has no kernel {name!r}; it has {sorted(self.kernels)}")
        launch = getattr(self._library, f"emu_launch_{name}")
        launch.restype = ctypes.c_int
        return EmuKernel(self, self.kernels[name], launch)


def _dim3(value, what, kernel):
    dims = (value,) if np.isscalar(value) else tuple(value)
    if not 1 <= len(dims) <= 3 or not all(isinstance(d, (int, np.integer)) and d >= 1 for d in dims):
        raise ValueError(f"{kernel}: {what} must be a positive int or a tuple of 1 to 3 positive ints, "
                         f"got {value!r}")
    return tuple(int(d) for d in dims) + (1,) * (3 - len(dims))


class _Staged:
    """An array argument copied between guard bytes; ``slot`` holds the pointer the kernel receives."""

    def __init__(self, array, guard):
        self.array, self.guard = array, guard
        self.nbytes = array.nbytes
        self.buffer = np.empty(self.nbytes + 2 * GUARD_BYTES, dtype=np.uint8)
        self.buffer[:GUARD_BYTES] = self.buffer[GUARD_BYTES + self.nbytes:] = guard
        self.interior[:] = array.reshape(-1).view(np.uint8)
        self.address = self.buffer.ctypes.data + GUARD_BYTES
        self.slot = np.array([self.address], dtype=np.uintp)

    @property
    def interior(self):
        return self.buffer[GUARD_BYTES:GUARD_BYTES + self.nbytes]

    def guard_damage(self):
        """Byte offsets (relative to the array's start and end) of changed guard bytes, or None."""
        before = np.flatnonzero(self.buffer[:GUARD_BYTES] != self.guard)
        after = np.flatnonzero(self.buffer[GUARD_BYTES + self.nbytes:] != self.guard)
        if before.size == 0 and after.size == 0:
            return None
        first_before = int(before[0]) - GUARD_BYTES if before.size else None
        return first_before, (int(after[-1]) if after.size else None)

    def copy_back(self):
        self.array.reshape(-1).view(np.uint8)[:] = self.interior


class EmuKernel:
    """One kernel of an EmuModule: ``kernel(grid, block, args)`` as with ``cupy.RawKernel``."""

    def __init__(self, module, signature, launch):
        self.module, self.signature, self._launch = module, signature, launch
        self.name = signature.name

    def __call__(self, grid, block, args, shared_mem=0, check_races=None):
        grid, block = self._check_launch(grid, block, shared_mem)
        args = tuple(args)
        params = self.signature.params
        if len(args) != len(params):
            raise TypeError(f"{self.name}: takes {len(params)} arguments ({', '.join(map(str, params))}), "
                            f"got {len(args)}")
        staged, slots = [], []
        for param, arg in zip(params, args):
            if param.pointer:
                self._check_array(param, arg, staged)
                staged.append((param, _Staged(arg, GUARD_VALUE - len(staged) % 64)))
                slots.append(staged[-1][1].slot)
            else:
                slots.append(np.array(self._check_scalar(param, arg)))
        writable = [s for p, s in staged if not p.const]
        regions = (_Region * max(len(writable), 1))(*[_Region(s.address, s.nbytes) for s in writable])
        threads = int(np.prod(grid)) * int(np.prod(block))
        if check_races is None:
            check_races = threads * sum(s.nbytes for s in writable) <= RACE_CHECK_BUDGET
        pointers = (ctypes.c_void_p * max(len(slots), 1))(*[s.ctypes.data for s in slots])
        dims = (ctypes.c_uint * 6)(*grid, *block)
        failed = self._launch(pointers, dims, int(check_races), regions, len(writable))
        self._check_guards(staged)
        if failed:
            raise RuntimeError(f"{self.name}: {self.module._library.emu_last_error().decode()} "
                               f"(grid {grid}, block {block})")
        for s in writable:
            s.copy_back()

    def _check_launch(self, grid, block, shared_mem):
        grid, block = _dim3(grid, "grid", self.name), _dim3(block, "block", self.name)
        if shared_mem:
            raise ValueError(f"{self.name}: the emulator supports static __shared__ arrays only, "
                             f"not shared_mem={shared_mem} bytes of dynamic shared memory")
        limit = self.signature.max_threads
        if int(np.prod(block)) > limit or any(b > m for b, m in zip(block, MAX_BLOCK_DIM)):
            raise ValueError(f"{self.name}: block {block} has {int(np.prod(block))} threads; at most {limit} "
                             f"are allowed (per-dimension limits {MAX_BLOCK_DIM}); a GPU refuses this launch")
        if any(g > m for g, m in zip(grid, MAX_GRID_DIM)):
            raise ValueError(f"{self.name}: grid {grid} exceeds the limits {MAX_GRID_DIM}")
        return grid, block

    def _check_array(self, param, arg, staged):
        if not isinstance(arg, np.ndarray):
            raise TypeError(f"{self.name}: argument {param.name} ({param}) must be a NumPy array on the "
                            f"emulator, got {type(arg).__name__}")
        if arg.dtype != param.dtype:
            raise TypeError(f"{self.name}: argument {param.name} ({param}) needs dtype {param.dtype}, got "
                            f"{arg.dtype}; convert it with .astype(np.{param.dtype})")
        if not arg.flags.c_contiguous:
            raise ValueError(f"{self.name}: argument {param.name} (shape {arg.shape}, strides {arg.strides}) "
                             f"is not C-contiguous; a kernel sees only the pointer, so pass "
                             f"np.ascontiguousarray(...)")
        if not param.const and not arg.flags.writeable:
            raise ValueError(f"{self.name}: output argument {param.name} is a read-only array")
        for other_param, other in staged:
            if np.may_share_memory(arg, other.array):
                raise ValueError(f"{self.name}: arguments {other_param.name} and {param.name} share memory; "
                                 f"the emulator needs distinct buffers")

    def _check_scalar(self, param, arg):
        if not isinstance(arg, np.generic) or arg.dtype != param.dtype:
            got = f"{type(arg).__name__}" if not isinstance(arg, np.generic) else f"np.{arg.dtype}"
            raise TypeError(f"{self.name}: argument {param.name} is a C {param.ctype}, so pass "
                            f"np.{param.dtype}(value); got {got} {arg!r}. (On a GPU, CuPy would pass a "
                            f"Python int as a 64-bit integer and a float as a double, and the kernel would "
                            f"read garbage.)")
        return arg

    def _check_guards(self, staged):
        for param, s in staged:
            damage = s.guard_damage()
            if damage is not None:
                before, after = damage
                where = []
                if before is not None:
                    where.append(f"{-before} bytes before its start")
                if after is not None:
                    where.append(f"up to {after + 1} bytes past its end")
                raise RuntimeError(f"{self.name}: out-of-bounds write to argument {param.name} ({param}, "
                                   f"{s.nbytes} bytes): {' and '.join(where)}")


@lru_cache(maxsize=None)
def load(code, name="kernel.cu"):
    """An EmuModule for ``code``, compiled (or found in the cache) once per process."""
    return EmuModule(code, name)

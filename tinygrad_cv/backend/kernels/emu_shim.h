// emu_shim.h: just enough CUDA for g++ to compile the kernels/*.cu files and run them on the CPU.
//
// The emulator (emulator.py) force-includes this header before a kernel file and appends one launch
// function per kernel (emu_launch_<kernel>), which call emu::launch below. A CUDA thread becomes one
// call of the kernel function with threadIdx/blockIdx set; kernels that use __syncthreads() run
// every thread of a block as a fiber, switching at each barrier. A fiber starts on its own stack
// through ucontext (makecontext/setcontext); later switches use _setjmp/_longjmp, which unlike
// swapcontext do not save the signal mask, i.e. make no system call.
//
// What it models: the qualifiers, dim3 and the built-in indices, __half as _Float16 rounded after
// every operation, the half/float/int bit conversions, atomics, __syncthreads, __shared__ arrays (one
// fresh copy per block: filled with 0xFF bytes, never what an earlier block or launch left), and
// -ftz=true, which flushes fp32 denormals only (the launcher turns the CPU's flush mode on for kernels
// that compute in float, off for those in double).
// What it checks besides: data races on global memory, i.e. a byte that two threads change without
// an atomic, where two threads of one block race only between the same pair of barriers; on shared
// memory, reads of elements no thread of the block has written, out-of-bounds indices, and races (an
// element written by two threads, or written by one and read by another, between the same two
// barriers); and barriers that not every thread of a block reaches (one returns while others wait,
// or they wait at different __syncthreads() lines).
#pragma once
#define TGCV_EMU 1

#include <math.h>  // libstdc++'s math.h brings the float overloads (exp(float), ...) as in CUDA
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <ucontext.h>
#include <xmmintrin.h>

#include <memory>
#include <unordered_set>
#include <vector>

// ------------------------------------------------------------------ qualifiers and built-ins
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline __attribute__((always_inline))
#define __launch_bounds__(...)
// No __shared__: emulator.py rewrites each `__shared__ T name[N];` into an emu::SharedArray (below).

struct dim3 {
    unsigned int x, y, z;
    constexpr dim3(unsigned int x_ = 1, unsigned int y_ = 1, unsigned int z_ = 1) : x(x_), y(y_), z(z_) {}
};
typedef dim3 uint3;

inline thread_local uint3 threadIdx, blockIdx;
inline thread_local dim3 blockDim, gridDim;

// ------------------------------------------------------------------ bit conversions
template <typename To, typename From>
__forceinline__ To emu_bit_cast(From v) {
    static_assert(sizeof(To) == sizeof(From), "bit cast between types of different sizes");
    To out;
    memcpy(&out, &v, sizeof(To));
    return out;
}
__forceinline__ float __int_as_float(int v) { return emu_bit_cast<float>(v); }
__forceinline__ unsigned int __float_as_uint(float v) { return emu_bit_cast<unsigned int>(v); }
__forceinline__ long long __double_as_longlong(double v) { return emu_bit_cast<long long>(v); }

// ------------------------------------------------------------------ __half
// Stored as _Float16 (IEEE binary16, like the GPU's). Arithmetic converts both operands to float,
// operates, and rounds back to half: for + - * / the float result is exact or correctly rounded at
// 24 bits, so rounding it once more to 11 bits equals the GPU's correctly rounded half operation.
struct __half {
    _Float16 v;
    __half() = default;
    __half(float f) : v((_Float16)f) {}
    operator float() const { return (float)v; }
};
static_assert(sizeof(__half) == 2, "__half must be 2 bytes, as on the GPU");

__forceinline__ float __half2float(__half h) { return (float)h.v; }
__forceinline__ __half __float2half(float f) { return __half(f); }  // round to nearest even
__forceinline__ unsigned short __half_as_ushort(__half h) { return emu_bit_cast<unsigned short>(h); }
__forceinline__ __half operator+(__half a, __half b) { return __half((float)a + (float)b); }
__forceinline__ __half operator-(__half a, __half b) { return __half((float)a - (float)b); }
__forceinline__ __half operator*(__half a, __half b) { return __half((float)a * (float)b); }
__forceinline__ __half operator/(__half a, __half b) { return __half((float)a / (float)b); }
__forceinline__ __half operator-(__half a) { return __half(-(float)a); }

// ------------------------------------------------------------------ the emulator's runtime
namespace emu {

// A global-memory buffer the kernel may write (a non-const pointer argument).
struct Region {
    unsigned char* data;
    size_t size;
};

// Who last changed each byte of a writable buffer, for the race check.
struct Writer {
    long long thread = -1;  // flat thread index in the grid; -1: nobody yet
    long long block = -1;
    int epoch = 0;          // how many barriers the block had passed
};

// A __shared__ array's bytes and access records, reset when a block starts.
struct SharedAccess {
    int writer = -1, write_epoch = -1;  // the last thread (flat in its block) to write the element
    int readers[2] = {-1, -1};          // the first two threads to read it in read_epoch (-1: none):
    int read_epoch = -1;                // a writer differs from one of them if anyone else read it
};

struct SharedRegion {
    void* data;
    size_t bytes;
    std::vector<SharedAccess>* access;
};

struct State {
    char error[1024] = "";
    bool in_fiber = false, race_check = false;
    long long thread = 0, block = 0;  // the running thread, flat in the grid, and its block
    int local = 0;                    // the running thread, flat in its block
    int epoch = 0;                    // how many barriers the running block has passed
    std::vector<SharedRegion> shared;  // every __shared__ array this OS thread has met
    std::vector<Region> regions;
    std::vector<std::vector<unsigned char>> snapshots;
    std::vector<std::vector<Writer>> writers;
    std::unordered_set<const unsigned char*> atomic_bytes;
};
inline thread_local State state;

inline void fail(const char* message) {
    if (state.error[0] == '\0') snprintf(state.error, sizeof state.error, "%s", message);
}

__attribute__((format(printf, 1, 2))) inline void failf(const char* format, ...) {
    if (state.error[0] != '\0') return;
    va_list args;
    va_start(args, format);
    vsnprintf(state.error, sizeof state.error, format, args);
    va_end(args);
}

// ------------------------------------------------------------------ __shared__ memory
// Thread `local` of the running block reads / writes element i of shared array `name`. Between two
// barriers (one epoch) the fibers run one after another, so the order the GPU does not promise is
// visible here: an element another thread wrote, or read, in the same epoch is a race.
inline void note_shared_read(SharedAccess& a, const char* name, long long i) {
    State& s = state;
    if (a.writer == -1)
        failf("uninitialised shared memory: thread %d of block %lld reads %s[%lld], which no thread of the "
              "block has written (shared memory starts undefined in every block)", s.local, s.block, name, i);
    else if (a.writer != s.local && a.write_epoch == s.epoch)
        failf("shared-memory race: thread %d of block %lld reads %s[%lld], which thread %d wrote with no "
              "__syncthreads() between them", s.local, s.block, name, i, a.writer);
    if (a.read_epoch != s.epoch) {
        a.readers[0] = s.local;
        a.readers[1] = -1;
        a.read_epoch = s.epoch;
    } else if (a.readers[0] != s.local && a.readers[1] == -1) {
        a.readers[1] = s.local;
    }
}

// A thread other than the running one that read the element since the last barrier, or -1.
inline int other_reader(const SharedAccess& a) {
    const State& s = state;
    if (a.read_epoch != s.epoch) return -1;
    return a.readers[0] != s.local ? a.readers[0] : a.readers[1];
}

inline void note_shared_write(SharedAccess& a, const char* name, long long i) {
    State& s = state;
    const int reader = other_reader(a);
    if (a.write_epoch == s.epoch && a.writer != s.local)
        failf("shared-memory race: threads %d and %d of block %lld both write %s[%lld] with no "
              "__syncthreads() between them", a.writer, s.local, s.block, name, i);
    else if (reader != -1)
        failf("shared-memory race: thread %d of block %lld writes %s[%lld], which thread %d read with no "
              "__syncthreads() between them", s.local, s.block, name, i, reader);
    a.writer = s.local;
    a.write_epoch = s.epoch;
}

// A block's fresh shared memory: bytes 0xFF (NaN as float, -1 as int), no element written or read.
inline void reset_shared(const SharedRegion& r) {
    memset(r.data, 0xFF, r.bytes);
    r.access->assign(r.access->size(), SharedAccess());
}

// One element of a shared array: reading it (conversion to T) and writing it (=, +=, ...) are noted.
template <typename T>
struct SharedRef {
    T& value;
    SharedAccess& access;
    const char* name;
    long long index;

    operator T() const {
        note_shared_read(access, name, index);
        return value;
    }
    SharedRef& operator=(T v) {
        note_shared_write(access, name, index);
        value = v;
        return *this;
    }
    SharedRef& operator=(const SharedRef& other) { return *this = static_cast<T>(other); }
    SharedRef& operator+=(T v) { return *this = static_cast<T>(*this) + v; }
    SharedRef& operator-=(T v) { return *this = static_cast<T>(*this) - v; }
    SharedRef& operator*=(T v) { return *this = static_cast<T>(*this) * v; }
    SharedRef& operator/=(T v) { return *this = static_cast<T>(*this) / v; }
};

// `__shared__ T name[N];` becomes `static thread_local emu::SharedArray<T, N> name{"name"};`: one per
// kernel function and OS thread (a launch runs its blocks one after another on one OS thread), reset by
// emu::launch at the start of every block. Elements are reached by index only (no pointer to them).
template <typename T, long long N>
struct SharedArray {
    const char* name;
    std::vector<T> data;
    std::vector<SharedAccess> access;
    T spare;  // what an out-of-bounds index reaches, after the error is recorded
    SharedAccess spare_access;

    explicit SharedArray(const char* name_) : name(name_), data(N), access(N) {
        static_assert(N > 0, "a __shared__ array needs at least one element");
        state.shared.push_back(SharedRegion{data.data(), N * sizeof(T), &access});
        reset_shared(state.shared.back());
    }
    SharedRef<T> operator[](long long i) {
        if (i < 0 || i >= N) {
            failf("out-of-bounds shared memory: thread %d of block %lld indexes %s[%lld], which has %lld "
                  "elements", state.local, state.block, name, i, N);
            return SharedRef<T>{spare, spare_access, name, i};
        }
        return SharedRef<T>{data[i], access[i], name, i};
    }
};

inline void reset_shared_memory() {
    for (const SharedRegion& r : state.shared) reset_shared(r);
}

// Atomics run on one OS thread here, so they are plain read-modify-writes; the race check exempts
// the bytes they touch.
template <typename T>
inline void note_atomic(T* address) {
    if (!state.race_check) return;
    const unsigned char* p = reinterpret_cast<const unsigned char*>(address);
    for (size_t i = 0; i < sizeof(T); ++i) state.atomic_bytes.insert(p + i);
}

// Byte i of writable buffer r was just changed by the running thread: a race if another thread changed
// it before, in another block or in this block since the last barrier (unless an atomic did).
inline void note_write(State& s, size_t r, size_t i) {
    if (s.atomic_bytes.count(s.regions[r].data + i)) return;
    Writer& w = s.writers[r][i];
    const bool ordered = w.thread == -1 || w.thread == s.thread || (w.block == s.block && w.epoch != s.epoch);
    if (!ordered) {
        char message[512];
        snprintf(message, sizeof message,
                 "data race: byte %zu of writable argument #%zu was changed by thread %lld and then by "
                 "thread %lld (flat indices in the grid) with no atomic and no __syncthreads() ordering them",
                 i, r, w.thread, s.thread);
        fail(message);
    }
    w.thread = s.thread;
    w.block = s.block;
    w.epoch = s.epoch;
}

// Compare every writable buffer with its snapshot (64 bytes at a time, then byte by byte where they
// differ): each changed byte was written by the thread that just ran.
inline void check_writes() {
    State& s = state;
    for (size_t r = 0; r < s.regions.size(); ++r) {
        const unsigned char* now = s.regions[r].data;
        unsigned char* before = s.snapshots[r].data();
        const size_t size = s.regions[r].size;
        for (size_t start = 0; start < size; start += 64) {
            const size_t end = start + 64 < size ? start + 64 : size;
            if (memcmp(now + start, before + start, end - start) == 0) continue;
            for (size_t i = start; i < end; ++i) {
                if (now[i] == before[i]) continue;
                before[i] = now[i];
                note_write(s, r, i);
            }
        }
    }
}

// One body per CUDA thread of a block, on its own stack. A fiber is created once per launch and
// serves the same threadIdx in every block: after the kernel returns it waits to run it again.
struct Fiber {
    ucontext_t start;  // the first entry into fiber_main, on the fiber's stack
    jmp_buf resume;    // where it waits: at a barrier, or done with this block
    bool started;
    uint3 index;
    enum { RUNNABLE, AT_BARRIER, DONE } status;
    int barrier_line;  // the source line of the __syncthreads() it waits at
};

// One CUDA thread's work: the generated emu_run_<kernel>(args) calls the kernel with its arguments.
struct Body {
    void (*run)(void** args);
    void** args;
    void operator()() const { run(args); }
};

struct Scheduler {
    jmp_buf resume;  // where the scheduler waits while a fiber runs
    Fiber* current = nullptr;
    const Body* body = nullptr;
};
inline thread_local Scheduler scheduler;

// Switch from the running fiber back to the scheduler; returns when the scheduler resumes this fiber.
inline void yield_to_scheduler() {
    Fiber* self = scheduler.current;
    if (_setjmp(self->resume) == 0) _longjmp(scheduler.resume, 1);
}

inline void fiber_main() {
    for (;;) {  // one iteration per block
        (*scheduler.body)();
        scheduler.current->status = Fiber::DONE;
        yield_to_scheduler();
    }
}

// Run fiber f until it reaches a barrier or the end of the kernel.
inline void run_fiber(Fiber& f) {
    scheduler.current = &f;
    if (_setjmp(scheduler.resume) != 0) return;  // back from the fiber
    if (f.started) _longjmp(f.resume, 1);
    f.started = true;
    setcontext(&f.start);
}

// Unflatten a thread index inside a block, or a block index inside a grid (x fastest).
inline uint3 unflatten(long long i, dim3 d) {
    return uint3((unsigned)(i % d.x), (unsigned)(i / d.x % d.y), (unsigned)(i / ((long long)d.x * d.y)));
}

inline long long flat_size(dim3 d) { return (long long)d.x * d.y * d.z; }

// The fibers of one launch, one per thread of a block, each with a 64 KiB stack.
struct FiberPool {
    static constexpr size_t stack_size = 64 * 1024;
    std::vector<Fiber> fibers;
    std::unique_ptr<char[]> stacks;  // not zeroed: only the pages a fiber uses are touched

    FiberPool(long long threads, dim3 block) : fibers(threads), stacks(new char[threads * stack_size]) {
        for (long long t = 0; t < threads; ++t) {
            Fiber& f = fibers[t];
            getcontext(&f.start);
            f.start.uc_stack.ss_sp = stacks.get() + t * stack_size;
            f.start.uc_stack.ss_size = stack_size;
            f.start.uc_link = nullptr;
            makecontext(&f.start, fiber_main, 0);
            f.index = unflatten(t, block);
            f.started = false;
        }
    }
};

inline void run_block_serially(const Body& body, dim3 block) {
    uint3& thread_index = threadIdx;  // look the thread-locals up once per block, not once per thread
    State& s = state;
    long long t = s.block * flat_size(block);
    int local = 0;
    for (unsigned z = 0; z < block.z; ++z)
        for (unsigned y = 0; y < block.y; ++y)
            for (unsigned x = 0; x < block.x; ++x, ++t, ++local) {
                thread_index = uint3(x, y, z);
                s.thread = t;
                s.local = local;
                body();
                if (s.race_check) check_writes();
            }
}

// The first fiber at another barrier than fiber 0's (each waits at one), or -1.
inline long long other_barrier(const std::vector<Fiber>& fibers) {
    for (size_t t = 1; t < fibers.size(); ++t)
        if (fibers[t].barrier_line != fibers[0].barrier_line) return (long long)t;
    return -1;
}

// Every thread of the block is a fiber; each runs until its next __syncthreads() (or its end), then the
// next one runs. When all have arrived at the same barrier, it opens and the round repeats.
inline void run_block_as_fibers(FiberPool& pool) {
    std::vector<Fiber>& fibers = pool.fibers;
    const long long threads = (long long)fibers.size();
    for (Fiber& f : fibers) f.status = Fiber::RUNNABLE;
    state.in_fiber = true;
    for (;;) {
        long long waiting = 0, done = 0;
        for (long long t = 0; t < threads; ++t) {
            Fiber& f = fibers[t];
            if (f.status == Fiber::RUNNABLE) {
                threadIdx = f.index;
                state.thread = state.block * threads + t;
                state.local = (int)t;
                run_fiber(f);
                if (state.race_check) check_writes();
            }
            waiting += f.status == Fiber::AT_BARRIER;
            done += f.status == Fiber::DONE;
        }
        if (waiting == 0) break;
        if (done > 0) {
            fail("barrier divergence: some threads of a block returned while others wait at __syncthreads(); "
                 "every thread of a block must reach every barrier");
            break;
        }
        const long long other = other_barrier(fibers);
        if (other >= 0) {
            failf("barrier divergence: in block %lld, thread 0 waits at the __syncthreads() of line %d and "
                  "thread %lld at the one of line %d; every thread of a block must reach the same barriers",
                  state.block, fibers[0].barrier_line, other, fibers[other].barrier_line);
            break;
        }
        for (Fiber& f : fibers) f.status = Fiber::RUNNABLE;
        ++state.epoch;
    }
    state.in_fiber = false;
}

// Run body() once per thread of the grid. Returns 0, or 1 with the message in emu_last_error().
// flush_fp32: the kernel computes in float, which -ftz=true flushes (the CPU's flush mode, MXCSR, acts on
// float and double alike, so a kernel computing in double runs with it off).
inline int launch(const unsigned int* dims, int use_fibers, int flush_fp32, int race_check, Region* regions,
                  int n_regions, const Body& body) {
    state.error[0] = '\0';
    gridDim = dim3(dims[0], dims[1], dims[2]);
    blockDim = dim3(dims[3], dims[4], dims[5]);
    state.race_check = race_check != 0;
    state.regions.assign(regions, regions + n_regions);
    state.snapshots.clear();
    state.writers.clear();
    state.atomic_bytes.clear();
    if (state.race_check) {
        for (const Region& r : state.regions) {
            state.snapshots.emplace_back(r.data, r.data + r.size);
            state.writers.emplace_back(r.size);
        }
    }
    const long long blocks = flat_size(gridDim);
    const unsigned int csr = _mm_getcsr();
    // FTZ and DAZ: denormal results and inputs flushed to zero, as CuPy's -ftz=true does for float.
    _mm_setcsr(flush_fp32 ? csr | 0x8040 : csr & ~0x8040u);
    // Created after the line above: setcontext restores the floating-point control word getcontext saw.
    std::unique_ptr<FiberPool> pool(use_fibers ? new FiberPool(flat_size(blockDim), blockDim) : nullptr);
    scheduler.body = &body;
    for (long long b = 0; b < blocks && state.error[0] == '\0'; ++b) {
        blockIdx = unflatten(b, gridDim);
        state.block = b;
        state.epoch = 0;
        reset_shared_memory();
        if (use_fibers) run_block_as_fibers(*pool);
        else run_block_serially(body, blockDim);
    }
    _mm_setcsr(csr);
    return state.error[0] != '\0';
}

}  // namespace emu

// The shim is included once per emulated module (one translation unit), so this is defined once.
extern "C" const char* emu_last_error() { return emu::state.error; }

#define __syncthreads() emu_syncthreads(__LINE__)
inline void emu_syncthreads(int line) {
    if (!emu::state.in_fiber) {
        emu::fail("__syncthreads() in a kernel launched without fibers: the emulator runs a file's "
                  "kernels as fibers only when its source mentions __syncthreads");
        return;
    }
    emu::Fiber* self = emu::scheduler.current;
    self->status = emu::Fiber::AT_BARRIER;
    self->barrier_line = line;
    if (_setjmp(self->resume) == 0) _longjmp(emu::scheduler.resume, 1);  // resumed when the barrier opens
}

// ------------------------------------------------------------------ atomics (return the old value)
template <typename T>
inline T emu_atomic_add(T* address, T value) {
    emu::note_atomic(address);
    const T old = *address;
    *address = old + value;
    return old;
}
inline float atomicAdd(float* address, float value) { return emu_atomic_add(address, value); }
inline double atomicAdd(double* address, double value) { return emu_atomic_add(address, value); }

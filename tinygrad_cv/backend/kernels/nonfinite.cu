// The overflow check of dynamic loss scaling: set *flag to 1 if any element is inf or NaN.
//
// An element is non-finite exactly when all its exponent bits are set, which a bit test sees even
// under fast-math compilation (where x != x may be optimised away). Every thread that finds one
// stores the same value 1, so the unsynchronised stores cannot disagree. The flag is never reset
// here: the launcher zeroes it and can pass it to several launches (one per gradient).
#include "common.h"

__device__ __forceinline__ bool is_nonfinite(__half v) { return (__half_as_ushort(v) & 0x7c00) == 0x7c00; }
__device__ __forceinline__ bool is_nonfinite(float v) {
    return (__float_as_uint(v) & 0x7f800000u) == 0x7f800000u;
}
__device__ __forceinline__ bool is_nonfinite(double v) {
    return (__double_as_longlong(v) & 0x7ff0000000000000ll) == 0x7ff0000000000000ll;
}

template <typename T>
__device__ void nonfinite_check(const T* x, long long n, int* flag) {
    for (long long idx = first_index(); idx < n; idx += grid_stride()) {
        if (is_nonfinite(x[idx])) {
            *flag = 1;
            return;
        }
    }
}

extern "C" __global__ void nonfinite_check_f16(
    const __half* x, long long n, int* flag) {
    nonfinite_check(x, n, flag);
}
extern "C" __global__ void nonfinite_check_f32(
    const float* x, long long n, int* flag) {
    nonfinite_check(x, n, flag);
}
extern "C" __global__ void nonfinite_check_f64(
    const double* x, long long n, int* flag) {
    nonfinite_check(x, n, flag);
}

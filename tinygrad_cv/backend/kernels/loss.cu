// Binary cross-entropy on logits, fused with the sigmoid (stable for any x):
//
//     forward:   loss = max(x, 0) - x*t + log(1 + exp(-|x|))          (per element; the launcher reduces)
//     backward:  gx = (sigmoid(x) - t) * gy[idx * gy_stride] * scale
//
// gy_stride is 1 for a per-element upstream gradient (reduction "none") and 0 for a single one
// (reductions "sum" and "mean"; "mean" passes scale = 1/n). sigmoid is split by sign so exp never
// overflows. One thread per element in a grid-stride loop.
#include "common.h"

template <typename A>
__device__ __forceinline__ A stable_sigmoid(A x) {
    if (x >= 0) return 1 / (1 + exp(-x));
    const A e = exp(x);
    return e / (1 + e);
}

template <typename T>
__device__ void bce_with_logits_forward(const T* x, const T* t, T* loss, long long n) {
    for (long long idx = first_index(); idx < n; idx += grid_stride()) {
        const typename Acc<T>::type v = to_acc(x[idx]), target = to_acc(t[idx]);
        store(loss + idx, (v > 0 ? v : 0) - v * target + log1p(exp(-fabs(v))));
    }
}

template <typename T>
__device__ void bce_with_logits_backward(const T* x, const T* t, const T* gy, T* gx, long long n,
                                         int gy_stride, typename Acc<T>::type scale) {
    for (long long idx = first_index(); idx < n; idx += grid_stride()) {
        const typename Acc<T>::type v = to_acc(x[idx]);
        store(gx + idx, (stable_sigmoid(v) - to_acc(t[idx])) * to_acc(gy[idx * gy_stride]) * scale);
    }
}

extern "C" __global__ void bce_with_logits_forward_f16(
    const __half* x, const __half* t, __half* loss, long long n) {
    bce_with_logits_forward(x, t, loss, n);
}
extern "C" __global__ void bce_with_logits_forward_f32(
    const float* x, const float* t, float* loss, long long n) {
    bce_with_logits_forward(x, t, loss, n);
}
extern "C" __global__ void bce_with_logits_forward_f64(
    const double* x, const double* t, double* loss, long long n) {
    bce_with_logits_forward(x, t, loss, n);
}

extern "C" __global__ void bce_with_logits_backward_f16(
    const __half* x, const __half* t, const __half* gy, __half* gx, long long n, int gy_stride, float scale) {
    bce_with_logits_backward(x, t, gy, gx, n, gy_stride, scale);
}
extern "C" __global__ void bce_with_logits_backward_f32(
    const float* x, const float* t, const float* gy, float* gx, long long n, int gy_stride, float scale) {
    bce_with_logits_backward(x, t, gy, gx, n, gy_stride, scale);
}
extern "C" __global__ void bce_with_logits_backward_f64(
    const double* x, const double* t, const double* gy, double* gx, long long n, int gy_stride, double scale) {
    bce_with_logits_backward(x, t, gy, gx, n, gy_stride, scale);
}

// Fused bias + ReLU: one pass over memory instead of two (add the bias, then clamp).
//
// x and y have layout (N, C, L) flattened to n = N*C*L elements (L = H*W for images), bias has C:
//
//     forward:   y = max(x + bias[c], 0)         (a NaN stays NaN, as with numpy.maximum)
//     backward:  gx = gy * [y > 0]               (gbias = gx summed over N and L: the op, BiasReLU in ops/conv.py)
//
// Both are elementwise: one thread per element in a grid-stride loop.
#include "common.h"

template <typename T>
__device__ void bias_relu_forward(const T* x, const T* bias, T* y, long long n, int C, long long L) {
    for (long long idx = first_index(); idx < n; idx += grid_stride()) {
        const int c = (idx / L) % C;
        const typename Acc<T>::type v = to_acc(x[idx]) + to_acc(bias[c]);
        store(y + idx, v < 0 ? 0 : v);
    }
}

template <typename T>
__device__ void bias_relu_backward(const T* gy, const T* y, T* gx, long long n) {
    for (long long idx = first_index(); idx < n; idx += grid_stride()) {
        store(gx + idx, to_acc(y[idx]) > 0 ? to_acc(gy[idx]) : 0);
    }
}

extern "C" __global__ void bias_relu_forward_f16(
    const __half* x, const __half* bias, __half* y, long long n, int C, long long L) {
    bias_relu_forward(x, bias, y, n, C, L);
}
extern "C" __global__ void bias_relu_forward_f32(
    const float* x, const float* bias, float* y, long long n, int C, long long L) {
    bias_relu_forward(x, bias, y, n, C, L);
}
extern "C" __global__ void bias_relu_forward_f64(
    const double* x, const double* bias, double* y, long long n, int C, long long L) {
    bias_relu_forward(x, bias, y, n, C, L);
}

extern "C" __global__ void bias_relu_backward_f16(
    const __half* gy, const __half* y, __half* gx, long long n) {
    bias_relu_backward(gy, y, gx, n);
}
extern "C" __global__ void bias_relu_backward_f32(
    const float* gy, const float* y, float* gx, long long n) {
    bias_relu_backward(gy, y, gx, n);
}
extern "C" __global__ void bias_relu_backward_f64(
    const double* gy, const double* y, double* gx, long long n) {
    bias_relu_backward(gy, y, gx, n);
}

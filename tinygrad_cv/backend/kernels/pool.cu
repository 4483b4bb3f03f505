// 2-D max pooling: forward with arg-max, and its backward.
//
// x has layout (P, H, W) where P = N*C planes; y and argmax have layout (P, HO, WO). The window of
// output (oh, ow) reads x[p, oh*SH - PH + i*DH, ow*SW - PW + j*DW] for i < KH, j < KW, skipping rows
// and columns outside x (padding never wins). argmax holds the winner's index h*W + w in its plane.
// A NaN wins over every number (as in PyTorch), and among equal values the first in the window wins.
// Flat indices over all planes are 64-bit; offsets inside a plane (h*W + w, also argmax) are int, so the
// launchers refuse planes of 2^31 elements or more.
#include "common.h"

// One thread per output element.
template <typename T>
__device__ void max_pool2d_forward(const T* x, T* y, int* argmax, int P, int H, int W, int KH, int KW,
                                   int SH, int SW, int PH, int PW, int DH, int DW, int HO, int WO) {
    const long long total = (long long)P * HO * WO;
    for (long long idx = first_index(); idx < total; idx += grid_stride()) {
        const int ow = idx % WO, oh = (idx / WO) % HO;
        const long long p = idx / ((long long)HO * WO);
        const T* plane = x + p * H * W;
        typename Acc<T>::type best = -TGCV_INF_F;
        int best_index = -1;
        for (int i = 0; i < KH; ++i) {
            const int h = oh * SH - PH + i * DH;
            if (h < 0 || h >= H) continue;
            for (int j = 0; j < KW; ++j) {
                const int w = ow * SW - PW + j * DW;
                if (w < 0 || w >= W) continue;
                const typename Acc<T>::type v = to_acc(plane[h * W + w]);
                if (v > best || v != v) {  // v != v: v is NaN
                    best = v;
                    best_index = h * W + w;
                }
            }
        }
        store(y + idx, best);
        argmax[idx] = best_index;
    }
}

// One thread per input element (a gather, so no atomics): sums gy over the windows whose winner it is.
template <typename T>
__device__ void max_pool2d_backward(const T* gy, const int* argmax, T* gx, int P, int H, int W, int KH,
                                    int KW, int SH, int SW, int PH, int PW, int DH, int DW, int HO, int WO) {
    const long long total = (long long)P * H * W;
    for (long long idx = first_index(); idx < total; idx += grid_stride()) {
        const int w = idx % W, h = (idx / W) % H;
        const long long plane = idx / ((long long)H * W) * HO * WO;
        typename Acc<T>::type sum = 0;
        for (int i = 0; i < KH; ++i) {
            const int h_span = h + PH - i * DH;  // = oh * SH when row i of window oh covers h
            if (h_span < 0 || h_span % SH != 0 || h_span / SH >= HO) continue;
            for (int j = 0; j < KW; ++j) {
                const int w_span = w + PW - j * DW;
                if (w_span < 0 || w_span % SW != 0 || w_span / SW >= WO) continue;
                const long long out = plane + (h_span / SH) * WO + w_span / SW;
                if (argmax[out] == h * W + w) sum += to_acc(gy[out]);
            }
        }
        store(gx + idx, sum);
    }
}

extern "C" __global__ void max_pool2d_forward_f16(
    const __half* x, __half* y, int* argmax, int P, int H, int W, int KH, int KW, int SH, int SW,
    int PH, int PW, int DH, int DW, int HO, int WO) {
    max_pool2d_forward(x, y, argmax, P, H, W, KH, KW, SH, SW, PH, PW, DH, DW, HO, WO);
}
extern "C" __global__ void max_pool2d_forward_f32(
    const float* x, float* y, int* argmax, int P, int H, int W, int KH, int KW, int SH, int SW, int PH,
    int PW, int DH, int DW, int HO, int WO) {
    max_pool2d_forward(x, y, argmax, P, H, W, KH, KW, SH, SW, PH, PW, DH, DW, HO, WO);
}
extern "C" __global__ void max_pool2d_forward_f64(
    const double* x, double* y, int* argmax, int P, int H, int W, int KH, int KW, int SH, int SW,
    int PH, int PW, int DH, int DW, int HO, int WO) {
    max_pool2d_forward(x, y, argmax, P, H, W, KH, KW, SH, SW, PH, PW, DH, DW, HO, WO);
}

extern "C" __global__ void max_pool2d_backward_f16(
    const __half* gy, const int* argmax, __half* gx, int P, int H, int W, int KH, int KW, int SH,
    int SW, int PH, int PW, int DH, int DW, int HO, int WO) {
    max_pool2d_backward(gy, argmax, gx, P, H, W, KH, KW, SH, SW, PH, PW, DH, DW, HO, WO);
}
extern "C" __global__ void max_pool2d_backward_f32(
    const float* gy, const int* argmax, float* gx, int P, int H, int W, int KH, int KW, int SH, int SW,
    int PH, int PW, int DH, int DW, int HO, int WO) {
    max_pool2d_backward(gy, argmax, gx, P, H, W, KH, KW, SH, SW, PH, PW, DH, DW, HO, WO);
}
extern "C" __global__ void max_pool2d_backward_f64(
    const double* gy, const int* argmax, double* gx, int P, int H, int W, int KH, int KW, int SH,
    int SW, int PH, int PW, int DH, int DW, int HO, int WO) {
    max_pool2d_backward(gy, argmax, gx, P, H, W, KH, KW, SH, SW, PH, PW, DH, DW, HO, WO);
}

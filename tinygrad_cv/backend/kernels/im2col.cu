// im2col and col2im: the data movement that turns a convolution into one matrix product (GEMM).
//
// Per image, x has layout (C, H, W) and cols has layout (C*KH*KW, HO*WO), the Caffe layout:
//
//     cols[(c*KH + i)*KW + j, oh*WO + ow] = x[c, oh*SH - PH + i*DH, ow*SW - PW + j*DW]   (0 outside x)
//
// The batch is the grid's y dimension: image n = blockIdx.y. Along x, a grid-stride loop covers the
// image. col2im is the adjoint (transpose) of im2col: it sums every column entry back onto the pixel
// it was copied from. It is written as a gather, one thread per pixel, so it needs no atomics.
// Offsets are 64-bit (one image's columns, C*KH*KW*HO*WO, can pass 2^31 - 1 elements); offsets inside
// a plane (h*W + w) are int, so the launchers refuse planes of 2^31 elements or more.
#include "common.h"

// One thread per (c, oh, ow): copies the KH*KW window of that output pixel down its column.
template <typename T>
__device__ void im2col(const T* x, T* cols, int C, int H, int W, int KH, int KW, int SH, int SW,
                       int PH, int PW, int DH, int DW, int HO, int WO) {
    const long long n = blockIdx.y, plane = (long long)HO * WO;
    const T* image = x + n * C * H * W;
    T* image_cols = cols + n * C * KH * KW * plane;
    for (long long idx = first_index(); idx < C * plane; idx += grid_stride()) {
        const int ow = idx % WO, oh = (idx / WO) % HO;
        const long long c = idx / plane;
        const T* channel = image + c * H * W;
        T* out = image_cols + c * KH * KW * plane + oh * WO + ow;  // row (c*KH + 0)*KW + 0
        for (int i = 0; i < KH; ++i) {
            const int h = oh * SH - PH + i * DH;
            for (int j = 0; j < KW; ++j) {
                const int w = ow * SW - PW + j * DW;
                if (h >= 0 && h < H && w >= 0 && w < W) *out = channel[h * W + w];
                else store(out, 0.0f);
                out += plane;  // the next row: the next (i, j)
            }
        }
    }
}

// One thread per pixel (c, h, w): sums the column entries that im2col copied from it.
template <typename T>
__device__ void col2im(const T* cols, T* x, int C, int H, int W, int KH, int KW, int SH, int SW,
                       int PH, int PW, int DH, int DW, int HO, int WO) {
    const long long n = blockIdx.y, plane = (long long)HO * WO, pixels = (long long)H * W;
    const T* image_cols = cols + n * C * KH * KW * plane;
    T* image = x + n * C * pixels;
    for (long long idx = first_index(); idx < C * pixels; idx += grid_stride()) {
        const int w = idx % W, h = (idx / W) % H;
        const long long c = idx / pixels;
        typename Acc<T>::type sum = 0;
        for (int i = 0; i < KH; ++i) {
            const int h_span = h + PH - i * DH;  // = oh * SH when row i of window oh covers h
            if (h_span < 0 || h_span % SH != 0 || h_span / SH >= HO) continue;
            for (int j = 0; j < KW; ++j) {
                const int w_span = w + PW - j * DW;
                if (w_span < 0 || w_span % SW != 0 || w_span / SW >= WO) continue;
                const long long row = (c * KH + i) * KW + j;
                sum += to_acc(image_cols[row * plane + (h_span / SH) * WO + w_span / SW]);
            }
        }
        store(image + idx, sum);
    }
}

extern "C" __global__ void im2col_f16(
    const __half* x, __half* cols, int C, int H, int W, int KH, int KW, int SH, int SW, int PH, int PW,
    int DH, int DW, int HO, int WO) {
    im2col(x, cols, C, H, W, KH, KW, SH, SW, PH, PW, DH, DW, HO, WO);
}
extern "C" __global__ void im2col_f32(
    const float* x, float* cols, int C, int H, int W, int KH, int KW, int SH, int SW, int PH, int PW,
    int DH, int DW, int HO, int WO) {
    im2col(x, cols, C, H, W, KH, KW, SH, SW, PH, PW, DH, DW, HO, WO);
}
extern "C" __global__ void im2col_f64(
    const double* x, double* cols, int C, int H, int W, int KH, int KW, int SH, int SW, int PH, int PW,
    int DH, int DW, int HO, int WO) {
    im2col(x, cols, C, H, W, KH, KW, SH, SW, PH, PW, DH, DW, HO, WO);
}

extern "C" __global__ void col2im_f16(
    const __half* cols, __half* x, int C, int H, int W, int KH, int KW, int SH, int SW, int PH, int PW,
    int DH, int DW, int HO, int WO) {
    col2im(cols, x, C, H, W, KH, KW, SH, SW, PH, PW, DH, DW, HO, WO);
}
extern "C" __global__ void col2im_f32(
    const float* cols, float* x, int C, int H, int W, int KH, int KW, int SH, int SW, int PH, int PW,
    int DH, int DW, int HO, int WO) {
    col2im(cols, x, C, H, W, KH, KW, SH, SW, PH, PW, DH, DW, HO, WO);
}
extern "C" __global__ void col2im_f64(
    const double* cols, double* x, int C, int H, int W, int KH, int KW, int SH, int SW, int PH, int PW,
    int DH, int DW, int HO, int WO) {
    col2im(cols, x, C, H, W, KH, KW, SH, SW, PH, PW, DH, DW, HO, WO);
}

// RoIAlign (Mask R-CNN), with torchvision's semantics.
//
// x: (N, C, H, W). boxes: (K, 5) rows (batch_index, x1, y1, x2, y2) in input coordinates, stored in
// the accumulation type (float for fp16/fp32 inputs, double for fp64). y: (K, C, PH, PW).
// Box k is scaled by spatial_scale (and shifted by -0.5 when aligned) and cut into PH x PW bins; each
// bin averages a grid of GH x GW bilinear samples (GH = sampling_ratio, or ceil(box_h / PH) when
// sampling_ratio <= 0). A sample with y < -1 or y > H (x likewise) contributes 0; others are clamped
// into the image. Without `aligned`, boxes are at least 1 x 1.
//
// backward scatters gy back through the same bilinear weights. Several bins (and boxes) touch the
// same pixel, so the adds must be atomic; gx is always in the accumulation type (the launcher casts).
#include "common.h"

// Bilinear interpolation is separable: along each axis a sample coordinate v falls between pixels
// lo and hi = lo + 1 at fraction frac, and the weight of pixel (i, j) is the product of the two axes'
// weights, (1 - frac) for lo and frac for hi. A coordinate outside [-1, size] is invalid (the sample
// contributes 0); one in [-1, 0] is clamped to 0 and one past the last pixel to the last pixel.
template <typename A>
struct AxisSample {
    bool valid;
    int lo, hi;
    A frac;
};

template <typename A>
__device__ AxisSample<A> axis_sample(A v, int size) {
    AxisSample<A> s;
    s.valid = !(v < -1 || v > size);
    if (!s.valid) return s;
    if (v <= 0) v = 0;
    s.lo = (int)v;
    if (s.lo >= size - 1) {
        s.lo = s.hi = size - 1;
        v = (A)s.lo;
    } else {
        s.hi = s.lo + 1;
    }
    s.frac = v - s.lo;
    return s;
}

// Where the samples of bin (ph, pw) of a box lie, in scaled input coordinates: sample (iy, ix) is at
// (y0 + (iy + 0.5) * step_y, x0 + (ix + 0.5) * step_x) for iy < grid_h, ix < grid_w.
template <typename A>
struct RoiBin {
    int batch, grid_h, grid_w;
    A y0, x0, step_y, step_x, count;
};

template <typename A>
__device__ RoiBin<A> roi_bin(const A* box, int ph, int pw, int PH, int PW, A spatial_scale,
                             int sampling_ratio, int aligned) {
    RoiBin<A> bin;
    const A offset = aligned ? (A)0.5 : (A)0;
    const A start_w = box[1] * spatial_scale - offset, start_h = box[2] * spatial_scale - offset;
    A roi_w = box[3] * spatial_scale - offset - start_w, roi_h = box[4] * spatial_scale - offset - start_h;
    if (!aligned) {
        roi_w = roi_w > 1 ? roi_w : 1;
        roi_h = roi_h > 1 ? roi_h : 1;
    }
    const A bin_h = roi_h / PH, bin_w = roi_w / PW;
    bin.batch = (int)box[0];
    bin.grid_h = sampling_ratio > 0 ? sampling_ratio : (int)ceil(bin_h);
    bin.grid_w = sampling_ratio > 0 ? sampling_ratio : (int)ceil(bin_w);
    bin.y0 = start_h + ph * bin_h;
    bin.x0 = start_w + pw * bin_w;
    bin.step_y = bin_h / bin.grid_h;
    bin.step_x = bin_w / bin.grid_w;
    const int samples = bin.grid_h * bin.grid_w;
    bin.count = samples > 1 ? samples : 1;
    return bin;
}

// One thread per output element (k, c, ph, pw).
template <typename T>
__device__ void roi_align_forward(const T* x, const typename Acc<T>::type* boxes, T* y, int C, int H, int W,
                                  int K, int PH, int PW, typename Acc<T>::type spatial_scale,
                                  int sampling_ratio, int aligned) {
    typedef typename Acc<T>::type A;
    const long long total = (long long)K * C * PH * PW;
    for (long long idx = first_index(); idx < total; idx += grid_stride()) {
        const int pw = idx % PW, ph = (idx / PW) % PH, c = (idx / (PW * PH)) % C;
        const long long k = idx / ((long long)PW * PH * C);
        const RoiBin<A> bin = roi_bin(boxes + 5 * k, ph, pw, PH, PW, spatial_scale, sampling_ratio, aligned);
        const T* plane = x + ((long long)bin.batch * C + c) * H * W;
        A sum = 0;
        for (int iy = 0; iy < bin.grid_h; ++iy) {
            const AxisSample<A> sy = axis_sample(bin.y0 + (iy + (A)0.5) * bin.step_y, H);
            if (!sy.valid) continue;
            const int row_lo = sy.lo * W, row_hi = sy.hi * W;
            #pragma unroll 1  // unrolling would keep more samples live: more registers, no gain
            for (int ix = 0; ix < bin.grid_w; ++ix) {
                const AxisSample<A> sx = axis_sample(bin.x0 + (ix + (A)0.5) * bin.step_x, W);
                if (!sx.valid) continue;
                const A top = (1 - sx.frac) * to_acc(plane[row_lo + sx.lo]) +
                              sx.frac * to_acc(plane[row_lo + sx.hi]);
                const A bottom = (1 - sx.frac) * to_acc(plane[row_hi + sx.lo]) +
                                 sx.frac * to_acc(plane[row_hi + sx.hi]);
                sum += (1 - sy.frac) * top + sy.frac * bottom;
            }
        }
        store(y + idx, sum / bin.count);
    }
}

// One thread per element of gy: spreads gy / count over the four neighbours of every sample.
template <typename T>
__device__ void roi_align_backward(const T* gy, const typename Acc<T>::type* boxes, typename Acc<T>::type* gx,
                                   int C, int H, int W, int K, int PH, int PW,
                                   typename Acc<T>::type spatial_scale, int sampling_ratio, int aligned) {
    typedef typename Acc<T>::type A;
    const long long total = (long long)K * C * PH * PW;
    for (long long idx = first_index(); idx < total; idx += grid_stride()) {
        const int pw = idx % PW, ph = (idx / PW) % PH, c = (idx / (PW * PH)) % C;
        const long long k = idx / ((long long)PW * PH * C);
        const RoiBin<A> bin = roi_bin(boxes + 5 * k, ph, pw, PH, PW, spatial_scale, sampling_ratio, aligned);
        A* plane = gx + ((long long)bin.batch * C + c) * H * W;
        const A share = to_acc(gy[idx]) / bin.count;
        for (int iy = 0; iy < bin.grid_h; ++iy) {
            const AxisSample<A> sy = axis_sample(bin.y0 + (iy + (A)0.5) * bin.step_y, H);
            if (!sy.valid) continue;
            const int row_lo = sy.lo * W, row_hi = sy.hi * W;
            const A share_lo = share * (1 - sy.frac), share_hi = share * sy.frac;
            #pragma unroll 1
            for (int ix = 0; ix < bin.grid_w; ++ix) {
                const AxisSample<A> sx = axis_sample(bin.x0 + (ix + (A)0.5) * bin.step_x, W);
                if (!sx.valid) continue;
                atomicAdd(plane + row_lo + sx.lo, share_lo * (1 - sx.frac));
                atomicAdd(plane + row_lo + sx.hi, share_lo * sx.frac);
                atomicAdd(plane + row_hi + sx.lo, share_hi * (1 - sx.frac));
                atomicAdd(plane + row_hi + sx.hi, share_hi * sx.frac);
            }
        }
    }
}

// __launch_bounds__(256, 4): blocks of at most 256 threads, and registers for 4 of them per SM, which
// caps ptxas at 64 registers per thread (the fp64 variants would take ~70). Launch with <= 256 threads.
extern "C" __global__ void __launch_bounds__(256, 4) roi_align_forward_f16(
    const __half* x, const float* boxes, __half* y, int C, int H, int W, int K, int PH, int PW,
    float spatial_scale, int sampling_ratio, int aligned) {
    roi_align_forward(x, boxes, y, C, H, W, K, PH, PW, spatial_scale, sampling_ratio, aligned);
}
extern "C" __global__ void __launch_bounds__(256, 4) roi_align_forward_f32(
    const float* x, const float* boxes, float* y, int C, int H, int W, int K, int PH, int PW,
    float spatial_scale, int sampling_ratio, int aligned) {
    roi_align_forward(x, boxes, y, C, H, W, K, PH, PW, spatial_scale, sampling_ratio, aligned);
}
extern "C" __global__ void __launch_bounds__(256, 4) roi_align_forward_f64(
    const double* x, const double* boxes, double* y, int C, int H, int W, int K, int PH, int PW,
    double spatial_scale, int sampling_ratio, int aligned) {
    roi_align_forward(x, boxes, y, C, H, W, K, PH, PW, spatial_scale, sampling_ratio, aligned);
}

extern "C" __global__ void __launch_bounds__(256, 4) roi_align_backward_f16(
    const __half* gy, const float* boxes, float* gx, int C, int H, int W, int K, int PH, int PW,
    float spatial_scale, int sampling_ratio, int aligned) {
    roi_align_backward(gy, boxes, gx, C, H, W, K, PH, PW, spatial_scale, sampling_ratio, aligned);
}
extern "C" __global__ void __launch_bounds__(256, 4) roi_align_backward_f32(
    const float* gy, const float* boxes, float* gx, int C, int H, int W, int K, int PH, int PW,
    float spatial_scale, int sampling_ratio, int aligned) {
    roi_align_backward(gy, boxes, gx, C, H, W, K, PH, PW, spatial_scale, sampling_ratio, aligned);
}
extern "C" __global__ void __launch_bounds__(256, 4) roi_align_backward_f64(
    const double* gy, const double* boxes, double* gx, int C, int H, int W, int K, int PH, int PW,
    double spatial_scale, int sampling_ratio, int aligned) {
    roi_align_backward(gy, boxes, gx, C, H, W, K, PH, PW, spatial_scale, sampling_ratio, aligned);
}

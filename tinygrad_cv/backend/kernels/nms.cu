// Greedy non-maximum suppression of fixed-size rows of boxes: one block per row (an image's candidates).
//
// A row holds m boxes (x1, y1, x2, y2) sorted by score, best first, each with a group (its pyramid level)
// and a flag: keep[i] arrives 1 for a candidate, 0 for padding. Box i stays kept unless an earlier kept
// box of its group overlaps it with IoU > threshold. Step i decides box i (every box before it is decided
// by then) and, if i is kept, the block's threads strike out the later boxes it suppresses, one box per
// thread; a barrier ends each step, so m steps of m / blockDim IoUs each. Each thread writes only
// keep[j] for its own j > i and every thread reads keep[i], which no thread writes in step i: no race.
// IoU = inter / union in the accumulation type (and the threshold too), 0 where the union is empty (as box_iou).
#include "common.h"

template <typename T>
__device__ __forceinline__ typename Acc<T>::type area(const T* b) {
    return (to_acc(b[2]) - to_acc(b[0])) * (to_acc(b[3]) - to_acc(b[1]));
}

template <typename A> __device__ __forceinline__ A smaller(A a, A b) { return a < b ? a : b; }
template <typename A> __device__ __forceinline__ A larger(A a, A b) { return a > b ? a : b; }

template <typename T>
__device__ bool overlaps(const T* a, const T* b, typename Acc<T>::type threshold) {
    typedef typename Acc<T>::type A;
    A w = smaller(to_acc(a[2]), to_acc(b[2])) - larger(to_acc(a[0]), to_acc(b[0]));
    A h = smaller(to_acc(a[3]), to_acc(b[3])) - larger(to_acc(a[1]), to_acc(b[1]));
    A inter = (w > 0 ? w : A(0)) * (h > 0 ? h : A(0));
    A uni = area(a) + area(b) - inter;
    return uni > 0 && inter / uni > threshold;
}

template <typename T>
__device__ void nms_rows(const T* boxes, const int* groups, int* keep, int m, typename Acc<T>::type threshold) {
    const long long row = blockIdx.x;
    const T* b = boxes + row * m * 4;
    const int* g = groups + row * m;
    int* k = keep + row * m;
    for (int i = 0; i < m; ++i) {
        if (k[i]) {
            for (int j = i + 1 + threadIdx.x; j < m; j += blockDim.x) {
                if (k[j] && g[j] == g[i] && overlaps(b + 4LL * i, b + 4LL * j, threshold)) k[j] = 0;
            }
        }
        __syncthreads();
    }
}

extern "C" __global__ void nms_rows_f16(const __half* boxes, const int* groups, int* keep, int m, float threshold) {
    nms_rows(boxes, groups, keep, m, threshold);
}
extern "C" __global__ void nms_rows_f32(const float* boxes, const int* groups, int* keep, int m, float threshold) {
    nms_rows(boxes, groups, keep, m, threshold);
}
extern "C" __global__ void nms_rows_f64(const double* boxes, const int* groups, int* keep, int m, double threshold) {
    nms_rows(boxes, groups, keep, m, threshold);
}

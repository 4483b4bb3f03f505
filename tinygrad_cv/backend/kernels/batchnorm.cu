// Batch-norm statistics: per-channel sums over (N, H, W), with a shared-memory block reduction.
//
// x has layout (N, C, L) with L = H*W. One block per channel c = blockIdx.x. Each thread sums a
// strided share of the channel's N*L elements into registers, then the block adds its blockDim.x
// partial sums pairwise in shared memory: log2(blockDim.x) rounds, separated by __syncthreads() so
// that no thread reads a partial sum before its neighbour has written it.
//
// The sums are of d = x - shift with shift = x[0, c, 0] (the channel's first element):
//
//     sum[c] = sum d,  sumsq[c] = sum d^2      mean = shift + sum/m,  var = sumsq/m - (sum/m)^2
//
// The shift keeps sumsq/m and (sum/m)^2 small when the mean is large against the spread, which
// avoids the cancellation of the textbook E[x^2] - E[x]^2. blockDim.x must be a power of two
// <= MAX_BLOCK; fp16 inputs accumulate in fp32 and the sums are in the accumulation type.
#include "common.h"

#define MAX_BLOCK 1024

template <typename T>
__device__ void channel_sums(const T* x, typename Acc<T>::type* sum, typename Acc<T>::type* sumsq, int N,
                             int C, long long L) {
    typedef typename Acc<T>::type A;
    __shared__ A partial_sum[MAX_BLOCK];
    __shared__ A partial_sumsq[MAX_BLOCK];
    const int c = blockIdx.x, tid = threadIdx.x;
    const A shift = to_acc(x[(long long)c * L]);
    A s = 0, sq = 0;
    for (long long e = tid; e < (long long)N * L; e += blockDim.x) {
        const A d = to_acc(x[((long long)(e / L) * C + c) * L + e % L]) - shift;
        s += d;
        sq += d * d;
    }
    partial_sum[tid] = s;
    partial_sumsq[tid] = sq;
    __syncthreads();
    for (int half = blockDim.x / 2; half > 0; half /= 2) {
        if (tid < half) {
            partial_sum[tid] += partial_sum[tid + half];
            partial_sumsq[tid] += partial_sumsq[tid + half];
        }
        __syncthreads();
    }
    if (tid == 0) {
        sum[c] = partial_sum[0];
        sumsq[c] = partial_sumsq[0];
    }
}

extern "C" __global__ void channel_sums_f16(
    const __half* x, float* sum, float* sumsq, int N, int C, long long L) {
    channel_sums(x, sum, sumsq, N, C, L);
}
extern "C" __global__ void channel_sums_f32(
    const float* x, float* sum, float* sumsq, int N, int C, long long L) {
    channel_sums(x, sum, sumsq, N, C, L);
}
extern "C" __global__ void channel_sums_f64(
    const double* x, double* sum, double* sumsq, int N, int C, long long L) {
    channel_sums(x, sum, sumsq, N, C, L);
}

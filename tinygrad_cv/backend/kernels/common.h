// common.h: what every kernel file shares.
//
// The same text is compiled by NVRTC (for the GPU and for the compile checks) and by g++ for the
// emulator. Under the emulator, emu_shim.h is force-included first: it defines TGCV_EMU and provides
// __half and the CUDA built-ins, so cuda_fp16.h is only included for a real CUDA compiler.
#pragma once
#ifndef TGCV_EMU
#include <cuda_fp16.h>
#endif

// NVRTC has no host headers, so no INFINITY: build it from its IEEE-754 bit pattern.
#define TGCV_INF_F __int_as_float(0x7f800000)

// Accumulation type: float for __half and float, double for double. Every kernel loads its inputs
// into Acc<T>::type, computes there, and rounds once when it stores (fp16 accumulates in fp32).
template <typename T> struct Acc;
template <> struct Acc<__half> { typedef float type; };
template <> struct Acc<float> { typedef float type; };
template <> struct Acc<double> { typedef double type; };

__device__ __forceinline__ float to_acc(__half v) { return __half2float(v); }
__device__ __forceinline__ float to_acc(float v) { return v; }
__device__ __forceinline__ double to_acc(double v) { return v; }

__device__ __forceinline__ void store(__half* p, float v) { *p = __float2half(v); }
__device__ __forceinline__ void store(float* p, float v) { *p = v; }
__device__ __forceinline__ void store(double* p, double v) { *p = v; }

// The flat index of this thread and the stride of a grid-stride loop along x: any grid size covers
// any problem size, so launchers may cap the grid and tests may try odd launch configurations.
//
// Indices and sizes that are products of dimensions are 64-bit (long long): a tensor a GPU holds can
// have more than 2^31 - 1 elements (1 x 8193 x 512 x 512 has 2^31 + 2^18), and an int index would
// wrap to a negative number. Dimensions themselves (C, H, W, ...) stay int.
__device__ __forceinline__ long long first_index() { return (long long)blockIdx.x * blockDim.x + threadIdx.x; }
__device__ __forceinline__ long long grid_stride() { return (long long)blockDim.x * gridDim.x; }

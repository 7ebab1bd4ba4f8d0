/**
 * The top of every generated .cu: target selection (nvcc or g++ with cuda_cpu.h), the launch
 * macro, warp collectives and the kernel-table row type. Kept in one string so the generated
 * file is self-contained apart from cuda_cpu.h.
 */
export const PRELUDE = String.raw`#ifdef __CUDACC__
#include <cuda_fp16.h>
#include <cuda_bf16.h>
#define TOKR_LAUNCH(sync, k, grid, block, stream, ...) \
  (k<<<grid, block, 0, (cudaStream_t)(stream)>>>(__VA_ARGS__), (int)cudaGetLastError())
#else
#include "cuda_cpu.h"
#define TOKR_LAUNCH(sync, k, grid, block, stream, ...) \
  ((void)(stream), cucpu::launch(#k, sync, grid, block, 0, k, __VA_ARGS__), 0)
#endif

#ifndef TOKR_PRELUDE
#define TOKR_PRELUDE
typedef int (*tokr_launcher)(const unsigned* grid, void* const* bufs, const int* syms, void* stream);
struct tokr_kernel_info {
  const char* name;
  tokr_launcher launch;
  int num_params;
  int num_symbols;
};

__device__ __forceinline__ int tk_linear_tid() {
  return (int)(threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z));
}

// Full-mask shuffles; bool, __half and __nv_bfloat16 travel as 32-bit values.
__device__ __forceinline__ float tk_shfl_xor(float v, int m) { return __shfl_xor_sync(0xffffffffu, v, m); }
__device__ __forceinline__ int tk_shfl_xor(int v, int m) { return __shfl_xor_sync(0xffffffffu, v, m); }
__device__ __forceinline__ unsigned tk_shfl_xor(unsigned v, int m) { return __shfl_xor_sync(0xffffffffu, v, m); }
__device__ __forceinline__ bool tk_shfl_xor(bool v, int m) { return __shfl_xor_sync(0xffffffffu, (int)v, m) != 0; }
__device__ __forceinline__ __half tk_shfl_xor(__half v, int m) {
  return __float2half_rn(__shfl_xor_sync(0xffffffffu, __half2float(v), m));
}
__device__ __forceinline__ __nv_bfloat16 tk_shfl_xor(__nv_bfloat16 v, int m) {
  return __float2bfloat16_rn(__shfl_xor_sync(0xffffffffu, __bfloat162float(v), m));
}

// NaN-propagating float min/max (fminf/fmaxf drop NaNs; KIR keeps them).
__device__ __forceinline__ float tk_fmin(float a, float b) { return (a < b || a != a) ? a : b; }
__device__ __forceinline__ float tk_fmax(float a, float b) { return (a > b || a != a) ? a : b; }
// float -> integer truncates and saturates, NaN -> 0 (what the GPU's cvt.rzi does; C leaves it undefined).
__device__ __forceinline__ int tk_f2i(float x) {
  return x != x ? 0 : x >= 2147483647.0f ? 2147483647 : x <= -2147483648.0f ? (-2147483647 - 1) : (int)x;
}
__device__ __forceinline__ unsigned tk_f2u(float x) {
  return x != x || x <= 0.0f ? 0u : x >= 4294967295.0f ? 4294967295u : (unsigned)x;
}

// Integer division by a literal zero (dead code of zero-sized shapes; nvcc rejects it as written).
#ifdef __CUDACC__
template <class T> __device__ __forceinline__ T tk_div_by_zero() { __trap(); return T(0); }
#else
template <class T> T tk_div_by_zero() { cucpu::fail("integer division by zero at " + cucpu::where()); }
#endif

// A zero divisor nvcc cannot see as a literal (float x / 0 is inf or NaN, as in the interpreter).
__device__ __forceinline__ float tk_fzero() { return 0.0f; }

__device__ __forceinline__ float tk_add(float a, float b) { return a + b; }
__device__ __forceinline__ int tk_add(int a, int b) { return a + b; }
__device__ __forceinline__ unsigned tk_add(unsigned a, unsigned b) { return a + b; }
__device__ __forceinline__ __half tk_add(__half a, __half b) { return __float2half_rn(__half2float(a) + __half2float(b)); }
__device__ __forceinline__ __nv_bfloat16 tk_add(__nv_bfloat16 a, __nv_bfloat16 b) {
  return __float2bfloat16_rn(__bfloat162float(a) + __bfloat162float(b));
}
__device__ __forceinline__ float tk_max(float a, float b) { return tk_fmax(a, b); }
__device__ __forceinline__ int tk_max(int a, int b) { return max(a, b); }
__device__ __forceinline__ unsigned tk_max(unsigned a, unsigned b) { return max(a, b); }
__device__ __forceinline__ __half tk_max(__half a, __half b) { return __float2half_rn(tk_fmax(__half2float(a), __half2float(b))); }
__device__ __forceinline__ __nv_bfloat16 tk_max(__nv_bfloat16 a, __nv_bfloat16 b) {
  return __float2bfloat16_rn(tk_fmax(__bfloat162float(a), __bfloat162float(b)));
}
__device__ __forceinline__ float tk_min(float a, float b) { return tk_fmin(a, b); }
__device__ __forceinline__ int tk_min(int a, int b) { return min(a, b); }
__device__ __forceinline__ unsigned tk_min(unsigned a, unsigned b) { return min(a, b); }
__device__ __forceinline__ __half tk_min(__half a, __half b) { return __float2half_rn(tk_fmin(__half2float(a), __half2float(b))); }
__device__ __forceinline__ __nv_bfloat16 tk_min(__nv_bfloat16 a, __nv_bfloat16 b) {
  return __float2bfloat16_rn(tk_fmin(__bfloat162float(a), __bfloat162float(b)));
}

// Butterfly reductions: every lane of the warp ends with the result over all 32 lanes.
template <class T> __device__ __forceinline__ T tk_warp_add(T v) {
  for (int o = 16; o > 0; o >>= 1) v = tk_add(v, tk_shfl_xor(v, o));
  return v;
}
template <class T> __device__ __forceinline__ T tk_warp_max(T v) {
  for (int o = 16; o > 0; o >>= 1) v = tk_max(v, tk_shfl_xor(v, o));
  return v;
}
template <class T> __device__ __forceinline__ T tk_warp_min(T v) {
  for (int o = 16; o > 0; o >>= 1) v = tk_min(v, tk_shfl_xor(v, o));
  return v;
}
#endif`;

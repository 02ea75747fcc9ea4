#pragma once
// bf16 weights times float32 activations for 1-2 rows (decode):
//   y[r, o] (+)= sum_i x[r, i] * w[o, i]
// w is [out, in] bf16 row-major with in a multiple of 8 (16-byte rows), x [rows, in] f32, y
// [rows, out] f32, all device memory. Each product of an exact bf16 weight and an f32 x is
// exact in fp32, accumulated in fp32: more accurate than cuBLAS on bf16-rounded x, and one pass
// over the weights at 1 or 2 rows without splitting x or a separate epilogue (cuBLAS on the
// hi/lo split of x ran as a 2-row GEMM into scratch plus an add).
// x may be computed inside the product from the decoder's RMSNorm or SwiGLU input (GemvInput,
// the interface the affine persistent kernel shares): every block stages x in shared memory
// once, so the separate norm / SwiGLU kernel and its round trip through memory go away.
// Deterministic: fixed-order sums whatever the scheduling.
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include "kernels/cuda/gemv_input.hpp"

namespace uq::cuda {

constexpr int kBf16GemvMaxRows = 2;

// True when bf16_gemv_cuda takes these shapes: 1-2 rows, in a multiple of 8 and rows x in f32
// fitting the device's shared memory of a block.
bool bf16_gemv_supports(int rows, int in);

// accumulate: y += the product instead of y =.
void bf16_gemv_cuda(const __nv_bfloat16* w, int out, int in, const float* x, int rows, float* y,
                    bool accumulate, cudaStream_t stream);
// The same product of x = f(input) (gemv_input.hpp); input is [rows, in], or [rows, 2 * in] for
// swiglu; gamma (rmsnorm) 16-byte aligned like input.
void bf16_gemv_fused_cuda(const __nv_bfloat16* w, int out, int in, const float* input, int rows,
                          const GemvInput& how, float* y, bool accumulate, cudaStream_t stream);

// Tests: run every product with this K split (1, 2 or 4 warps per output row) instead of the
// automatic choice; 0 restores it.
void set_bf16_gemv_splits(int splits);

}  // namespace uq::cuda

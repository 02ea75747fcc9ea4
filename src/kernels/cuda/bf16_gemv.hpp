#pragma once
// bf16 weights times float32 activations for 1-2 rows (decode):
//   y[r, o] (+)= sum_i x[r, i] * w[o, i]
// w is [out, in] bf16 row-major with in a multiple of 8 (16-byte rows), x [rows, in] f32, y
// [rows, out] f32, all device memory. Each product of an exact bf16 weight and an f32 x is
// exact in fp32, accumulated in fp32: more accurate than cuBLAS on bf16-rounded x, and one pass
// over the weights at 1 or 2 rows without splitting x or a separate epilogue (cuBLAS on the
// hi/lo split of x ran as a 2-row GEMM into scratch plus an add).
#include <cuda_bf16.h>
#include <cuda_runtime.h>

namespace uq::cuda {

constexpr int kBf16GemvMaxRows = 2;

// True when bf16_gemv_cuda takes these shapes.
bool bf16_gemv_supports(int rows, int in);

// accumulate: y += the product instead of y =.
void bf16_gemv_cuda(const __nv_bfloat16* w, int out, int in, const float* x, int rows, float* y,
                    bool accumulate, cudaStream_t stream);

}  // namespace uq::cuda

#pragma once
// Quantized matrix-vector / skinny matrix product on the GPU, dequantization fused:
//   y[r, o] = sum_i x[r, i] * (scale[o, i / g] * q[o, i] + bias[o, i / g])
// x is [rows, in] (f32 or bf16, 16-byte aligned), y is [rows, out] f32, both device memory.
// Accumulation is fp32. Any rows >= 1 works with every kernel.
// Three kernels compute the same function:
// - simt: fp32 dequantization on CUDA cores, exact to fp32 rounding; for 1..16 rows (more are
//   done 16 at a time, each pass reading the weights again);
// - tensor_cores: mma.sync on exact bf16 codes (f32 x split into two bf16 parts), exact to fp32
//   rounding; 16 rows per pass like simt;
// - tiled: prompt-sized (tens to thousands of rows): packed codes, scale/bias pairs and bf16 x
//   staged in shared memory by a 4-stage cp.async pipeline, weights dequantized (to bf16)
//   straight into mma.sync fragments, fp32 accumulation, all rows in one launch; the accuracy
//   of a bf16 matmul.
// automatic (automatic_kernel) picks by rows and out, from the measurements in
// docs/PERFORMANCE.md: simt for 1-2 rows, tensor cores for 3-16 (and in 16-row passes up to 64
// rows where out < 8192), tiled beyond.
// accumulate: y += the product instead of y = (1-2 rows, simt: the decoder's residual adds;
// other cases throw uq::Error).
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include "kernels/cuda/affine_device_weight.hpp"

namespace uq::cuda {

enum class GemvKernel { automatic, tensor_cores, simt, tiled };

// The kernel `automatic` runs for `rows` activation rows and `out` weight rows.
GemvKernel automatic_kernel(int rows, int out);

void affine_gemv_cuda(const AffineDeviceWeight& w, const float* x_dev, int rows, float* y_dev,
                      cudaStream_t stream, GemvKernel kernel = GemvKernel::automatic,
                      bool accumulate = false);
void affine_gemv_cuda(const AffineDeviceWeight& w, const __nv_bfloat16* x_dev, int rows,
                      float* y_dev, cudaStream_t stream, GemvKernel kernel = GemvKernel::automatic,
                      bool accumulate = false);

}  // namespace uq::cuda

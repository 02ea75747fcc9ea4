#pragma once
// Quantized matrix-vector / skinny matrix product on the GPU, dequantization fused:
//   y[r, o] = sum_i x[r, i] * (scale[o, i / g] * q[o, i] + bias[o, i / g])
// x is [rows, in] (f32 or bf16, 16-byte aligned), y is [rows, out] f32, both device memory.
// Accumulation is fp32. Any rows >= 1 works; the kernels are made for 1..16 (more rows are done
// 16 at a time, each pass reading the weights again).
// Two kernels compute the same function: tensor_cores (mma.sync on exact bf16 codes, f32 x
// split into two bf16 parts) and simt (fp32 dequantization on CUDA cores). automatic picks by
// rows, from the H100 measurements in docs/PERFORMANCE.md: simt for 1-2 rows, where it was
// faster, tensor cores from 3 rows on, where simt's cost grows with every row.
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include "kernels/cuda/affine_device_weight.hpp"

namespace uq::cuda {

enum class GemvKernel { automatic, tensor_cores, simt };

void affine_gemv_cuda(const AffineDeviceWeight& w, const float* x_dev, int rows, float* y_dev,
                      cudaStream_t stream, GemvKernel kernel = GemvKernel::automatic);
void affine_gemv_cuda(const AffineDeviceWeight& w, const __nv_bfloat16* x_dev, int rows,
                      float* y_dev, cudaStream_t stream, GemvKernel kernel = GemvKernel::automatic);

}  // namespace uq::cuda

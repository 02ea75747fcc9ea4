#pragma once
// Quantized matrix-vector / skinny matrix product on the GPU, dequantization fused:
//   y[r, o] = sum_i x[r, i] * (scale[o, i / g] * q[o, i] + bias[o, i / g])
// x is [rows, in] (f32 or bf16, 16-byte aligned), y is [rows, out] f32, both device memory.
// Accumulation is fp32. Any rows >= 1 works with every kernel.
// Six kernels compute the same function:
// - stream_mma: for 1-2 rows (more run 2 at a time): the stream kernel's structure with the
//   products on the tensor cores (mma.sync on exact bf16 codes, f32 x split into 3 bf16 parts:
//   exact to fp32 rounding; affine_gemv_stream_mma.cuh). Where mma_stream_gemv_supported (2, 4
//   and 8 bits, in % 256 == 0, in <= 65536; fused RMSNorm in <= 4096); forced on another weight,
//   stream runs instead;
// - stream: for 1-2 rows (more run 2 at a time): x held in registers per 1024-element slice of
//   `in`, the weights streamed past it through a cp.async ring per warp, fp32 dequantization on
//   CUDA cores, exact to fp32 rounding (affine_gemv_stream.cuh). Where stream_gemv_supported;
//   forced on another weight, simt runs instead;
// - persistent: for 1..16 rows (more run 16 at a time): mma.sync on exact bf16 codes with x as
//   B fragments made by a prologue kernel (f32 x split into 3 bf16 parts for 1-2 rows: exact to
//   fp32 rounding; 2 parts, 16 significant bits, for 3-16 rows; bf16 x as is), persistent grid,
//   K split across warps for short outputs, PDL between prologue and main kernel
//   (affine_gemv_persistent.cuh);
// - simt: fp32 dequantization on CUDA cores, exact to fp32 rounding; for 1..16 rows (more are
//   done 16 at a time, each pass reading the weights again);
// - tensor_cores: the older mma.sync kernel (f32 x split into two bf16 parts), 16 rows per pass;
// - tiled: prompt-sized (tens to thousands of rows): packed codes, scale/bias pairs and bf16 x
//   staged in shared memory by a 4-stage cp.async pipeline, weights dequantized (to bf16)
//   straight into mma.sync fragments, fp32 accumulation, all rows in one launch; the accuracy
//   of a bf16 matmul.
// automatic picks by rows and shape, from the measurements in docs/PERFORMANCE.md: for 1-2 rows
// stream_mma where supported, else stream where supported, else simt, or persistent where in >= 2
// out (down_proj); persistent for 3-16 rows; 16-row tensor-core passes up to 64 rows where out <
// 8192; tiled beyond. accumulate: y += the product instead of y = (persistent and both stream
// kernels for any rows, simt for 1-2 rows; other cases throw uq::Error). scratch: where the
// persistent kernel keeps its x fragments (gemv_scratch.hpp); null: memory allocated and freed
// stream-ordered per product.
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include "kernels/cuda/affine_device_weight.hpp"
#include "kernels/cuda/gemv_scratch.hpp"

namespace uq::cuda {

enum class GemvKernel { automatic, persistent, tensor_cores, simt, tiled, stream, stream_mma };

// What a fused product multiplies, computed from `input` (f32, device) as it loads x:
// plain: x = input [rows, in]; rmsnorm: x = h * rsqrt(mean(h^2) + eps) * gamma with h = input
// [rows, in] (the decoder's RMSNorm before q|k|v and gate|up); swiglu: x = silu(gate) * up with
// input [rows, 2 * in], gate then up in each row (the decoder's gate|up product).
enum class GemvInputMode { plain, rmsnorm, swiglu };
struct GemvInput {
  GemvInputMode mode = GemvInputMode::plain;
  const float* gamma = nullptr;  // rmsnorm: [in] weight (device)
  float eps = 0.0f;              // rmsnorm
};

void affine_gemv_cuda(const AffineDeviceWeight& w, const float* x_dev, int rows, float* y_dev,
                      cudaStream_t stream, GemvKernel kernel = GemvKernel::automatic,
                      bool accumulate = false, GemvScratch* scratch = nullptr);
void affine_gemv_cuda(const AffineDeviceWeight& w, const __nv_bfloat16* x_dev, int rows,
                      float* y_dev, cudaStream_t stream, GemvKernel kernel = GemvKernel::automatic,
                      bool accumulate = false, GemvScratch* scratch = nullptr);
// Whether the stream kernel can run w: rows of codes on 16 bytes (in * bits % 128 == 0), an even
// number of groups per row, in <= 16384 and its rings within the device's shared memory.
bool stream_gemv_supported(const AffineDeviceWeight& w);
// Whether the tensor-core stream kernel can run w: 2, 4 or 8 bits with group * bits >= 128,
// in % 256 == 0, in <= 65536 and its rings within the device's shared memory (its fused RMSNorm
// also needs in <= 4096).
bool mma_stream_gemv_supported(const AffineDeviceWeight& w);
// Whether the tensor-core stream kernel splits the passes of a wide `in` (2-8 of them: in 4097
// to 32768) over a thread block cluster, one pass per block (on unless the environment sets
// UQ_GEMV_PASS_SPLIT=0); tests and benchmarks switch it to run both ways.
bool mma_stream_pass_split_enabled();
void set_mma_stream_pass_split_enabled(bool enabled);
// The kernel `automatic` runs for `rows` rows of an out x in weight of that width and group.
GemvKernel automatic_gemv_kernel(int rows, int out, int in, int bits, int group_size);
// Whether `kernel` is one of the 1-2 row stream kernels (stream, stream_mma).
bool is_stream_gemv_kernel(GemvKernel kernel);
// Whether `kernel` (not automatic) can add its product of `rows` rows into y (accumulate).
bool gemv_kernel_accumulates(GemvKernel kernel, int rows);
// The product with its input transform fused in, 1..16 rows: a stream kernel (1-2 rows, where
// `kernel` is stream_mma or stream, or automatic picks one) or the persistent kernel's prologue.
void affine_gemv_fused_cuda(const AffineDeviceWeight& w, const float* input, int rows, float* y_dev,
                            cudaStream_t stream, const GemvInput& how, bool accumulate = false,
                            GemvScratch* scratch = nullptr,
                            GemvKernel kernel = GemvKernel::automatic);

}  // namespace uq::cuda

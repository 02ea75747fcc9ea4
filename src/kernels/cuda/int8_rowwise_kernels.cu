#include "kernels/cuda/int8_rowwise_kernels.hpp"

#include "kernels/cuda/cuda_check.hpp"
#include "kernels/cuda/warp_reduce.cuh"

namespace uq::cuda {
namespace {

constexpr int kThreads = 256;
constexpr int kCompactThreads = 1024;
constexpr float kInverse127Squared = 1.0f / (127.0f * 127.0f);

__global__ void flag_outliers_kernel(const float* x, int rows, int in, float threshold,
                                     std::int32_t* flags) {
  const int column = static_cast<int>(blockIdx.x * blockDim.x + threadIdx.x);
  if (column >= in) return;
  int outlier = 0;
  if (threshold > 0.0f) {
    for (int r = 0; r < rows && outlier == 0; ++r)
      outlier = fabsf(x[static_cast<std::int64_t>(r) * in + column]) >= threshold ? 1 : 0;
  }
  flags[column] = outlier;
}

// One block: list[0] = number of flagged columns, list[1..] = those columns in order.
__global__ void __launch_bounds__(kCompactThreads)
    compact_outliers_kernel(const std::int32_t* flags, int in, std::int32_t* list) {
  __shared__ int warp_counts[kCompactThreads / 32];
  __shared__ int base;
  if (threadIdx.x == 0) base = 0;
  const int lane = static_cast<int>(threadIdx.x) % 32;
  const int warp = static_cast<int>(threadIdx.x) / 32;
  for (int start = 0; start < in; start += kCompactThreads) {
    const int column = start + static_cast<int>(threadIdx.x);
    const bool flagged = column < in && flags[column] != 0;
    const unsigned ballot = __ballot_sync(0xffffffffu, flagged);
    __syncthreads();  // base of the previous round is final
    if (lane == 0) warp_counts[warp] = __popc(ballot);
    __syncthreads();
    int offset = base;
    for (int w = 0; w < warp; ++w) offset += warp_counts[w];
    if (flagged) list[1 + offset + __popc(ballot & ((1u << lane) - 1u))] = column;
    __syncthreads();
    if (threadIdx.x == 0)
      for (int w = 0; w < kCompactThreads / 32; ++w) base += warp_counts[w];
  }
  __syncthreads();
  if (threadIdx.x == 0) list[0] = base;
}

__global__ void __launch_bounds__(kThreads)
    quantize_rows_kernel(const float* x, int in, const std::int32_t* flags, std::int8_t* quantized,
                         float* row_absmax) {
  const float* row = x + static_cast<std::int64_t>(blockIdx.x) * in;
  std::int8_t* codes = quantized + static_cast<std::int64_t>(blockIdx.x) * in;
  float max_abs = 0.0f;
  for (int c = static_cast<int>(threadIdx.x); c < in; c += kThreads)
    if (flags[c] == 0) max_abs = fmaxf(max_abs, fabsf(row[c]));
  max_abs = warp_max(max_abs);
  __shared__ float partial[kThreads / 32];
  if (threadIdx.x % 32 == 0) partial[threadIdx.x / 32] = max_abs;
  __syncthreads();
  max_abs = 0.0f;
  for (int w = 0; w < kThreads / 32; ++w) max_abs = fmaxf(max_abs, partial[w]);
  if (threadIdx.x == 0) row_absmax[blockIdx.x] = max_abs;
  const float factor = max_abs == 0.0f ? 0.0f : (1.0f / max_abs) * 127.0f;
  for (int c = static_cast<int>(threadIdx.x); c < in; c += kThreads) {
    const bool quantize = flags[c] == 0 && max_abs != 0.0f;
    codes[c] = quantize ? static_cast<std::int8_t>(__float2int_rn(row[c] * factor)) : 0;
  }
}

// One warp per output column o, looping over the input rows.
__global__ void __launch_bounds__(kThreads)
    int8_matmul_kernel(const std::int8_t* codes, const float* scb, int out, int in, const float* x,
                       const std::int8_t* quantized, const float* row_absmax,
                       const std::int32_t* outliers, int rows, float* y) {
  const int o = static_cast<int>(blockIdx.x) * (kThreads / 32) + static_cast<int>(threadIdx.x) / 32;
  const int lane = static_cast<int>(threadIdx.x) % 32;
  if (o >= out) return;
  const std::int8_t* w = codes + static_cast<std::int64_t>(o) * in;
  const float weight_scale = scb[o];
  const int outlier_count = outliers[0];
  for (int r = 0; r < rows; ++r) {
    const std::int8_t* xq = quantized + static_cast<std::int64_t>(r) * in;
    int acc = 0;
    if (in % 4 == 0) {
      const auto* w4 = reinterpret_cast<const int*>(w);
      const auto* x4 = reinterpret_cast<const int*>(xq);
      for (int i = lane; i < in / 4; i += 32) acc = __dp4a(__ldg(w4 + i), x4[i], acc);
    } else {
      for (int i = lane; i < in; i += 32) acc += static_cast<int>(w[i]) * static_cast<int>(xq[i]);
    }
    for (int offset = 16; offset > 0; offset /= 2) acc += __shfl_xor_sync(0xffffffffu, acc, offset);
    if (lane == 0) {
      float value = static_cast<float>(acc) * (row_absmax[r] * weight_scale * kInverse127Squared);
      for (int k = 0; k < outlier_count; ++k) {
        const int c = outliers[1 + k];
        value += x[static_cast<std::int64_t>(r) * in + c] *
                 (static_cast<float>(w[c]) * weight_scale / 127.0f);
      }
      y[static_cast<std::int64_t>(r) * out + o] = value;
    }
  }
}

}  // namespace

void int8_rowwise_matmul(const std::int8_t* codes, const float* scb, int out, int in,
                         float threshold, const float* x, int rows, float* y,
                         const Int8RowwiseWorkspace& workspace, cudaStream_t stream) {
  std::int32_t* list = workspace.outliers;
  std::int32_t* flags = workspace.outliers + in + 1;
  flag_outliers_kernel<<<(in + kThreads - 1) / kThreads, kThreads, 0, stream>>>(x, rows, in,
                                                                                threshold, flags);
  UQ_CUDA_CHECK_LAUNCH("flag_outliers_kernel");
  compact_outliers_kernel<<<1, kCompactThreads, 0, stream>>>(flags, in, list);
  UQ_CUDA_CHECK_LAUNCH("compact_outliers_kernel");
  quantize_rows_kernel<<<rows, kThreads, 0, stream>>>(x, in, flags, workspace.quantized_x,
                                                      workspace.row_absmax);
  UQ_CUDA_CHECK_LAUNCH("quantize_rows_kernel");
  int8_matmul_kernel<<<(out + kThreads / 32 - 1) / (kThreads / 32), kThreads, 0, stream>>>(
      codes, scb, out, in, x, workspace.quantized_x, workspace.row_absmax, list, rows, y);
  UQ_CUDA_CHECK_LAUNCH("int8_matmul_kernel");
}

}  // namespace uq::cuda

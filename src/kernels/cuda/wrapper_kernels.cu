#include "kernels/cuda/wrapper_kernels.hpp"

#include <cuda_fp8.h>

#include "kernels/cuda/cuda_check.hpp"

namespace uq::cuda {
namespace {

constexpr int kThreads = 256;

__global__ void quantize_dequantize_kernel(const float* a, const float* b, std::size_t count,
                                           ActivationCode code, float scale, float* out) {
  const std::size_t i = blockIdx.x * static_cast<std::size_t>(blockDim.x) + threadIdx.x;
  if (i >= count) return;
  const float value = a[i] + (b != nullptr ? b[i] : 0.0f);
  float result = 0.0f;
  if (scale != 0.0f) {
    const float scaled = value / scale;
    if (code == ActivationCode::int8) {
      result = fminf(fmaxf(rintf(scaled), -128.0f), 127.0f) * scale;
    } else if (code == ActivationCode::e4m3) {
      result = static_cast<float>(__nv_fp8_e4m3(fminf(fmaxf(scaled, -448.0f), 448.0f))) * scale;
    } else {
      result = static_cast<float>(__nv_fp8_e5m2(fminf(fmaxf(scaled, -57344.0f), 57344.0f))) * scale;
    }
  }
  out[i] = result;
}

__global__ void add_lora_rows_kernel(const float* a, const float* b, int rank, int in, float scale,
                                     const std::int32_t* ids, int count, float* out) {
  const std::size_t index = blockIdx.x * static_cast<std::size_t>(blockDim.x) + threadIdx.x;
  if (index >= static_cast<std::size_t>(count) * in) return;
  const std::size_t t = index / in;
  const std::size_t column = index % in;
  const float* b_row = b + static_cast<std::size_t>(ids[t]) * rank;
  float sum = 0.0f;
  for (int k = 0; k < rank; ++k) sum += b_row[k] * a[static_cast<std::size_t>(k) * in + column];
  out[index] += scale * sum;
}

unsigned blocks_for(std::size_t items) {
  return static_cast<unsigned>((items + kThreads - 1) / kThreads);
}

}  // namespace

void quantize_dequantize(const float* a, const float* b, std::size_t count, ActivationCode code,
                         float scale, float* out, cudaStream_t stream) {
  if (count == 0) return;
  quantize_dequantize_kernel<<<blocks_for(count), kThreads, 0, stream>>>(a, b, count, code, scale,
                                                                         out);
  UQ_CUDA_CHECK_LAUNCH("quantize_dequantize_kernel");
}

void add_lora_rows(const float* a, const float* b, int rank, int in, float scale,
                   const std::int32_t* ids, int count, float* out, cudaStream_t stream) {
  const std::size_t items = static_cast<std::size_t>(count) * static_cast<std::size_t>(in);
  if (items == 0) return;
  add_lora_rows_kernel<<<blocks_for(items), kThreads, 0, stream>>>(a, b, rank, in, scale, ids,
                                                                   count, out);
  UQ_CUDA_CHECK_LAUNCH("add_lora_rows_kernel");
}

}  // namespace uq::cuda

#pragma once
// Elementwise kernels of the weights that wrap another (QuantoActivationWeight, LoraWeight).
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

namespace uq::cuda {

enum class ActivationCode : int { int8, e4m3, e5m2 };

// out[i] = quantize-dequantize(a[i] + (b ? b[i] : 0)) with one per-tensor scale, as quanto's
// quantize_activation (src/quant/quanto_activations.cpp): int8 codes clamp(round(v / s), -128,
// 127), float8 codes fp8(clamp(v / s, ±max)); zeros when scale is 0. out may alias a or b.
void quantize_dequantize(const float* a, const float* b, std::size_t count, ActivationCode code,
                         float scale, float* out, cudaStream_t stream);

// out[t, :] += scale * B[ids[t], :] A for A [rank, in], B [rows of W, rank].
void add_lora_rows(const float* a, const float* b, int rank, int in, float scale,
                   const std::int32_t* ids, int count, float* out, cudaStream_t stream);

}  // namespace uq::cuda

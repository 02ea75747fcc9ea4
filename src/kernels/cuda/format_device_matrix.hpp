#pragma once
// Device matrices of the formats DeviceMatrix does not multiply itself (every Weight type but
// float and MLX affine with bf16 scales at the tuned bits and group sizes):
//   - decoded formats (affine with f16/f32 scales or other bits/groups, symmetric int8/int4,
//     float8, bnb NF4/FP4, ggml blocks): format_gemv for up to kFormatGemvMaxRows rows, else
//     tiles of W decoded to fp32 scratch and multiplied with cublasSgemm (never the whole W);
//   - LLM.int8 (Int8RowwiseWeight): int8_rowwise_matmul, the CPU's numerics;
//   - QuantoActivationWeight: input and output quantize-dequantized around the wrapped matrix;
//   - LoraWeight: the base product plus scale * B (A x), both through cublasSgemm.
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "kernels/cuda/device_linear.hpp"

namespace uq::cuda {

class FormatDeviceMatrix {
 public:
  virtual ~FormatDeviceMatrix() = default;
  // As DeviceMatrix::multiply.
  virtual DeviceMatrix::Product multiply(const float* x, int rows, const LinearContext& context,
                                         float* direct) const = 0;
  // out[t, :] = W[ids[t], :], as the CPU weight's dequantize_rows.
  virtual void gather(const std::int32_t* ids, int count, float* out,
                      cudaStream_t stream) const = 0;
};

// Empty when make_format_device_matrix takes `weight`, else why not.
std::optional<std::string> format_unsupported_reason(const NamedWeight& weight);
// True when `a` and `b` (both taken by make_format_device_matrix) can share one matrix.
bool format_fusable(const Weight& a, const Weight& b);
// The row-concatenation of `parts` (pairwise format_fusable); throws uq::Error naming a part.
std::unique_ptr<const FormatDeviceMatrix> make_format_device_matrix(
    const std::vector<NamedWeight>& parts);

}  // namespace uq::cuda

#pragma once
// A weight matrix stored MLX-style: affine codes packed in uint32 words plus
// per-group scales and biases (see quant/affine.hpp). matmul runs on the
// packed data (kernels/cpu/affine_kernels.hpp); nothing is dequantized whole.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string_view>
#include <vector>

#include "core/dtype.hpp"
#include "kernels/cpu/affine_matrix.hpp"
#include "model/weight.hpp"

namespace uq {

class AffineWeight final : public Weight {
 public:
  // Quantizes `data` ([out, in] of float dtype `dtype`). Scales and biases are
  // stored in `dtype` for F32/F16/BF16 (as MLX does), else in F32. Throws
  // uq::Error naming `tensor` for unsupported bits/group size or NaN/Inf.
  static std::unique_ptr<AffineWeight> quantize(const void* data, DType dtype, std::int64_t out,
                                                std::int64_t in, int bits, int group_size,
                                                std::string_view tensor);

  // From already-packed arrays (a saved model): codes [out, in*bits/32],
  // scales and biases [out, in/group_size] of `param_dtype` (F32/F16/BF16),
  // given as raw bytes. Sizes are checked; the arrays are copied.
  static std::unique_ptr<AffineWeight> from_packed(
      std::int64_t out, std::int64_t in, int bits, int group_size,
      std::span<const std::uint32_t> codes, DType param_dtype, std::span<const std::byte> scales,
      std::span<const std::byte> biases, std::string_view tensor);

  std::int64_t out_features() const override { return out_; }
  std::int64_t in_features() const override { return in_; }
  void matmul(const float* x, std::int64_t rows, float* y) const override;
  void dequantize_rows(std::int64_t first, std::int64_t count, float* out) const override;
  std::size_t storage_bytes() const override;
  std::string describe() const override;  // "affine b4 g64"

  int bits() const { return bits_; }
  int group_size() const { return group_size_; }
  DType param_dtype() const { return param_dtype_; }
  // Raw arrays, row-major, for saving: codes [out, words], scales/biases
  // [out, groups] as bytes of param_dtype().
  std::span<const std::uint32_t> codes() const;
  std::span<const std::byte> scales() const { return scales_; }
  std::span<const std::byte> biases() const { return biases_; }
  // The view the CPU kernels take.
  cpu::AffineMatrix matrix() const;

 private:
  AffineWeight(std::int64_t out, std::int64_t in, int bits, int group_size, DType param_dtype);

  std::int64_t out_;
  std::int64_t in_;
  int bits_;
  int group_size_;
  DType param_dtype_;
  std::vector<std::uint32_t> codes_;  // plus padding words the SIMD unpackers may read
  std::vector<std::byte> scales_;
  std::vector<std::byte> biases_;
};

}  // namespace uq

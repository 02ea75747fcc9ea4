#pragma once
// A weight matrix quantized symmetrically per output channel (int8, or int4
// packed two per byte; see quant/symmetric.hpp). matmul runs on the codes
// (kernels/cpu/symmetric_kernels.hpp). Used by the quanto backend (qint8)
// and the custom backend (int8 and int4).
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string_view>
#include <vector>

#include "core/dtype.hpp"
#include "kernels/cpu/symmetric_matrix.hpp"
#include "model/weight.hpp"

namespace uq {

class SymmetricWeight final : public Weight {
 public:
  // Quantizes `data` ([out, in] of float dtype `dtype`) with scales computed
  // and kept in `scale_dtype` (F32, F16 or BF16). Throws uq::Error naming `tensor`.
  static std::unique_ptr<SymmetricWeight> quantize(const void* data, DType dtype, std::int64_t out,
                                                   std::int64_t in, int bits, DType scale_dtype,
                                                   std::string_view tensor);
  // From saved arrays: codes [out, bytes per row] and scales [out] as raw
  // bytes of `scale_dtype`. Sizes are checked; the arrays are copied.
  static std::unique_ptr<SymmetricWeight> from_codes(std::int64_t out, std::int64_t in, int bits,
                                                     std::span<const std::byte> codes,
                                                     DType scale_dtype,
                                                     std::span<const std::byte> scales,
                                                     std::string_view tensor);

  std::int64_t out_features() const override { return out_; }
  std::int64_t in_features() const override { return in_; }
  void matmul(const float* x, std::int64_t rows, float* y) const override;
  void dequantize_rows(std::int64_t first, std::int64_t count, float* out) const override;
  std::size_t storage_bytes() const override;
  std::string describe() const override;  // "symmetric int8 per-channel"

  int bits() const { return bits_; }
  DType scale_dtype() const { return scale_dtype_; }
  std::span<const std::uint8_t> codes() const { return codes_; }
  // The scales as bytes of scale_dtype() ([out]), for saving.
  std::vector<std::byte> scale_bytes() const;
  cpu::SymmetricMatrix matrix() const;

 private:
  SymmetricWeight(std::int64_t out, std::int64_t in, int bits, DType scale_dtype);

  std::int64_t out_;
  std::int64_t in_;
  int bits_;
  DType scale_dtype_;
  std::vector<std::uint8_t> codes_;
  std::vector<float> scales_;  // values exactly representable in scale_dtype_
};

}  // namespace uq

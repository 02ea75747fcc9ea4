#pragma once
// A weight matrix stored as float8 codes (e4m3fn or e5m2) with one scale per
// output channel: optimum-quanto's qfloat8 weights (quant/float8.hpp).
// matmul: a row-parallel GEMV for a few rows (kernels/cpu/float8_kernels),
// tiles decoded through a 256-entry table to float32 and sgemm
// (kernels/cpu/tiled_gemm) for more.
#include <array>
#include <cstdint>
#include <memory>
#include <span>
#include <string_view>
#include <vector>

#include "core/dtype.hpp"
#include "model/weight.hpp"

namespace uq {

class Float8Weight final : public Weight {
 public:
  // Quantizes `data` ([out, in] of float dtype `dtype`) to `format`
  // (F8_E4M3 or F8_E5M2) with scales computed and kept in `scale_dtype`.
  static std::unique_ptr<Float8Weight> quantize(const void* data, DType dtype, std::int64_t out,
                                                std::int64_t in, DType format, DType scale_dtype,
                                                std::string_view tensor);
  // From saved arrays: codes [out, in] of `format`, scales [out] as raw bytes
  // of `scale_dtype`. Sizes are checked; the arrays are copied.
  static std::unique_ptr<Float8Weight> from_codes(std::int64_t out, std::int64_t in, DType format,
                                                  std::span<const std::byte> codes,
                                                  DType scale_dtype,
                                                  std::span<const std::byte> scales,
                                                  std::string_view tensor);

  std::int64_t out_features() const override { return out_; }
  std::int64_t in_features() const override { return in_; }
  void matmul(const float* x, std::int64_t rows, float* y) const override;
  void dequantize_rows(std::int64_t first, std::int64_t count, float* out) const override;
  std::size_t storage_bytes() const override;
  std::string describe() const override;  // "float8 e4m3fn per-channel"

  DType format() const { return format_; }
  DType scale_dtype() const { return scale_dtype_; }
  std::span<const std::uint8_t> codes() const { return codes_; }
  // The scales as bytes of scale_dtype() ([out]), for saving.
  std::vector<std::byte> scale_bytes() const;

 private:
  Float8Weight(std::int64_t out, std::int64_t in, DType format, DType scale_dtype);

  std::int64_t out_;
  std::int64_t in_;
  DType format_;
  DType scale_dtype_;
  std::array<float, 256> decode_;  // code -> value of format_
  std::vector<std::uint8_t> codes_;
  std::vector<float> scales_;  // values exactly representable in scale_dtype_
};

}  // namespace uq

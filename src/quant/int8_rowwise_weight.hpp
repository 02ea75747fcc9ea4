#pragma once
// A weight stored the LLM.int8 way (bitsandbytes Linear8bitLt): int8 codes
// per output row with the fp32 row absmax SCB, W ≈ q * SCB / 127. matmul
// quantizes each input row to int8 at run time (absmax over the non-outlier
// columns), multiplies in int32, and computes the outlier columns (any
// |x| >= threshold in the batch) in float against the dequantized weight.
#include <cstdint>
#include <memory>
#include <string_view>
#include <vector>

#include "core/dtype.hpp"
#include "model/weight.hpp"

namespace uq {

class Int8RowwiseWeight final : public Weight {
 public:
  static constexpr float kDefaultThreshold = 6.0f;  // bitsandbytes llm_int8_threshold

  static std::unique_ptr<Int8RowwiseWeight> quantize(const void* data, DType dtype,
                                                     std::int64_t out, std::int64_t in,
                                                     float threshold, std::string_view tensor);
  // From saved arrays: codes [out*in], scb [out]; sizes checked.
  static std::unique_ptr<Int8RowwiseWeight> from_parts(std::int64_t out, std::int64_t in,
                                                       std::vector<std::int8_t> codes,
                                                       std::vector<float> scb, float threshold,
                                                       std::string_view tensor);

  std::int64_t out_features() const override { return out_; }
  std::int64_t in_features() const override { return in_; }
  void matmul(const float* x, std::int64_t rows, float* y) const override;
  void dequantize_rows(std::int64_t first, std::int64_t count, float* out) const override;
  std::size_t storage_bytes() const override { return codes_.size() + scb_.size() * sizeof(float); }
  std::string describe() const override { return "bnb int8 rowwise"; }

  const std::vector<std::int8_t>& codes() const { return codes_; }
  const std::vector<float>& scb() const { return scb_; }
  float threshold() const { return threshold_; }
  // Plain loops, the reference the AVX2 path is tested against.
  void matmul_reference(const float* x, std::int64_t rows, float* y) const;

 private:
  Int8RowwiseWeight() = default;
  void matmul_impl(const float* x, std::int64_t rows, float* y, bool avx2) const;

  std::int64_t out_ = 0;
  std::int64_t in_ = 0;
  float threshold_ = kDefaultThreshold;
  std::vector<std::int8_t> codes_;
  std::vector<float> scb_;
};

}  // namespace uq

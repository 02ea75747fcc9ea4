#pragma once
// A weight stored as bitsandbytes 4-bit (NF4 or FP4): packed nibbles over the
// flattened row-major matrix, one absmax per block, optionally double
// quantized. matmul runs on the packed codes (kernels/cpu/bnb4_kernels.hpp).
#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/dtype.hpp"
#include "kernels/cpu/bnb4_kernels.hpp"
#include "model/weight.hpp"
#include "quant/bnb.hpp"

namespace uq {

// The double-quantized form of the absmax vector, as saved.
struct Bnb4NestedState {
  std::vector<std::uint8_t> codes;  // weight.absmax (uint8)
  std::vector<float> absmax;        // weight.nested_absmax
  std::vector<float> code;          // weight.nested_quant_map (256)
  float offset = 0.0f;
  int blocksize = 256;
};

class Bnb4Weight final : public Weight {
 public:
  // Quantizes `data` ([out, in] of float dtype `dtype`). Throws uq::Error
  // naming `tensor` for NaN/Inf or a bad block size.
  static std::unique_ptr<Bnb4Weight> quantize(const void* data, DType dtype, std::int64_t out,
                                              std::int64_t in, bnb::FourBitType type, int blocksize,
                                              bool double_quant, std::string_view tensor);
  // From saved arrays: packed [(out*in+1)/2], code (quant_map, 16 floats),
  // either absmax (fp32) or nested. Sizes are checked against the shape.
  static std::unique_ptr<Bnb4Weight> from_parts(std::int64_t out, std::int64_t in,
                                                bnb::FourBitType type, int blocksize, DType dtype,
                                                std::vector<std::uint8_t> packed,
                                                std::vector<float> code, std::vector<float> absmax,
                                                std::optional<Bnb4NestedState> nested,
                                                std::string_view tensor);

  std::int64_t out_features() const override { return out_; }
  std::int64_t in_features() const override { return in_; }
  void matmul(const float* x, std::int64_t rows, float* y) const override;
  void dequantize_rows(std::int64_t first, std::int64_t count, float* out) const override;
  std::size_t storage_bytes() const override;
  std::string describe() const override;  // "bnb nf4 block64 (double quant)"

  // Double quantization of fp32 block absmax values (quantize() with double_quant).
  static Bnb4NestedState double_quantize(std::span<const float> absmax);
  // describe() and storage_bytes() of a weight of these parts, for one
  // streamed out chunk by chunk and never held whole.
  static std::string describe(bnb::FourBitType type, int blocksize, bool double_quant);
  static std::size_t storage_bytes(std::size_t packed_bytes, std::size_t blocks,
                                   const std::optional<Bnb4NestedState>& nested);

  bnb::FourBitType type() const { return type_; }
  int blocksize() const { return blocksize_; }
  DType dtype() const { return dtype_; }  // the dtype it was quantized from
  const std::vector<std::uint8_t>& packed() const { return packed_; }
  const std::vector<float>& code() const { return code_; }
  // Effective fp32 absmax per block (dequantized when nested).
  const std::vector<float>& absmax() const { return absmax_; }
  const std::optional<Bnb4NestedState>& nested() const { return nested_; }
  cpu::Bnb4Matrix matrix() const;

 private:
  Bnb4Weight() = default;

  std::int64_t out_ = 0;
  std::int64_t in_ = 0;
  bnb::FourBitType type_ = bnb::FourBitType::NF4;
  int blocksize_ = 64;
  DType dtype_ = DType::BF16;
  std::vector<std::uint8_t> packed_;
  std::vector<float> code_;
  std::vector<float> absmax_;
  std::optional<Bnb4NestedState> nested_;
};

}  // namespace uq

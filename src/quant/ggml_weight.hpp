#pragma once
// A weight stored in one of ggml's block formats (a GGUF tensor), row-major
// [out, in] with each row packed independently. Few input rows: a GEMV with
// int8 activations and integer dot products per block, as llama.cpp computes
// (kernels/cpu/ggml_gemv_int8.hpp; the exact float GEMV under UQ_EXACT_GEMV
// and for the float types); many rows: tiles of W unpacked to float32 and
// multiplied with sgemm.
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "model/weight.hpp"
#include "quant/ggml_blocks.hpp"

namespace uq {

class GgmlWeight final : public Weight {
 public:
  // Copies out_features rows of ggml_row_bytes(type, in_features) bytes.
  GgmlWeight(GgmlType type, std::int64_t out_features, std::int64_t in_features,
             std::span<const std::byte> bytes);
  // Quantizes a float32 [out, in] matrix.
  static GgmlWeight quantize(GgmlType type, std::int64_t out_features, std::int64_t in_features,
                             const float* values);

  std::int64_t out_features() const override { return out_features_; }
  std::int64_t in_features() const override { return in_features_; }
  void matmul(const float* x, std::int64_t rows, float* y) const override;
  void dequantize_rows(std::int64_t first, std::int64_t count, float* out) const override;
  std::size_t storage_bytes() const override { return data_.size(); }
  std::string describe() const override;

  GgmlType type() const { return type_; }
  std::span<const std::byte> bytes() const { return data_; }

 private:
  void matmul_gemv(const float* x, std::int64_t rows, float* y) const;
  void matmul_gemm(const float* x, std::int64_t rows, float* y) const;
  const std::byte* row(std::int64_t index) const {
    return data_.data() + static_cast<std::size_t>(index) * row_bytes_;
  }

  GgmlType type_;
  std::int64_t out_features_;
  std::int64_t in_features_;
  std::size_t row_bytes_;
  std::vector<std::byte> data_;
};

}  // namespace uq

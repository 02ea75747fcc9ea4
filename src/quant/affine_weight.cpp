#include "quant/affine_weight.hpp"

#include <algorithm>

#include "core/error.hpp"
#include "kernels/cpu/affine_kernels.hpp"
#include "quant/affine.hpp"

namespace uq {
namespace {

// The SIMD unpackers load up to 8 bytes at the start of a row's last chunk.
constexpr std::size_t kCodePaddingWords = 2;

}  // namespace

AffineWeight::AffineWeight(std::int64_t out, std::int64_t in, int bits, int group_size,
                           DType param_dtype)
    : out_(out), in_(in), bits_(bits), group_size_(group_size), param_dtype_(param_dtype) {
  const auto words = static_cast<std::size_t>(out * affine_words_per_row(in, bits));
  const auto param_bytes =
      static_cast<std::size_t>(out * (in / group_size)) * dtype_size(param_dtype);
  codes_.assign(words + kCodePaddingWords, 0u);
  scales_.resize(param_bytes);
  biases_.resize(param_bytes);
}

std::unique_ptr<AffineWeight> AffineWeight::quantize(const void* data, DType dtype,
                                                     std::int64_t out, std::int64_t in, int bits,
                                                     int group_size, std::string_view tensor) {
  validate_affine_shape(bits, group_size, in, tensor);
  if (out <= 0) fail("tensor '", tensor, "': no rows to quantize");
  std::unique_ptr<AffineWeight> weight(
      new AffineWeight(out, in, bits, group_size, affine_param_dtype_for(dtype)));
  affine_quantize(data, dtype, out, in, bits, group_size, weight->param_dtype_, tensor,
                  weight->codes_.data(), weight->scales_.data(), weight->biases_.data());
  return weight;
}

std::unique_ptr<AffineWeight> AffineWeight::from_packed(
    std::int64_t out, std::int64_t in, int bits, int group_size,
    std::span<const std::uint32_t> codes, DType param_dtype, std::span<const std::byte> scales,
    std::span<const std::byte> biases, std::string_view tensor) {
  validate_affine_shape(bits, group_size, in, tensor);
  if (out <= 0) fail("tensor '", tensor, "': no rows");
  if (param_dtype != DType::F32 && param_dtype != DType::F16 && param_dtype != DType::BF16) {
    fail("tensor '", tensor, "': scales must be F32, F16 or BF16, not ", dtype_name(param_dtype));
  }
  std::unique_ptr<AffineWeight> weight(new AffineWeight(out, in, bits, group_size, param_dtype));
  const auto words = weight->codes_.size() - kCodePaddingWords;
  if (codes.size() != words) {
    fail("tensor '", tensor, "': expected ", words, " packed uint32 words for [", out, ", ", in,
         "] at ", bits, " bits, got ", codes.size());
  }
  if (scales.size() != weight->scales_.size() || biases.size() != weight->biases_.size()) {
    fail("tensor '", tensor, "': expected ", weight->scales_.size(),
         " bytes of scales and biases for group size ", group_size, ", got ", scales.size(),
         " and ", biases.size());
  }
  std::copy(codes.begin(), codes.end(), weight->codes_.begin());
  std::copy(scales.begin(), scales.end(), weight->scales_.begin());
  std::copy(biases.begin(), biases.end(), weight->biases_.begin());
  return weight;
}

std::span<const std::uint32_t> AffineWeight::codes() const {
  return {codes_.data(), codes_.size() - kCodePaddingWords};
}

cpu::AffineMatrix AffineWeight::matrix() const {
  return {codes_.data(), scales_.data(), biases_.data(), param_dtype_, out_,
          in_,           bits_,          group_size_};
}

void AffineWeight::matmul(const float* x, std::int64_t rows, float* y) const {
  cpu::affine_matmul(matrix(), x, rows, y);
}

void AffineWeight::dequantize_rows(std::int64_t first, std::int64_t count, float* out) const {
  if (first < 0 || count < 0 || first + count > out_) {
    fail("dequantize_rows: rows [", first, ", ", first + count, ") outside [0, ", out_, ")");
  }
  cpu::affine_dequantize_rows(matrix(), first, count, out, cpu::best_kernel_isa());
}

std::size_t AffineWeight::storage_bytes() const {
  return codes().size_bytes() + scales_.size() + biases_.size();
}

std::string AffineWeight::describe() const {
  return "affine b" + std::to_string(bits_) + " g" + std::to_string(group_size_);
}

}  // namespace uq

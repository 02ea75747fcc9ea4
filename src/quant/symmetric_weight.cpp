#include "quant/symmetric_weight.hpp"

#include "core/error.hpp"
#include "kernels/cpu/symmetric_kernels.hpp"
#include "quant/channel_scales.hpp"
#include "quant/symmetric.hpp"

namespace uq {

SymmetricWeight::SymmetricWeight(std::int64_t out, std::int64_t in, int bits, DType scale_dtype)
    : out_(out), in_(in), bits_(bits), scale_dtype_(scale_dtype) {}

std::unique_ptr<SymmetricWeight> SymmetricWeight::quantize(const void* data, DType dtype,
                                                           std::int64_t out, std::int64_t in,
                                                           int bits, DType scale_dtype,
                                                           std::string_view tensor) {
  check_scale_dtype(scale_dtype, tensor);
  auto quantized = symmetric_quantize(data, dtype, out, in, bits, scale_dtype, tensor);
  std::unique_ptr<SymmetricWeight> weight(new SymmetricWeight(out, in, bits, scale_dtype));
  weight->codes_ = std::move(quantized.codes);
  weight->scales_ = std::move(quantized.scales);
  return weight;
}

std::unique_ptr<SymmetricWeight> SymmetricWeight::from_codes(
    std::int64_t out, std::int64_t in, int bits, std::span<const std::byte> codes,
    DType scale_dtype, std::span<const std::byte> scales, std::string_view tensor) {
  if (bits != 8 && bits != 4) fail("tensor '", tensor, "': symmetric bits must be 8 or 4");
  if (out <= 0 || in <= 0) fail("tensor '", tensor, "': empty shape [", out, ", ", in, "]");
  check_scale_dtype(scale_dtype, tensor);
  std::unique_ptr<SymmetricWeight> weight(new SymmetricWeight(out, in, bits, scale_dtype));
  const auto row_bytes = weight->matrix().bytes_per_row();
  if (codes.size() != static_cast<std::size_t>(out * row_bytes)) {
    fail("tensor '", tensor, "': expected ", out * row_bytes, " bytes of codes for [", out, ", ",
         in, "] at ", bits, " bits, got ", codes.size());
  }
  weight->scales_ = read_channel_scales(scales, scale_dtype, out, tensor);
  const auto* first = reinterpret_cast<const std::uint8_t*>(codes.data());
  weight->codes_.assign(first, first + codes.size());
  return weight;
}

cpu::SymmetricMatrix SymmetricWeight::matrix() const {
  return {codes_.data(), scales_.data(), out_, in_, bits_};
}

void SymmetricWeight::matmul(const float* x, std::int64_t rows, float* y) const {
  cpu::symmetric_matmul(matrix(), x, rows, y);
}

void SymmetricWeight::dequantize_rows(std::int64_t first, std::int64_t count, float* out) const {
  if (first < 0 || count < 0 || first + count > out_) {
    fail("dequantize_rows: rows [", first, ", ", first + count, ") outside [0, ", out_, ")");
  }
  cpu::symmetric_dequantize_rows(matrix(), first, count, out, cpu::best_kernel_isa());
}

std::size_t SymmetricWeight::storage_bytes() const {
  return codes_.size() + scales_.size() * dtype_size(scale_dtype_);
}

std::string SymmetricWeight::describe() const {
  return "symmetric int" + std::to_string(bits_) + " per-channel";
}

std::vector<std::byte> SymmetricWeight::scale_bytes() const {
  return channel_scale_bytes(scales_, scale_dtype_);
}

}  // namespace uq

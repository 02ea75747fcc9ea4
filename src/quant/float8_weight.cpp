#include "quant/float8_weight.hpp"

#include <cmath>

#include "core/error.hpp"
#include "core/thread_pool.hpp"
#include "kernels/cpu/float8_kernels.hpp"
#include "kernels/cpu/tiled_gemm.hpp"
#include "quant/channel_scales.hpp"
#include "quant/float8.hpp"

namespace uq {
namespace {

// Rows of x from which matmul decodes tiles for sgemm instead of the GEMV.
constexpr std::int64_t kGemmMinRows = 8;

}  // namespace

Float8Weight::Float8Weight(std::int64_t out, std::int64_t in, DType format, DType scale_dtype)
    : out_(out), in_(in), format_(format), scale_dtype_(scale_dtype) {
  for (int code = 0; code < 256; ++code) {
    const auto byte = static_cast<std::uint8_t>(code);
    decode_[static_cast<std::size_t>(code)] =
        format == DType::F8_E4M3 ? fp8_e4m3_to_f32(byte) : fp8_e5m2_to_f32(byte);
  }
}

std::unique_ptr<Float8Weight> Float8Weight::quantize(const void* data, DType dtype,
                                                     std::int64_t out, std::int64_t in,
                                                     DType format, DType scale_dtype,
                                                     std::string_view tensor) {
  check_scale_dtype(scale_dtype, tensor);
  auto quantized = float8_quantize(data, dtype, out, in, format, scale_dtype, tensor);
  std::unique_ptr<Float8Weight> weight(new Float8Weight(out, in, format, scale_dtype));
  weight->codes_ = std::move(quantized.codes);
  weight->scales_ = std::move(quantized.scales);
  return weight;
}

std::unique_ptr<Float8Weight> Float8Weight::from_codes(
    std::int64_t out, std::int64_t in, DType format, std::span<const std::byte> codes,
    DType scale_dtype, std::span<const std::byte> scales, std::string_view tensor) {
  if (!is_float8(format)) {
    fail("tensor '", tensor, "': float8 codes must be F8_E4M3 or F8_E5M2, not ",
         dtype_name(format));
  }
  if (out <= 0 || in <= 0) fail("tensor '", tensor, "': empty shape [", out, ", ", in, "]");
  check_scale_dtype(scale_dtype, tensor);
  if (codes.size() != static_cast<std::size_t>(out * in)) {
    fail("tensor '", tensor, "': expected ", out * in, " float8 codes for [", out, ", ", in,
         "], got ", codes.size());
  }
  std::unique_ptr<Float8Weight> weight(new Float8Weight(out, in, format, scale_dtype));
  weight->scales_ = read_channel_scales(scales, scale_dtype, out, tensor);
  const auto* first = reinterpret_cast<const std::uint8_t*>(codes.data());
  weight->codes_.assign(first, first + codes.size());
  for (const std::uint8_t code : weight->codes_) {
    if (!std::isfinite(weight->decode_[code])) fail("tensor '", tensor, "': NaN/Inf float8 code");
  }
  return weight;
}

void Float8Weight::matmul(const float* x, std::int64_t rows, float* y) const {
  if (rows >= kGemmMinRows) {
    cpu::tiled_gemm(out_, in_, x, rows, y,
                    [this](std::int64_t first, std::int64_t count, float* scratch) {
                      dequantize_rows(first, count, scratch);
                      return static_cast<const float*>(scratch);
                    });
    return;
  }
  const cpu::Float8Matrix matrix{codes_.data(), scales_.data(), decode_.data(), out_, in_, format_};
  const cpu::KernelIsa isa = cpu::best_kernel_isa();
  parallel_for(0, out_, items_per_task(rows * in_), [&](std::int64_t lo, std::int64_t hi) {
    cpu::float8_gemv_rows(matrix, x, rows, lo, hi, y, isa);
  });
}

void Float8Weight::dequantize_rows(std::int64_t first, std::int64_t count, float* out) const {
  if (first < 0 || count < 0 || first + count > out_) {
    fail("dequantize_rows: rows [", first, ", ", first + count, ") outside [0, ", out_, ")");
  }
  for (std::int64_t r = 0; r < count; ++r) {
    const std::uint8_t* codes = codes_.data() + (first + r) * in_;
    const float scale = scales_[static_cast<std::size_t>(first + r)];
    for (std::int64_t i = 0; i < in_; ++i) out[r * in_ + i] = decode_[codes[i]] * scale;
  }
}

std::size_t Float8Weight::storage_bytes() const {
  return codes_.size() + scales_.size() * dtype_size(scale_dtype_);
}

std::string Float8Weight::describe() const {
  return format_ == DType::F8_E4M3 ? "float8 e4m3fn per-channel" : "float8 e5m2 per-channel";
}

std::vector<std::byte> Float8Weight::scale_bytes() const {
  return channel_scale_bytes(scales_, scale_dtype_);
}

}  // namespace uq

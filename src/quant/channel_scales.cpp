#include "quant/channel_scales.hpp"

#include <algorithm>
#include <cmath>

#include "core/error.hpp"

namespace uq {

float load_row_absmax(const void* data, DType dtype, std::int64_t row, std::int64_t in, float* out,
                      std::string_view tensor) {
  const auto* bytes = static_cast<const std::byte*>(data);
  convert_to_f32(dtype, bytes + row * in * static_cast<std::int64_t>(dtype_size(dtype)),
                 static_cast<std::size_t>(in), out);
  float absmax = 0.0f;
  for (std::int64_t i = 0; i < in; ++i) {
    if (!std::isfinite(out[i])) {
      fail("tensor '", tensor, "': non-finite value at [", row, ", ", i, "]");
    }
    absmax = std::max(absmax, std::fabs(out[i]));
  }
  return absmax;
}

void check_scale_dtype(DType dtype, std::string_view tensor) {
  if (dtype != DType::F32 && dtype != DType::F16 && dtype != DType::BF16) {
    fail("tensor '", tensor, "': scales must be F32, F16 or BF16, not ", dtype_name(dtype));
  }
}

std::vector<float> read_channel_scales(std::span<const std::byte> bytes, DType dtype,
                                       std::int64_t out, std::string_view tensor) {
  if (bytes.size() != static_cast<std::size_t>(out) * dtype_size(dtype)) {
    fail("tensor '", tensor, "': expected ", out, " scales, got ",
         bytes.size() / dtype_size(dtype));
  }
  std::vector<float> scales(static_cast<std::size_t>(out));
  convert_to_f32(dtype, bytes.data(), scales.size(), scales.data());
  for (const float scale : scales) {
    if (!std::isfinite(scale)) fail("tensor '", tensor, "': non-finite scale");
  }
  return scales;
}

std::vector<std::byte> channel_scale_bytes(const std::vector<float>& scales, DType dtype) {
  std::vector<std::byte> bytes(scales.size() * dtype_size(dtype));
  convert_from_f32(scales.data(), scales.size(), dtype, bytes.data());
  return bytes;
}

}  // namespace uq

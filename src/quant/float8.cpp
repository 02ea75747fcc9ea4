#include "quant/float8.hpp"

#include <algorithm>
#include <cmath>

#include "core/error.hpp"
#include "quant/channel_scales.hpp"

namespace uq {

bool is_float8(DType dtype) {
  return dtype == DType::F8_E4M3 || dtype == DType::F8_E5M2;
}

float float8_max(DType format) {
  if (format == DType::F8_E4M3) return 448.0f;
  if (format == DType::F8_E5M2) return 57344.0f;
  fail("float8_max: ", dtype_name(format), " is not a float8 dtype");
}

Float8Codes float8_quantize(const void* data, DType dtype, std::int64_t out, std::int64_t in,
                            DType format, DType arithmetic, std::string_view tensor) {
  if (!is_float8(format)) {
    fail("tensor '", tensor, "': float8 codes must be F8_E4M3 or F8_E5M2, not ",
         dtype_name(format));
  }
  if (out <= 0 || in <= 0) fail("tensor '", tensor, "': empty shape [", out, ", ", in, "]");
  const float fmax = float8_max(format);
  Float8Codes result;
  result.codes.assign(static_cast<std::size_t>(out * in), 0);
  result.scales.resize(static_cast<std::size_t>(out));
  std::vector<float> row(static_cast<std::size_t>(in));
  for (std::int64_t o = 0; o < out; ++o) {
    const float absmax = load_row_absmax(data, dtype, o, in, row.data(), tensor);
    const float scale = round_to_dtype(absmax / fmax, arithmetic);
    result.scales[o] = scale;
    if (scale == 0.0f) continue;
    for (std::int64_t i = 0; i < in; ++i) {
      const float value = std::clamp(round_to_dtype(row[i] / scale, arithmetic), -fmax, fmax);
      result.codes[static_cast<std::size_t>(o * in + i)] =
          format == DType::F8_E4M3 ? f32_to_fp8_e4m3(value) : f32_to_fp8_e5m2(value);
    }
  }
  return result;
}

}  // namespace uq

#include "quant/row_absmax.hpp"

#include <algorithm>
#include <cmath>
#include <cstddef>

#include "core/error.hpp"

namespace uq {

float load_row_absmax(const void* data, DType dtype, std::int64_t row, std::int64_t in, float* out,
                      std::string_view tensor) {
  const auto* bytes = static_cast<const std::byte*>(data);
  convert_to_f32(dtype, bytes + row * in * static_cast<std::int64_t>(dtype_size(dtype)),
                 static_cast<std::size_t>(in), out);
  float absmax = 0.0f;
  for (std::int64_t i = 0; i < in; ++i) {
    if (!std::isfinite(out[i]))
      fail("tensor '", tensor, "': non-finite value at [", row, ", ", i, "]");
    absmax = std::max(absmax, std::fabs(out[i]));
  }
  return absmax;
}

}  // namespace uq

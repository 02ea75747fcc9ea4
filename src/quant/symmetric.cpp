#include "quant/symmetric.hpp"

#include <algorithm>
#include <cmath>

#include "core/error.hpp"
#include "quant/channel_scales.hpp"

namespace uq {

SymmetricCodes symmetric_quantize(const void* data, DType dtype, std::int64_t out, std::int64_t in,
                                  int bits, DType arithmetic, std::string_view tensor) {
  if (bits != 8 && bits != 4) {
    fail("tensor '", tensor, "': symmetric quantization supports 8 or 4 bits, not ", bits);
  }
  if (out <= 0 || in <= 0) fail("tensor '", tensor, "': empty shape [", out, ", ", in, "]");
  const float qmax = bits == 8 ? 127.0f : 7.0f;
  const std::int64_t row_bytes = bits == 8 ? in : (in + 1) / 2;
  SymmetricCodes result;
  result.codes.assign(static_cast<std::size_t>(out * row_bytes), 0);
  result.scales.resize(static_cast<std::size_t>(out));
  std::vector<float> row(static_cast<std::size_t>(in));
  for (std::int64_t o = 0; o < out; ++o) {
    const float absmax = load_row_absmax(data, dtype, o, in, row.data(), tensor);
    const float scale = round_to_dtype(absmax / qmax, arithmetic);
    result.scales[o] = scale;
    std::uint8_t* dst = result.codes.data() + o * row_bytes;
    for (std::int64_t i = 0; i < in; ++i) {
      float q = 0.0f;
      if (scale != 0.0f) {
        q = std::clamp(std::nearbyint(round_to_dtype(row[i] / scale, arithmetic)), -qmax - 1, qmax);
      }
      const int code = static_cast<int>(q);
      if (bits == 8) {
        dst[i] = static_cast<std::uint8_t>(static_cast<std::int8_t>(code));
      } else {
        dst[i / 2] |= static_cast<std::uint8_t>((code + 8) << (4 * (i % 2)));
      }
    }
  }
  return result;
}

}  // namespace uq

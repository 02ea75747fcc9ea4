#pragma once
// optimum-quanto's qfloat8 weights (AbsmaxOptimizer + quantize_symmetric with
// a float8 dtype), per output channel:
//   scale[o] = absmax(W[o, :]) / fmax        fmax = 448 (e4m3fn) or 57344 (e5m2)
//   code     = fp8(clamp(W / scale, -fmax, fmax))   (round to nearest even)
// Every operation is rounded to `arithmetic` (the weight dtype torch computes
// in), so a bf16 weight gives quanto's scales and codes byte for byte. A row
// of zeros gets scale 0 and codes 0 (quanto would divide by zero).
#include <cstdint>
#include <string_view>
#include <vector>

#include "core/dtype.hpp"

namespace uq {

struct Float8Codes {
  std::vector<std::uint8_t> codes;  // [out, in] fp8 bytes of `format`
  std::vector<float> scales;        // [out], values of `arithmetic`
};

// True for F8_E4M3 and F8_E5M2.
bool is_float8(DType dtype);
// The largest finite value of the float8 `format`: 448 or 57344.
float float8_max(DType format);

// `data` is [out, in] of float dtype `dtype`; `format` F8_E4M3 or F8_E5M2.
// Throws uq::Error naming `tensor` for an empty shape or NaN/Inf values.
Float8Codes float8_quantize(const void* data, DType dtype, std::int64_t out, std::int64_t in,
                            DType format, DType arithmetic, std::string_view tensor);

}  // namespace uq

#pragma once
// Symmetric (zero-point free) per-output-channel quantization, as optimum-quanto
// quantizes qint8 weights (AbsmaxOptimizer + quantize_symmetric):
//   scale[o] = absmax(W[o, :]) / qmax            qmax = 127 (8 bits) or 7 (4 bits)
//   q = clamp(round_half_even(W / scale), -qmax - 1, qmax)
// Every operation is rounded to `arithmetic` (F32, F16 or BF16), the dtype
// torch computes in for a weight of that dtype, so a bf16 weight gives the
// same scales and codes as quanto. A row of zeros gets scale 0 and codes 0.
// The codes are packed as described in kernels/cpu/symmetric_matrix.hpp.
#include <cstdint>
#include <string_view>
#include <vector>

#include "core/dtype.hpp"

namespace uq {

struct SymmetricCodes {
  std::vector<std::uint8_t> codes;  // [out, bytes per row], see SymmetricMatrix
  std::vector<float> scales;        // [out], values of `arithmetic`
};

// `data` is [out, in] of float dtype `dtype`; bits 8 or 4. Throws uq::Error
// naming `tensor` for other bits, an empty shape or NaN/Inf values.
SymmetricCodes symmetric_quantize(const void* data, DType dtype, std::int64_t out, std::int64_t in,
                                  int bits, DType arithmetic, std::string_view tensor);

}  // namespace uq

#pragma once
// A read-only view of a symmetric (zero-point free) per-output-channel
// quantized [out, in] matrix, the input of the symmetric CPU kernels:
// W[o, i] = scales[o] * q[o, i].
//
// Codes, row-major, each row starting on a byte:
//   8 bits: one int8 (two's complement) per element, q in [-128, 127];
//   4 bits: two elements per byte, element 2k in the low nibble and 2k+1 in
//           the high nibble, stored as q + 8 (q in [-8, 7]); an odd row
//           length leaves the last high nibble 0.
#include <cstdint>

#include "kernels/cpu/affine_matrix.hpp"

namespace uq::cpu {

struct SymmetricMatrix {
  const std::uint8_t* codes = nullptr;  // [out, bytes_per_row()]
  const float* scales = nullptr;        // [out]
  std::int64_t out = 0;
  std::int64_t in = 0;
  int bits = 8;  // 8 or 4

  std::int64_t bytes_per_row() const { return bits == 8 ? in : (in + 1) / 2; }
  // The signed code of element i of row `row`.
  int code(const std::uint8_t* row, std::int64_t i) const {
    if (bits == 8) return static_cast<std::int8_t>(row[i]);
    const std::uint8_t byte = row[i / 2];
    return ((i % 2 == 0) ? (byte & 0x0F) : (byte >> 4)) - 8;
  }
};

}  // namespace uq::cpu

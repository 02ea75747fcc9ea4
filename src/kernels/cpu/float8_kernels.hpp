#pragma once
// GEMV over float8 codes (e4m3fn or e5m2) with one scale per output row:
// y[r, o] = scale[o] * Σ_i value(code[o, i]) * x[r, i]. The AVX2 version
// decodes 8 codes at a time with integer shifts (e4m3fn: the code's bits
// placed in a float32 and rescaled by 2^120; e5m2: the code is the top byte
// of a float16, converted by F16C); the scalar one reads a 256-entry table.
#include <cstdint>

#include "core/dtype.hpp"
#include "kernels/cpu/affine_matrix.hpp"

namespace uq::cpu {

struct Float8Matrix {
  const std::uint8_t* codes;  // [out, in]
  const float* scales;        // [out]
  const float* decode;        // [256]: code -> value of `format`
  std::int64_t out;
  std::int64_t in;
  DType format;  // F8_E4M3 or F8_E5M2
};

// Output rows [out_first, out_last) of y [rows, out], for x [rows, in].
void float8_gemv_rows(const Float8Matrix& w, const float* x, std::int64_t rows,
                      std::int64_t out_first, std::int64_t out_last, float* y, KernelIsa isa);

}  // namespace uq::cpu

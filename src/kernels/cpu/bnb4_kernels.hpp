#pragma once
// CPU products with a bitsandbytes 4-bit weight W [out, in]: y = x · Wᵀ for
// x [rows, in], y [rows, out] (row-major float32). W[o, i] =
// code[nibble(o*in + i)] * absmax[(o*in + i) / blocksize]. A scalar
// reference and AVX2 kernels (16-entry table lookup with two
// _mm256_permutevar8x32_ps), multi-threaded over output rows.
#include <cstdint>

#include "kernels/cpu/affine_matrix.hpp"

namespace uq::cpu {

struct Bnb4Matrix {
  const std::uint8_t* packed = nullptr;  // (out*in + 1) / 2 bytes, high nibble first
  const float* code = nullptr;           // 16 floats
  const float* absmax = nullptr;         // one per block
  std::int64_t out = 0;
  std::int64_t in = 0;
  int blocksize = 64;
};

// Rows of x from which bnb4_matmul dequantizes tiles and calls sgemm.
inline constexpr std::int64_t kBnb4GemmMinRows = 8;

void bnb4_gemv(const Bnb4Matrix& w, const float* x, std::int64_t rows, float* y, KernelIsa isa);
void bnb4_gemm(const Bnb4Matrix& w, const float* x, std::int64_t rows, float* y, KernelIsa isa);
void bnb4_matmul(const Bnb4Matrix& w, const float* x, std::int64_t rows, float* y);
void bnb4_dequantize_rows(const Bnb4Matrix& w, std::int64_t first, std::int64_t count, float* out,
                          KernelIsa isa);

}  // namespace uq::cpu

#pragma once
// A read-only view of an affine-quantized [out, in] matrix, the input of the
// CPU kernels (see quant/affine.hpp for the scheme and the bit layout).
#include <cstdint>

#include "core/dtype.hpp"

namespace uq::cpu {

struct AffineMatrix {
  // [out, words_per_row] packed codes. The buffer must stay readable for 8
  // bytes past the last row: the SIMD unpackers load whole 64-bit chunks.
  const std::uint32_t* codes = nullptr;
  const void* scales = nullptr;  // [out, in / group_size] of param_dtype
  const void* biases = nullptr;
  DType param_dtype = DType::F32;
  std::int64_t out = 0;
  std::int64_t in = 0;
  int bits = 4;
  int group_size = 64;

  std::int64_t words_per_row() const { return in / 32 * bits; }
  std::int64_t groups_per_row() const { return in / group_size; }
};

// Which implementation of a kernel runs.
enum class KernelIsa { Scalar, Avx2 };

// The fastest implementation this CPU supports (AVX2+FMA when present).
KernelIsa best_kernel_isa();

}  // namespace uq::cpu

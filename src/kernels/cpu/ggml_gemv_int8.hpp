#pragma once
// Decode-time GEMV of ggml block formats with int8 activations, the arithmetic
// of llama.cpp's CPU backend: each input row is quantized once per call to
// blocks of 32 by the Q8_0 rule (int8_activations.hpp, natural order), and each
// weight block meets its activation block in an integer dot product
// Σ code·xq; the float work is one multiply-add per block of 32 (per block of
// 16 for Q6_K's sub-scales, per block of 32 for Q4_K's). It differs from the
// exact float dot product only by the rounding of x to d·xq:
// |Δy| ≤ Σ_i |w_i|·d_b(i)/2, plus float summation error.
#include <cstddef>
#include <cstdint>

#include "kernels/cpu/affine_gemv_int8.hpp"
#include "quant/ggml_blocks.hpp"

namespace uq::cpu {

// One quantized activation row: q [count], d and dq_sum [count / 32].
struct Int8Row {
  const std::int8_t* q;
  const float* d;
  const float* dq_sum;  // d·Σq per block (the offset and min terms need it)
};

// Σ_i dequantized(blocks)[i]·(d·q)_i over `count` elements (a multiple of the
// type's block size).
using GgmlInt8Dot = float (*)(const std::byte* blocks, const Int8Row& x, std::int64_t count);

// Whether the int8 GEMV handles `type`: Q4_0, Q4_1, Q5_0, Q8_0, Q4_K, Q6_K.
bool ggml_int8_gemv_supports(GgmlType type);

// The plain C++ kernel of a supported type: the test oracle of the SIMD
// kernels and the fallback on CPUs without AVX2.
GgmlInt8Dot ggml_int8_dot_scalar(GgmlType type);
// The AVX2 (vpmaddubsw) or AVX-512 VNNI (vpdpbusd) kernel of a supported type.
GgmlInt8Dot ggml_int8_dot_simd(GgmlType type, DotIsa isa);

// y [rows, out] = x [rows, in] · Wᵀ for W packed as `out` rows of `row_bytes`,
// multi-threaded over output rows.
void ggml_gemv_int8(GgmlInt8Dot dot, const std::byte* w, std::size_t row_bytes, std::int64_t out,
                    std::int64_t in, const float* x, std::int64_t rows, float* y);

namespace detail {
GgmlInt8Dot ggml_int8_dot_avx2(GgmlType type);
GgmlInt8Dot ggml_int8_dot_vnni(GgmlType type);
}  // namespace detail

}  // namespace uq::cpu

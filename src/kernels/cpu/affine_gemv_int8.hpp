#pragma once
// Decode-time GEMV with int8 activations: x is quantized once per call per
// block of 32 (int8_activations.hpp), Σq·xq is an integer dot product of the
// weight codes with xq, and y = Σ_g s·Σ_b d_b·(Σq·xq)_b + b·Σ_g x, where Σx
// stays the float sum. It differs from the exact float GEMV (affine_gemv) only
// by the rounding of x to d·xq: |Δy| ≤ Σ_i |s|·q_i·d_b(i)/2.
#include <cstdint>

#include "kernels/cpu/affine_matrix.hpp"
#include "kernels/cpu/int8_activations.hpp"

namespace uq::cpu {

// Which integer dot product runs: AVX2 (vpmaddubsw + vpmaddwd) or AVX-512
// VNNI (vpdpbusd on 256-bit vectors).
enum class DotIsa { Avx2, Avx512Vnni };

// The fastest dot product this CPU supports (needs at least AVX2).
DotIsa best_dot_isa();

// Whether the int8 GEMV handles w: 2-, 4- and 8-bit codes, group size a
// multiple of 32, on a CPU with AVX2. Other weights use the float GEMV.
bool int8_gemv_supports(const AffineMatrix& w);

// y [rows, out] = x [rows, in] · Wᵀ through int8 activations.
void affine_gemv_int8(const AffineMatrix& w, const float* x, std::int64_t rows, float* y,
                      DotIsa isa);

// When true, affine_matmul uses the exact float GEMV for every decode product.
// Starts true when the environment variable UQ_EXACT_GEMV is "1".
bool exact_gemv();
void set_exact_gemv(bool exact);

namespace detail {
// Output rows [out_first, out_last) for all rows of `a`; xsum is [rows,
// groups_per_row]: the float Σx per group.
void gemv_int8_rows_avx2(const AffineMatrix& w, const Int8Activations& a, const float* xsum,
                         std::int64_t out_first, std::int64_t out_last, float* y);
void gemv_int8_rows_vnni(const AffineMatrix& w, const Int8Activations& a, const float* xsum,
                         std::int64_t out_first, std::int64_t out_last, float* y);
}  // namespace detail

}  // namespace uq::cpu

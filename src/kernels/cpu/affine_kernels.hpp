#pragma once
// CPU products with an affine-quantized weight W [out, in]: y = x · Wᵀ for x
// [rows, in] and y [rows, out] (row-major float32), and row dequantization.
// Every kernel has a scalar reference and an AVX2+FMA implementation; all are
// multi-threaded over output rows with parallel_for.
#include <cstdint>
#include <vector>

#include "kernels/cpu/affine_matrix.hpp"

namespace uq::cpu {

// Rows of x from which affine_matmul switches from GEMV to GEMM.
inline constexpr std::int64_t kAffineGemmMinRows = 8;

// Matrix-vector style: unpacks codes in registers, accumulates s·Σq·x + b·Σx
// per group. Any `rows`, meant for few (decode).
void affine_gemv(const AffineMatrix& w, const float* x, std::int64_t rows, float* y, KernelIsa isa);

// Matrix-matrix: dequantizes tiles of W into an fp32 scratch and multiplies
// them with OpenBLAS sgemm (prompt processing). With KernelIsa::Scalar the
// tiles are dequantized by the scalar reference.
void affine_gemm(const AffineMatrix& w, const float* x, std::int64_t rows, float* y, KernelIsa isa);

// Chooses by `rows`: GEMM from kAffineGemmMinRows, else the int8-activation
// GEMV (affine_gemv_int8.hpp) where it supports w and exact_gemv() is off,
// else the float GEMV; always with the best ISA.
void affine_matmul(const AffineMatrix& w, const float* x, std::int64_t rows, float* y);

// Writes rows [first, first + count) of W as float32 into out ([count, in]).
void affine_dequantize_rows(const AffineMatrix& w, std::int64_t first, std::int64_t count,
                            float* out, KernelIsa isa);

// The AVX2 and scalar implementations for one range of output rows
// [out_first, out_last). xsum is [rows, groups_per_row]: Σx per group.
namespace detail {
// Σx per group of w for each row of x: [rows, groups_per_row].
std::vector<float> group_sums(const AffineMatrix& w, const float* x, std::int64_t rows);
void gemv_rows_scalar(const AffineMatrix& w, const float* x, const float* xsum, std::int64_t rows,
                      std::int64_t out_first, std::int64_t out_last, float* y);
void gemv_rows_avx2(const AffineMatrix& w, const float* x, const float* xsum, std::int64_t rows,
                    std::int64_t out_first, std::int64_t out_last, float* y);
void dequantize_rows_scalar(const AffineMatrix& w, std::int64_t first, std::int64_t count,
                            float* out);
void dequantize_rows_avx2(const AffineMatrix& w, std::int64_t first, std::int64_t count,
                          float* out);
}  // namespace detail

}  // namespace uq::cpu

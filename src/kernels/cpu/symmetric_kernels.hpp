#pragma once
// CPU products with a symmetric per-channel quantized weight W [out, in]
// (int8 or packed int4): y = x · Wᵀ for x [rows, in] and y [rows, out]
// (row-major float32), and row dequantization. Scalar reference and AVX2+FMA
// implementations, multi-threaded over output rows with parallel_for.
#include <cstdint>

#include "kernels/cpu/symmetric_matrix.hpp"

namespace uq::cpu {

// Rows of x from which symmetric_matmul switches from GEMV to GEMM.
inline constexpr std::int64_t kSymmetricGemmMinRows = 8;

// Integer codes times x accumulated in fp32, one scale multiply per output.
void symmetric_gemv(const SymmetricMatrix& w, const float* x, std::int64_t rows, float* y,
                    KernelIsa isa);
// Tiles of W dequantized to fp32 and multiplied with OpenBLAS sgemm.
void symmetric_gemm(const SymmetricMatrix& w, const float* x, std::int64_t rows, float* y,
                    KernelIsa isa);
// Chooses GEMV or GEMM by `rows`, with the best ISA.
void symmetric_matmul(const SymmetricMatrix& w, const float* x, std::int64_t rows, float* y);
// Writes rows [first, first + count) of W as float32 into out ([count, in]).
void symmetric_dequantize_rows(const SymmetricMatrix& w, std::int64_t first, std::int64_t count,
                               float* out, KernelIsa isa);

namespace detail {
void symmetric_gemv_rows_scalar(const SymmetricMatrix& w, const float* x, std::int64_t rows,
                                std::int64_t out_first, std::int64_t out_last, float* y);
void symmetric_gemv_rows_avx2(const SymmetricMatrix& w, const float* x, std::int64_t rows,
                              std::int64_t out_first, std::int64_t out_last, float* y);
void symmetric_dequantize_rows_scalar(const SymmetricMatrix& w, std::int64_t first,
                                      std::int64_t count, float* out);
void symmetric_dequantize_rows_avx2(const SymmetricMatrix& w, std::int64_t first,
                                    std::int64_t count, float* out);
}  // namespace detail

}  // namespace uq::cpu

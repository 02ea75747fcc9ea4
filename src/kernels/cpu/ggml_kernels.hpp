#pragma once
// AVX2 dot products of one ggml-packed row with a float32 vector: the exact
// float GEMV of Q4_0 and Q8_0 (UQ_EXACT_GEMV; decode otherwise takes the int8
// path of ggml_gemv_int8.hpp). Each block is unpacked in registers and
// multiplied with FMA (results equal ggml_dot_row's up to float summation order).
#include <cstddef>
#include <cstdint>

namespace uq {

// `count` is a multiple of 32; `blocks` holds count / 32 blocks.
float ggml_dot_q4_0_avx2(const std::byte* blocks, const float* x, std::int64_t count);
float ggml_dot_q8_0_avx2(const std::byte* blocks, const float* x, std::int64_t count);

}  // namespace uq

// The ggml int8-activation dot products with AVX-512 VNNI (vpdpbusd on
// 256-bit vectors). Only this file is compiled for AVX-512, through the pragma
// below, which comes after every header so that no inline function shared
// with other files is compiled for AVX-512; it runs only where best_dot_isa()
// found VNNI.
#include <immintrin.h>

#include <cstdint>
#include <cstring>

#include "kernels/cpu/ggml_gemv_int8.hpp"

#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni"))), \
                             apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512vnni")
#endif

#include "kernels/cpu/ggml_gemv_int8_impl.hpp"

namespace uq::cpu::detail {
namespace {

// vpdpbusd adds the four u8·s8 products of each int32 lane without saturation.
struct VnniDot {
  static __m256i dot(__m256i u, __m256i s) {
    return _mm256_dpbusd_epi32(_mm256_setzero_si256(), u, s);
  }
};

}  // namespace

GgmlInt8Dot ggml_int8_dot_vnni(GgmlType type) {
  return kernel_for<VnniDot>(type);
}

}  // namespace uq::cpu::detail

#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif

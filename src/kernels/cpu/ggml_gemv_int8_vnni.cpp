// The ggml int8-activation dot products with AVX-512 VNNI (vpdpbusd on
// 256-bit vectors). Only this file is compiled for AVX-512, through UQ_VNNI_TARGET_BEGIN
// below, which comes after every header so that no inline function shared
// with other files is compiled for AVX-512; it runs only where best_dot_isa()
// found VNNI.
#include <immintrin.h>

#include <cstdint>
#include <cstring>

#include "kernels/cpu/ggml_gemv_int8.hpp"
#include "kernels/cpu/vnni_target.hpp"

UQ_VNNI_TARGET_BEGIN

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

UQ_VNNI_TARGET_END

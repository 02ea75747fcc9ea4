// The int8-activation GEMV with AVX-512 VNNI dot products (vpdpbusd on 256-bit
// vectors). Only this file is compiled for AVX-512, through UQ_VNNI_TARGET_BEGIN below,
// which comes after every header so that no inline function shared with other
// files is compiled for AVX-512; it runs only where best_dot_isa() found VNNI.
#include <immintrin.h>

#include <algorithm>
#include <cstdint>
#include <cstring>

#include "core/dtype.hpp"
#include "kernels/cpu/affine_gemv_int8.hpp"
#include "kernels/cpu/vnni_target.hpp"

UQ_VNNI_TARGET_BEGIN

#include "kernels/cpu/affine_gemv_int8_impl.hpp"

namespace uq::cpu::detail {
namespace {

// vpdpbusd adds the four u8·s8 products of each 32-bit lane into int32
// without saturation, so every code width needs no offset.
struct VnniDot {
  template <int B>
  static constexpr int offset = 0;

  template <int B>
  static __m256i dot(__m256i codes, __m256i xq) {
    return _mm256_dpbusd_epi32(_mm256_setzero_si256(), codes, xq);
  }

  static __m256i dot_pair(__m256i codes0, __m256i xq0, __m256i codes1, __m256i xq1) {
    return _mm256_dpbusd_epi32(_mm256_dpbusd_epi32(_mm256_setzero_si256(), codes0, xq0), codes1,
                               xq1);
  }
};

}  // namespace

void gemv_int8_rows_vnni(const AffineMatrix& w, const Int8Activations& a, const float* xsum,
                         std::int64_t out_first, std::int64_t out_last, float* y) {
  gemv_int8_rows<VnniDot>(w, a, xsum, out_first, out_last, y);
}

}  // namespace uq::cpu::detail

UQ_VNNI_TARGET_END

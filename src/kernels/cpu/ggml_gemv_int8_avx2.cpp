// The ggml int8-activation dot products with AVX2 integer dot products.
#include "kernels/cpu/ggml_gemv_int8_impl.hpp"

namespace uq::cpu::detail {
namespace {

// vpmaddubsw adds u8·s8 pairs into int16 with saturation: every caller keeps
// |u| ≤ 128 and |s| ≤ 127, so a pair stays within 2·128·127 < 2^15.
struct Avx2Dot {
  static __m256i dot(__m256i u, __m256i s) {
    return _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1));
  }
};

}  // namespace

GgmlInt8Dot ggml_int8_dot_avx2(GgmlType type) {
  return kernel_for<Avx2Dot>(type);
}

}  // namespace uq::cpu::detail

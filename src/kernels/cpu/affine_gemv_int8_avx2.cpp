// The int8-activation GEMV with AVX2 integer dot products.
#include "kernels/cpu/affine_gemv_int8_impl.hpp"

namespace uq::cpu::detail {
namespace {

// vpmaddubsw multiplies unsigned bytes by signed bytes and adds pairs into
// int16 with saturation: codes < 128 are safe (2·127·127 < 2^15), 8-bit codes
// are first shifted to q − 128 and multiplied by sign, so |pair| ≤ 2·128·127.
struct Avx2Dot {
  template <int B>
  static constexpr int offset = B == 8 ? 128 : 0;

  template <int B>
  static __m256i dot(__m256i codes, __m256i xq) {
    const __m256i ones = _mm256_set1_epi16(1);
    if constexpr (B == 8) {
      const __m256i centered = _mm256_xor_si256(codes, _mm256_set1_epi8(static_cast<char>(0x80)));
      return _mm256_madd_epi16(
          _mm256_maddubs_epi16(_mm256_abs_epi8(centered), _mm256_sign_epi8(xq, centered)), ones);
    } else {
      return _mm256_madd_epi16(_mm256_maddubs_epi16(codes, xq), ones);
    }
  }

  // Two 4-bit dots: each int16 pair sum is at most 2·15·127, so two add safely.
  static __m256i dot_pair(__m256i codes0, __m256i xq0, __m256i codes1, __m256i xq1) {
    return _mm256_madd_epi16(
        _mm256_add_epi16(_mm256_maddubs_epi16(codes0, xq0), _mm256_maddubs_epi16(codes1, xq1)),
        _mm256_set1_epi16(1));
  }
};

}  // namespace

void gemv_int8_rows_avx2(const AffineMatrix& w, const Int8Activations& a, const float* xsum,
                         std::int64_t out_first, std::int64_t out_last, float* y) {
  gemv_int8_rows<Avx2Dot>(w, a, xsum, out_first, out_last, y);
}

}  // namespace uq::cpu::detail

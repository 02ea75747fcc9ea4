#include "quant/int8_rowwise_weight.hpp"

#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "core/error.hpp"
#include "core/thread_pool.hpp"
#include "kernels/cpu/affine_matrix.hpp"
#include "quant/bnb.hpp"

namespace uq {
namespace {

std::int32_t dot_scalar(const std::int8_t* a, const std::int8_t* b, std::int64_t n) {
  std::int32_t sum = 0;
  for (std::int64_t i = 0; i < n; ++i) sum += std::int32_t{a[i]} * std::int32_t{b[i]};
  return sum;
}

std::int32_t dot_avx2(const std::int8_t* a, const std::int8_t* b, std::int64_t n) {
  __m256i acc = _mm256_setzero_si256();
  std::int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m256i wa =
        _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(a + i)));
    const __m256i wb =
        _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b + i)));
    acc = _mm256_add_epi32(acc, _mm256_madd_epi16(wa, wb));
  }
  const __m128i sum4 = _mm_add_epi32(_mm256_castsi256_si128(acc), _mm256_extracti128_si256(acc, 1));
  const __m128i sum2 = _mm_add_epi32(sum4, _mm_shuffle_epi32(sum4, 0x4E));
  const __m128i sum1 = _mm_add_epi32(sum2, _mm_shuffle_epi32(sum2, 0xB1));
  return _mm_cvtsi128_si32(sum1) + dot_scalar(a + i, b + i, n - i);
}

}  // namespace

std::unique_ptr<Int8RowwiseWeight> Int8RowwiseWeight::quantize(const void* data, DType dtype,
                                                               std::int64_t out, std::int64_t in,
                                                               float threshold,
                                                               std::string_view tensor) {
  if (out <= 0 || in <= 0) fail("tensor '", tensor, "': empty matrix");
  const auto n = static_cast<std::size_t>(out * in);
  std::vector<float> values(n);
  convert_to_f32(dtype, data, n, values.data());
  for (std::size_t i = 0; i < n; ++i) {
    if (!std::isfinite(values[i])) {
      fail("tensor '", tensor, "': non-finite value at element ", i, " cannot be quantized");
    }
  }
  std::unique_ptr<Int8RowwiseWeight> weight(new Int8RowwiseWeight());
  weight->out_ = out;
  weight->in_ = in;
  weight->threshold_ = threshold;
  weight->codes_.resize(n);
  weight->scb_.resize(static_cast<std::size_t>(out));
  bnb::quantize_int8_rows(values.data(), out, in, weight->codes_.data(), weight->scb_.data());
  return weight;
}

std::unique_ptr<Int8RowwiseWeight> Int8RowwiseWeight::from_parts(std::int64_t out, std::int64_t in,
                                                                 std::vector<std::int8_t> codes,
                                                                 std::vector<float> scb,
                                                                 float threshold,
                                                                 std::string_view tensor) {
  if (out <= 0 || in <= 0) fail("tensor '", tensor, "': empty shape [", out, ", ", in, "]");
  if (codes.size() != static_cast<std::size_t>(out * in) ||
      scb.size() != static_cast<std::size_t>(out)) {
    fail("tensor '", tensor, "': expected ", out * in, " int8 codes and ", out, " SCB values, got ",
         codes.size(), " and ", scb.size());
  }
  std::unique_ptr<Int8RowwiseWeight> weight(new Int8RowwiseWeight());
  weight->out_ = out;
  weight->in_ = in;
  weight->threshold_ = threshold;
  weight->codes_ = std::move(codes);
  weight->scb_ = std::move(scb);
  return weight;
}

void Int8RowwiseWeight::matmul_impl(const float* x, std::int64_t rows, float* y, bool avx2) const {
  // Outlier columns: any |x| >= threshold in the batch (bitsandbytes' rule).
  std::vector<std::int64_t> outliers;
  for (std::int64_t c = 0; c < in_; ++c) {
    for (std::int64_t r = 0; r < rows; ++r) {
      if (threshold_ > 0.0f && std::fabs(x[r * in_ + c]) >= threshold_) {
        outliers.push_back(c);
        break;
      }
    }
  }
  std::vector<bool> is_outlier(static_cast<std::size_t>(in_), false);
  for (const auto c : outliers) is_outlier[static_cast<std::size_t>(c)] = true;
  // Inputs per row to int8 with the row absmax over the other columns.
  std::vector<std::int8_t> xq(static_cast<std::size_t>(rows * in_), 0);
  std::vector<float> row_scale(static_cast<std::size_t>(rows), 0.0f);
  for (std::int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * in_;
    float max_abs = 0.0f;
    bool finite = true;
    for (std::int64_t c = 0; c < in_; ++c) {
      if (!is_outlier[static_cast<std::size_t>(c)]) {
        finite = finite && std::isfinite(xr[c]);
        max_abs = std::max(max_abs, std::fabs(xr[c]));
      }
    }
    if (!finite) {
      // NaN/Inf inputs have no int8 code: a NaN row scale makes the row's
      // outputs NaN, as in float (its codes stay 0).
      row_scale[static_cast<std::size_t>(r)] = std::numeric_limits<float>::quiet_NaN();
      continue;
    }
    row_scale[static_cast<std::size_t>(r)] = max_abs;
    if (max_abs == 0.0f) continue;
    const float factor = (1.0f / max_abs) * 127.0f;
    // A subnormal max_abs overflows the factor (x * inf is inf or NaN): divide.
    const bool divide = !std::isfinite(factor);
    for (std::int64_t c = 0; c < in_; ++c) {
      if (!is_outlier[static_cast<std::size_t>(c)]) {
        const float scaled = divide ? xr[c] / max_abs * 127.0f : xr[c] * factor;
        xq[static_cast<std::size_t>(r * in_ + c)] =
            static_cast<std::int8_t>(std::nearbyint(scaled));
      }
    }
  }
  constexpr float kInverse127Squared = 1.0f / (127.0f * 127.0f);
  parallel_for(0, out_, items_per_task(in_ * rows), [&](std::int64_t lo, std::int64_t hi) {
    for (std::int64_t o = lo; o < hi; ++o) {
      const std::int8_t* wq = codes_.data() + o * in_;
      const float weight_scale = scb_[static_cast<std::size_t>(o)];
      for (std::int64_t r = 0; r < rows; ++r) {
        const std::int8_t* xr = xq.data() + r * in_;
        const std::int32_t acc = avx2 ? dot_avx2(xr, wq, in_) : dot_scalar(xr, wq, in_);
        float value = static_cast<float>(acc) *
                      (row_scale[static_cast<std::size_t>(r)] * weight_scale * kInverse127Squared);
        for (const auto c : outliers) {
          value += x[r * in_ + c] * (static_cast<float>(wq[c]) * weight_scale / 127.0f);
        }
        y[r * out_ + o] = value;
      }
    }
  });
}

void Int8RowwiseWeight::matmul(const float* x, std::int64_t rows, float* y) const {
  matmul_impl(x, rows, y, cpu::best_kernel_isa() == cpu::KernelIsa::Avx2);
}

void Int8RowwiseWeight::matmul_reference(const float* x, std::int64_t rows, float* y) const {
  matmul_impl(x, rows, y, false);
}

void Int8RowwiseWeight::dequantize_rows(std::int64_t first, std::int64_t count, float* out) const {
  if (first < 0 || count < 0 || first + count > out_) {
    fail("dequantize_rows: rows [", first, ", ", first + count, ") outside [0, ", out_, ")");
  }
  for (std::int64_t r = 0; r < count; ++r) {
    const float scale = scb_[static_cast<std::size_t>(first + r)] / 127.0f;
    for (std::int64_t c = 0; c < in_; ++c) {
      out[r * in_ + c] =
          static_cast<float>(codes_[static_cast<std::size_t>((first + r) * in_ + c)]) * scale;
    }
  }
}

}  // namespace uq

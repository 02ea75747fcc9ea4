// The int8-activation GEMV of the ggml block formats: each SIMD kernel equals
// the scalar reference exactly, and the GEMV stays within the derived error of
// 8-bit activation quantization of the float64 product with dequantized W.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "core/dtype.hpp"
#include "kernels/cpu/affine_matrix.hpp"
#include "kernels/cpu/ggml_gemv_int8.hpp"
#include "kernels/cpu/int8_activations.hpp"
#include "quant/ggml_blocks.hpp"
#include "quant/ggml_weight.hpp"

namespace uq {
namespace {

constexpr GgmlType kTypes[] = {GgmlType::Q4_0, GgmlType::Q4_1, GgmlType::Q5_0,
                               GgmlType::Q8_0, GgmlType::Q4_K, GgmlType::Q6_K};

std::vector<cpu::DotIsa> simd_isas() {
  if (cpu::best_kernel_isa() != cpu::KernelIsa::Avx2) return {};
  if (cpu::best_dot_isa() == cpu::DotIsa::Avx512Vnni) {
    return {cpu::DotIsa::Avx2, cpu::DotIsa::Avx512Vnni};
  }
  return {cpu::DotIsa::Avx2};
}

// Byte offsets of the f16 scale fields in one block of `type`.
std::vector<std::size_t> scale_offsets(GgmlType type) {
  switch (type) {
    case GgmlType::Q4_1:
    case GgmlType::Q4_K:
      return {0, 2};
    case GgmlType::Q6_K:
      return {208};
    default:
      return {0};
  }
}

// Random bytes (every bit pattern is a valid code, 6-bit scale or int8
// sub-scale) with each f16 scale set to ±2^-4: every product and partial sum
// of the dot product is then an exact float, so summation order cannot matter.
std::vector<std::byte> random_exact_rows(GgmlType type, std::int64_t out, std::int64_t in,
                                         std::mt19937& rng) {
  std::vector<std::byte> bytes(ggml_row_bytes(type, in) * static_cast<std::size_t>(out));
  std::uniform_int_distribution<int> byte(0, 255);
  for (auto& b : bytes) b = static_cast<std::byte>(byte(rng));
  const std::size_t block = ggml_type_size(type);
  for (std::size_t first = 0; first < bytes.size(); first += block) {
    for (const std::size_t offset : scale_offsets(type)) {
      const std::uint16_t bits = f32_to_f16(byte(rng) % 2 == 0 ? 0.0625f : -0.0625f);
      std::memcpy(bytes.data() + first + offset, &bits, sizeof bits);
    }
  }
  return bytes;
}

// Activations k·2^-4, k in [-127, 127], one ±127 per block of 32: they
// quantize exactly, with d = 2^-4.
std::vector<float> exact_activations(std::int64_t count, std::mt19937& rng) {
  std::uniform_int_distribution<int> level(-127, 127), lane(0, 31);
  std::vector<float> x(static_cast<std::size_t>(count));
  for (auto& v : x) v = static_cast<float>(level(rng)) / 16.0f;
  for (std::int64_t b = 0; b < count; b += 32) {
    x[static_cast<std::size_t>(b + lane(rng))] = level(rng) < 0 ? -127.0f / 16.0f : 127.0f / 16.0f;
  }
  return x;
}

TEST(GgmlGemvInt8, SimdKernelsEqualScalarReferenceExactly) {
  const auto isas = simd_isas();
  if (isas.empty()) GTEST_SKIP() << "no AVX2";
  std::mt19937 rng(11);
  const std::int64_t out = 7, in = 768;  // odd row count; 24 blocks of 32, 3 of 256
  for (const GgmlType type : kTypes) {
    const auto w = random_exact_rows(type, out, in, rng);
    const std::size_t row_bytes = ggml_row_bytes(type, in);
    for (const std::int64_t rows : {1, 3}) {
      const auto x = exact_activations(rows * in, rng);
      std::vector<float> expected(static_cast<std::size_t>(rows * out));
      cpu::ggml_gemv_int8(cpu::ggml_int8_dot_scalar(type), w.data(), row_bytes, out, in, x.data(),
                          rows, expected.data());
      double magnitude = 0;
      for (const float v : expected) magnitude += std::fabs(v);
      EXPECT_GT(magnitude, 1.0) << ggml_type_name(type);  // not a trivial all-zero case
      for (const cpu::DotIsa isa : isas) {
        std::vector<float> y(expected.size());
        cpu::ggml_gemv_int8(cpu::ggml_int8_dot_simd(type, isa), w.data(), row_bytes, out, in,
                            x.data(), rows, y.data());
        for (std::size_t i = 0; i < y.size(); ++i) {
          ASSERT_EQ(y[i], expected[i]) << ggml_type_name(type) << " rows " << rows << " isa "
                                       << static_cast<int>(isa) << " output " << i;
        }
      }
    }
  }
}

// Random normal data (not exact): the SIMD sums differ from the scalar ones
// only in float summation order, |Δ| ≤ n·2^-24·Σ|terms| with n ≤ in/16 terms.
TEST(GgmlGemvInt8, SimdKernelsMatchScalarOnRandomData) {
  const auto isas = simd_isas();
  if (isas.empty()) GTEST_SKIP() << "no AVX2";
  std::mt19937 rng(12);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  const std::int64_t out = 5, in = 1024;
  std::vector<float> w(static_cast<std::size_t>(out * in)), x(static_cast<std::size_t>(in));
  for (auto& v : w) v = normal(rng);
  for (auto& v : x) v = normal(rng);
  for (const GgmlType type : kTypes) {
    const GgmlWeight weight = GgmlWeight::quantize(type, out, in, w.data());
    std::vector<float> dense(w.size());
    weight.dequantize_rows(0, out, dense.data());
    std::vector<float> expected(static_cast<std::size_t>(out));
    cpu::ggml_gemv_int8(cpu::ggml_int8_dot_scalar(type), weight.bytes().data(),
                        ggml_row_bytes(type, in), out, in, x.data(), 1, expected.data());
    for (const cpu::DotIsa isa : isas) {
      std::vector<float> y(expected.size());
      cpu::ggml_gemv_int8(cpu::ggml_int8_dot_simd(type, isa), weight.bytes().data(),
                          ggml_row_bytes(type, in), out, in, x.data(), 1, y.data());
      for (std::int64_t o = 0; o < out; ++o) {
        double magnitude = 0;
        for (std::int64_t i = 0; i < in; ++i) {
          magnitude += std::fabs(dense[static_cast<std::size_t>(o * in + i)] *
                                 x[static_cast<std::size_t>(i)]);
        }
        const double bound = static_cast<double>(in / 16) * 0x1p-24 * 2 * magnitude;
        EXPECT_NEAR(y[static_cast<std::size_t>(o)], expected[static_cast<std::size_t>(o)], bound)
            << ggml_type_name(type) << " isa " << static_cast<int>(isa);
      }
    }
  }
}

// x_i = d_b·q_i + e_i with |e_i| ≤ d_b/2 (round to nearest; the float product
// x·(1/d) adds ≤ 127·d·2^-23), so |y − Σ w_i x_i| ≤ Σ_i |w_i|·d_b(i)·(1/2 + 2^-16)
// plus float rounding of the sums (≤ 1e-5·Σ|w_i x_i| at in = 512).
TEST(GgmlGemvInt8, GemvWithinActivationQuantizationBound) {
  std::mt19937 rng(13);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  const std::int64_t out = 33, in = 512;
  std::vector<float> w(static_cast<std::size_t>(out * in));
  for (auto& v : w) v = normal(rng);
  for (const GgmlType type : kTypes) {
    const GgmlWeight weight = GgmlWeight::quantize(type, out, in, w.data());
    std::vector<float> dense(w.size());
    weight.dequantize_rows(0, out, dense.data());
    for (const std::int64_t rows : {1, 4}) {
      std::vector<float> x(static_cast<std::size_t>(rows * in));
      for (auto& v : x) v = normal(rng);
      const auto a = cpu::quantize_activations(x.data(), rows, in, 8, 32);
      std::vector<float> fast(static_cast<std::size_t>(rows * out));
      weight.matmul(x.data(), rows, fast.data());  // best ISA through GgmlWeight
      std::vector<float> scalar(fast.size());
      cpu::ggml_gemv_int8(cpu::ggml_int8_dot_scalar(type), weight.bytes().data(),
                          ggml_row_bytes(type, in), out, in, x.data(), rows, scalar.data());
      double worst_ratio = 0;
      for (std::int64_t r = 0; r < rows; ++r) {
        for (std::int64_t o = 0; o < out; ++o) {
          double exact = 0, bound = 0, magnitude = 0;
          for (std::int64_t i = 0; i < in; ++i) {
            const double wi = dense[static_cast<std::size_t>(o * in + i)];
            const double xi = x[static_cast<std::size_t>(r * in + i)];
            exact += wi * xi;
            bound += std::fabs(wi) * a.d[static_cast<std::size_t>(r * in / 32 + i / 32)] *
                     (0.5 + 0x1p-16);
            magnitude += std::fabs(wi * xi);
          }
          bound += 1e-5 * magnitude;
          for (const auto* y : {&fast, &scalar}) {
            const double got = (*y)[static_cast<std::size_t>(r * out + o)];
            ASSERT_LE(std::fabs(got - exact), bound)
                << ggml_type_name(type) << " rows " << rows << " output " << o;
            worst_ratio = std::max(worst_ratio, std::fabs(got - exact) / bound);
          }
        }
      }
      // The quantization error is real (not an exact float path): well above
      // float rounding, well below the worst case.
      EXPECT_GT(worst_ratio, 0.01) << ggml_type_name(type);
    }
  }
}

TEST(GgmlGemvInt8, SupportedTypes) {
  for (const GgmlType type : kTypes) EXPECT_TRUE(cpu::ggml_int8_gemv_supports(type));
  EXPECT_FALSE(cpu::ggml_int8_gemv_supports(GgmlType::F16));
  EXPECT_FALSE(cpu::ggml_int8_gemv_supports(GgmlType::BF16));
  EXPECT_FALSE(cpu::ggml_int8_gemv_supports(GgmlType::F32));
}

}  // namespace
}  // namespace uq

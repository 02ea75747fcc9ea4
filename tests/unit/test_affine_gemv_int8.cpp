// The int8-activation GEMV: the activation quantizer as stated, every dot
// product ISA against a float64 reference that rounds x the same way (tight),
// against the exact product of the unrounded x (within the stated rounding
// bound), and affine_matmul's choice of path with the UQ_EXACT_GEMV switch.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include "kernels/cpu/affine_gemv_int8.hpp"
#include "kernels/cpu/affine_kernels.hpp"
#include "quant/affine.hpp"
#include "quant/affine_weight.hpp"
#include "support/random_affine.hpp"

namespace uq {
namespace {

using cpu::DotIsa;

std::vector<DotIsa> dot_isas() {
  std::vector<DotIsa> isas{DotIsa::Avx2};
  if (cpu::best_dot_isa() == DotIsa::Avx512Vnni) isas.push_back(DotIsa::Avx512Vnni);
  return isas;
}

// For each output: y with x rounded to d·q (float64), y with the exact x, the
// magnitude Σ(|s|·q + |b|)·|x| that bounds float32 accumulation, and the
// rounding bound Σ|s|·q·d/2 between the two.
struct Reference {
  std::vector<double> rounded, exact, magnitude, rounding_bound;
};

Reference reference(const cpu::AffineMatrix& m, const std::vector<float>& x, std::int64_t rows) {
  const auto a = cpu::quantize_activations(x.data(), rows, m.in, 8, m.group_size);  // natural order
  const auto size = static_cast<std::size_t>(rows * m.out);
  Reference ref{std::vector<double>(size), std::vector<double>(size), std::vector<double>(size),
                std::vector<double>(size)};
  const auto blocks = m.in / cpu::kActivationBlock;
  for (std::int64_t r = 0; r < rows; ++r) {
    for (std::int64_t o = 0; o < m.out; ++o) {
      const auto k = static_cast<std::size_t>(r * m.out + o);
      for (std::int64_t i = 0; i < m.in; ++i) {
        const auto g = o * m.groups_per_row() + i / m.group_size;
        const double s = load_param(m.scales, m.param_dtype, g);
        const double b = load_param(m.biases, m.param_dtype, g);
        const double q = unpack_code(m.codes + o * m.words_per_row(), i, m.bits);
        const double xi = x[static_cast<std::size_t>(r * m.in + i)];
        const double d = a.d[static_cast<std::size_t>(r * blocks + i / cpu::kActivationBlock)];
        const double xr = d * a.q[static_cast<std::size_t>(r * m.in + i)];
        ref.rounded[k] += s * q * xr + b * xi;
        ref.exact[k] += (s * q + b) * xi;
        ref.magnitude[k] += (std::abs(s) * q + std::abs(b)) * std::abs(xi);
        ref.rounding_bound[k] += std::abs(s) * q * d / 2;
      }
    }
  }
  return ref;
}

TEST(Int8Activations, BlocksRoundToTheirStepAndEveryPositionIsUsedOnce) {
  std::mt19937 rng(3);
  auto x = test::random_activations(2, 128, rng);
  for (int i = 64; i < 96; ++i) x[static_cast<std::size_t>(i)] = 0.0f;  // an all-zero block
  for (int bits : {2, 4, 8}) {
    for (int group : {32, 64, 128}) {
      const auto what = "bits " + std::to_string(bits) + " group " + std::to_string(group);
      std::vector<int> seen(128, 0);
      for (std::int64_t i = 0; i < 128; ++i) {
        const auto position = cpu::activation_position(bits, group, i);
        ASSERT_TRUE(position >= 0 && position < 128) << what;
        // Positions stay inside the block's pair (4-bit, group 64k) or block.
        const std::int64_t span = cpu::paired_activation_layout(bits, group) ? 64 : 32;
        ASSERT_EQ(position / span, i / span) << what;
        ++seen[static_cast<std::size_t>(position)];
      }
      for (int count : seen) ASSERT_EQ(count, 1) << what;
      const auto a = cpu::quantize_activations(x.data(), 2, 128, bits, group);
      EXPECT_EQ(a.paired, bits == 4 && group % 64 == 0) << what;
      for (std::int64_t block = 0; block < 8; ++block) {
        const float d = a.d[static_cast<std::size_t>(block)];
        float amax = 0.0f;
        int max_q = 0;
        int sum_q = 0;
        for (int k = 0; k < cpu::kActivationBlock; ++k) {
          const auto index = block * cpu::kActivationBlock + k;
          const auto row_index = index % 128;
          const auto row_start = index - row_index;
          const float xi = x[static_cast<std::size_t>(index)];
          amax = std::max(amax, std::abs(xi));
          const int q = a.q[static_cast<std::size_t>(
              row_start + cpu::activation_position(bits, group, row_index))];
          EXPECT_EQ(q, static_cast<int>(std::nearbyint(xi / (d > 0 ? d : 1.0f))))
              << what << " block " << block << " index " << k;
          max_q = std::max(max_q, std::abs(q));
          sum_q += q;
        }
        EXPECT_FLOAT_EQ(d, amax / 127.0f);
        EXPECT_EQ(max_q, amax > 0 ? 127 : 0);
        EXPECT_FLOAT_EQ(a.dq_sum[static_cast<std::size_t>(block)], d * static_cast<float>(sum_q));
      }
    }
  }
}

// Found by fuzz_quantized_layout: NaN weights make NaN activations, whose
// conversion to int8 was undefined. Their block now has a NaN scale, so the
// product is NaN exactly where the float product is.
TEST(Int8Activations, NonFiniteBlocksGiveNaNScalesAndZeroCodes) {
  std::mt19937 rng(5);
  auto x = test::random_activations(1, 128, rng);
  x[3] = std::numeric_limits<float>::quiet_NaN();
  x[70] = std::numeric_limits<float>::infinity();
  const auto a = cpu::quantize_activations(x.data(), 1, 128, 4, 64);
  for (std::int64_t block = 0; block < 4; ++block) {
    const bool poisoned = block == 0 || block == 2;
    EXPECT_EQ(std::isnan(a.d[static_cast<std::size_t>(block)]), poisoned) << block;
    EXPECT_EQ(std::isnan(a.dq_sum[static_cast<std::size_t>(block)]), poisoned) << block;
  }
  for (std::int64_t i = 0; i < cpu::kActivationBlock; ++i) {
    EXPECT_EQ(a.q[static_cast<std::size_t>(cpu::activation_position(4, 64, i))], 0) << i;
  }
}

// Found by fuzz_quantized_layout: a block of subnormal inputs has a scale
// whose reciprocal overflows, and 0·inf gave NaN codes. It divides instead.
TEST(Int8Activations, SubnormalBlocksDivideByTheirScale) {
  std::vector<float> x(64, 0.0f);
  x[1] = 1e-39f;
  x[2] = -5e-40f;
  x[40] = 3e-40f;  // second block: its own subnormal scale
  const auto a = cpu::quantize_activations(x.data(), 1, 64, 8, 64);
  EXPECT_EQ(a.d[0], 1e-39f / 127.0f);
  const auto code = [&](std::int64_t i) {
    return static_cast<int>(a.q[static_cast<std::size_t>(cpu::activation_position(8, 64, i))]);
  };
  EXPECT_EQ(code(0), 0);
  EXPECT_EQ(code(1), 127);
  EXPECT_EQ(code(2), static_cast<int>(std::nearbyint(-5e-40f / a.d[0])));
  EXPECT_EQ(code(40), 127);
  EXPECT_EQ(a.dq_sum[0], a.d[0] * static_cast<float>(code(1) + code(2)));
}

TEST(AffineGemvInt8, EveryIsaMatchesTheRoundedReferenceAndBoundsTheExactOne) {
  std::mt19937 rng(21);
  for (DotIsa isa : dot_isas()) {
    for (int bits : {2, 4, 8}) {
      for (int group : {32, 64, 128}) {
        for (DType dtype : {DType::F32, DType::F16, DType::BF16}) {
          const std::int64_t out = 19;  // not a multiple of the 4-row tiles
          const std::int64_t in = group * 3;
          const auto w = test::random_affine_weight(out, in, bits, group, dtype, rng);
          for (std::int64_t rows : {1, 2, 3, 4, 5, 7}) {
            const auto what = "isa " + std::to_string(static_cast<int>(isa)) + " bits " +
                              std::to_string(bits) + " group " + std::to_string(group) + " " +
                              std::string(dtype_name(dtype)) + " rows " + std::to_string(rows);
            const auto x = test::random_activations(rows, in, rng);
            const auto ref = reference(w->matrix(), x, rows);
            std::vector<float> y(static_cast<std::size_t>(rows * out));
            cpu::affine_gemv_int8(w->matrix(), x.data(), rows, y.data(), isa);
            for (std::size_t i = 0; i < y.size(); ++i) {
              // Same terms as the reference, float32 accumulation (see
              // test_quant_kernels.cpp for the 1e-5 relative bound).
              const double float_error = 1e-5 * ref.magnitude[i] + 1e-6;
              ASSERT_NEAR(y[i], ref.rounded[i], float_error) << what << " at " << i;
              ASSERT_NEAR(y[i], ref.exact[i], ref.rounding_bound[i] + float_error)
                  << what << " at " << i;
            }
          }
        }
      }
    }
  }
}

TEST(AffineGemvInt8, LargeCodesDoNotSaturateTheAvx2Dot) {
  // All 8-bit codes 255 and x at ±127 steps: the case vpmaddubsw would clip.
  std::mt19937 rng(4);
  const std::int64_t in = 256;
  std::vector<std::uint32_t> words(static_cast<std::size_t>(2 * affine_words_per_row(in, 8)),
                                   0xffffffffu);
  std::vector<float> params(2 * in / 64, 1.0f);
  const std::span<const std::byte> bytes(reinterpret_cast<const std::byte*>(params.data()),
                                         params.size() * 4);
  const auto w = AffineWeight::from_packed(2, in, 8, 64, words, DType::F32, bytes, bytes, "w");
  std::vector<float> x(in);
  for (std::int64_t i = 0; i < in; ++i) x[static_cast<std::size_t>(i)] = i % 3 == 0 ? -1.0f : 1.0f;
  double expected = 0.0;
  for (float v : x) expected += 256.0 * v;
  for (DotIsa isa : dot_isas()) {
    std::vector<float> y(2);
    cpu::affine_gemv_int8(w->matrix(), x.data(), 1, y.data(), isa);
    EXPECT_FLOAT_EQ(y[0], static_cast<float>(expected)) << static_cast<int>(isa);
  }
}

TEST(AffineGemvInt8, MatmulUsesItForDecodeUnlessExactIsAsked) {
  std::mt19937 rng(8);
  const auto w4 = test::random_affine_weight(40, 256, 4, 64, DType::BF16, rng);
  const auto w3 = test::random_affine_weight(40, 256, 3, 64, DType::BF16, rng);
  const auto x = test::random_activations(2, 256, rng);
  std::vector<float> via_matmul(80), int8(80), exact(80);
  const bool was_exact = cpu::exact_gemv();
  cpu::set_exact_gemv(false);
  EXPECT_TRUE(cpu::int8_gemv_supports(w4->matrix()));
  EXPECT_FALSE(cpu::int8_gemv_supports(w3->matrix()));
  w4->matmul(x.data(), 2, via_matmul.data());
  cpu::affine_gemv_int8(w4->matrix(), x.data(), 2, int8.data(), cpu::best_dot_isa());
  EXPECT_EQ(via_matmul, int8);
  w3->matmul(x.data(), 2, via_matmul.data());  // 3 bits: the float GEMV
  cpu::affine_gemv(w3->matrix(), x.data(), 2, exact.data(), cpu::best_kernel_isa());
  EXPECT_EQ(via_matmul, exact);
  cpu::set_exact_gemv(true);
  w4->matmul(x.data(), 2, via_matmul.data());
  cpu::affine_gemv(w4->matrix(), x.data(), 2, exact.data(), cpu::best_kernel_isa());
  EXPECT_EQ(via_matmul, exact);
  EXPECT_NE(via_matmul, int8);
  cpu::set_exact_gemv(was_exact);
}

}  // namespace
}  // namespace uq

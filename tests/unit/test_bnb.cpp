// bitsandbytes numerics on hand-derived cases, and the 4-bit / int8 kernels
// against their scalar references.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

#include "core/error.hpp"
#include "kernels/cpu/bnb4_kernels.hpp"
#include "quant/bnb.hpp"
#include "quant/bnb4_weight.hpp"
#include "quant/int8_rowwise_weight.hpp"

namespace uq {
namespace {

using bnb::FourBitType;

std::vector<std::uint8_t> pack4(const std::vector<float>& values, FourBitType type,
                                std::vector<float>& absmax, int blocksize = 64) {
  std::vector<std::uint8_t> packed((values.size() + 1) / 2);
  absmax.resize((values.size() + static_cast<std::size_t>(blocksize) - 1) /
                static_cast<std::size_t>(blocksize));
  bnb::quantize_4bit(values.data(), static_cast<std::int64_t>(values.size()), blocksize, type,
                     packed.data(), absmax.data());
  return packed;
}

TEST(Bnb, Nf4FirstElementInHighNibble) {
  // absmax 1: 1 -> code 15, -1 -> 0, 0 -> 7, 0.5 lies below the midpoint
  // (0.4407 + 0.5626) / 2 = 0.5017 -> 12.
  std::vector<float> absmax;
  const auto packed = pack4({1.0f, -1.0f, 0.0f, 0.5f}, FourBitType::NF4, absmax);
  ASSERT_EQ(packed.size(), 2u);
  EXPECT_EQ(packed[0], 0xF0);
  EXPECT_EQ(packed[1], 0x7C);
  ASSERT_EQ(absmax.size(), 1u);
  EXPECT_EQ(absmax[0], 1.0f);
}

TEST(Bnb, Nf4TieGoesToTheLowerCode) {
  const auto& code = bnb::four_bit_code(FourBitType::NF4);
  const float midpoint = (code[7] + code[8]) / 2.0f;
  std::vector<float> absmax;
  const auto packed =
      pack4({1.0f, midpoint, std::nextafter(midpoint, 1.0f), -2.0f}, FourBitType::NF4, absmax);
  // absmax 2 now: 1 -> 0.5 -> code 12; the midpoint halves to a value below
  // code 8's, so test with the scaled numbers bitsandbytes sees.
  EXPECT_EQ(absmax[0], 2.0f);
  EXPECT_EQ(packed[1] & 0xF, 0);  // -2 -> -1 -> code 0
  std::vector<float> absmax1;
  const auto tie = pack4({1.0f, midpoint}, FourBitType::NF4, absmax1);
  EXPECT_EQ(tie[0], 0xF7);  // exactly on the midpoint: the lower code 7
  const auto above = pack4({1.0f, std::nextafter(midpoint, 1.0f)}, FourBitType::NF4, absmax1);
  EXPECT_EQ(above[0], 0xF8);
}

TEST(Bnb, Fp4CodesAndTheSignedZeros) {
  const auto& code = bnb::four_bit_code(FourBitType::FP4);
  EXPECT_EQ(code[3], 1.0f);             // 12 / 12
  EXPECT_EQ(code[5], 0.5f);             // 6 / 12
  EXPECT_EQ(code[1], 0.0625f / 12.0f);  // the subnormal
  EXPECT_EQ(code[11], -1.0f);
  std::vector<float> absmax;
  // 1 -> nibble 3, -1 -> 11, 0.5 -> 5, 0 -> 0 (+0), 0.001 -> 8 (-0: torch's
  // argsort puts +0 before -0), -0.001 -> 0.
  const auto packed = pack4({1.0f, -1.0f, 0.5f, 0.0f, 0.001f, -0.001f}, FourBitType::FP4, absmax);
  EXPECT_EQ(packed[0], 0x3B);
  EXPECT_EQ(packed[1], 0x50);
  EXPECT_EQ(packed[2], 0x80);
}

TEST(Bnb, BlocksRunOverTheFlattenedTensorAndAZeroBlockStaysZero) {
  std::vector<float> values(130, 0.0f);
  values[0] = 2.0f;    // block 0
  values[64] = -4.0f;  // block 1
  values[129] = 8.0f;  // block 2 (partial, 2 elements)
  std::vector<float> absmax;
  const auto packed = pack4(values, FourBitType::NF4, absmax);
  ASSERT_EQ(absmax.size(), 3u);
  EXPECT_EQ(absmax[0], 2.0f);
  EXPECT_EQ(absmax[1], 4.0f);
  EXPECT_EQ(absmax[2], 8.0f);
  EXPECT_EQ(packed[0], 0xF7);
  EXPECT_EQ(packed[32], 0x07);
  EXPECT_EQ(packed[64], 0x7F);
  std::vector<float> zeros(64, 0.0f), zero_absmax;
  const auto zero_packed = pack4(zeros, FourBitType::NF4, zero_absmax);
  EXPECT_EQ(zero_absmax[0], 0.0f);
  EXPECT_EQ(zero_packed[0], 0x77);  // 0 * (1 / 1e-38) = 0 -> code 7
}

TEST(Bnb, DynamicMapEnds) {
  const auto& map = bnb::dynamic_map();
  EXPECT_EQ(map[255], 1.0f);
  EXPECT_FLOAT_EQ(map[0], -0.99296875f);  // -(1 - 0.9/128 ... ) the largest negative mean
  EXPECT_TRUE(std::is_sorted(map.begin(), map.end()));
  EXPECT_EQ(std::count(map.begin(), map.end(), 0.0f), 1);
  // The smallest positive code: 10^-6 * (0.1 + 1) / 2.
  EXPECT_FLOAT_EQ(*std::upper_bound(map.begin(), map.end(), 0.0f), 0.55e-6f);
}

TEST(Bnb, NestedQuantStateFields) {
  // absmax {1, 3}: offset 2, absmax - offset = {-1, 1}, nested absmax 1,
  // codes 0 (nearest to -1 is map[0] = -0.99297) and 255; restored:
  // map[0] * 1 + 2 and 1 * 1 + 2.
  const std::vector<float> absmax{1.0f, 3.0f};
  const auto nested = bnb::quantize_nested(absmax);
  EXPECT_EQ(nested.offset, 2.0f);
  EXPECT_EQ(nested.blocksize, 256);
  ASSERT_EQ(nested.absmax.size(), 1u);
  EXPECT_EQ(nested.absmax[0], 1.0f);
  ASSERT_EQ(nested.codes.size(), 2u);
  EXPECT_EQ(nested.codes[0], 0);
  EXPECT_EQ(nested.codes[1], 255);
  const auto& map = bnb::dynamic_map();
  const auto restored = bnb::dequantize_nested(nested.codes, nested.absmax,
                                               std::vector<float>(map.begin(), map.end()),
                                               nested.offset, nested.blocksize);
  EXPECT_EQ(restored[0], map[0] + 2.0f);
  EXPECT_EQ(restored[1], 3.0f);
  // 257 values: two nested blocks.
  EXPECT_EQ(bnb::quantize_nested(std::vector<float>(257, 1.0f)).absmax.size(), 2u);
}

TEST(Bnb, Int8RowsRoundHalfToEven) {
  // Row absmax 1: 0.5 * 127 = 63.5 -> 64, -1 -> -127, 0.25 * 127 = 31.75 -> 32.
  const std::vector<float> w{0.5f, -1.0f, 0.25f, 0.0f, 0.0f, 2.0f};
  std::vector<std::int8_t> q(6);
  std::vector<float> scb(2);
  bnb::quantize_int8_rows(w.data(), 2, 3, q.data(), scb.data());
  EXPECT_EQ(scb[0], 1.0f);
  EXPECT_EQ(scb[1], 2.0f);
  EXPECT_EQ(q, (std::vector<std::int8_t>{64, -127, 32, 0, 0, 127}));
}

TEST(Bnb, Int8OutlierColumnsComputedInFloat) {
  const std::vector<float> w{1.0f, 0.5f, -1.0f, 0.25f};  // [2, 2]
  const auto weight =
      Int8RowwiseWeight::from_parts(2, 2, {127, 64, -127, 32}, {1.0f, 1.0f}, 6.0f, "w");
  // Column 1 holds an outlier (8 >= 6): it is multiplied in float with the
  // dequantized weight 64/127 and 32/127; column 0 (1.0) quantizes exactly.
  const std::vector<float> x{1.0f, 8.0f};
  std::vector<float> y(2);
  weight->matmul(x.data(), 1, y.data());
  EXPECT_FLOAT_EQ(y[0], 1.0f + 8.0f * 64.0f / 127.0f);
  EXPECT_FLOAT_EQ(y[1], -1.0f + 8.0f * 32.0f / 127.0f);
  // Without outliers, x is quantized per row: [1, 0.5] -> [127, 64] / 127.
  const std::vector<float> small{1.0f, 0.5f};
  weight->matmul(small.data(), 1, y.data());
  EXPECT_FLOAT_EQ(y[0], (127.0f * 127.0f + 64.0f * 64.0f) / (127.0f * 127.0f));
}

// A subnormal row absmax overflows (1/absmax)*127 to inf, and x*inf gave inf
// or NaN codes (undefined as int8). Such rows are divided instead.
TEST(Bnb, Int8RowsOfSubnormalValuesKeepTheirCodes) {
  const float tiny = 1e-39f;  // subnormal: 1 / tiny overflows float
  const std::vector<float> w{tiny, -tiny / 2, 0.0f};
  std::vector<std::int8_t> q(3);
  std::vector<float> scb(1);
  bnb::quantize_int8_rows(w.data(), 1, 3, q.data(), scb.data());
  EXPECT_EQ(scb[0], tiny);
  EXPECT_EQ(q, (std::vector<std::int8_t>{127, -64, 0}));
}

// Inputs with NaN or Inf outside the outlier columns have no int8 code: their
// row's outputs are NaN, as in float; other rows are unaffected. A subnormal
// row quantizes by division (its reciprocal scale overflows).
TEST(Bnb, Int8MatmulOfNonFiniteAndSubnormalInputs) {
  const auto weight =
      Int8RowwiseWeight::from_parts(2, 2, {127, 64, -127, 32}, {1.0f, 1.0f}, 0.0f, "w");
  const float tiny = 1e-39f;
  const std::vector<float> x{std::nanf(""), 1.0f,   // row 0: NaN
                             1.0f,          0.5f,   // row 1: finite
                             tiny,          0.0f};  // row 2: subnormal
  std::vector<float> y(6);
  weight->matmul(x.data(), 3, y.data());
  EXPECT_TRUE(std::isnan(y[0]));
  EXPECT_TRUE(std::isnan(y[1]));
  EXPECT_FLOAT_EQ(y[2], (127.0f * 127.0f + 64.0f * 64.0f) / (127.0f * 127.0f));
  // Row 2 quantizes to codes [127, 0]: y = tiny * [127, -127] / 127, to 1%
  // (tiny / 127^2 keeps only ~7 bits as a subnormal).
  EXPECT_NEAR(y[4], tiny, 0.01f * tiny);
  EXPECT_NEAR(y[5], -tiny, 0.01f * tiny);
}

std::vector<float> random_values(std::size_t n, unsigned seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 0.05f);
  std::vector<float> values(n);
  for (auto& value : values) value = normal(rng);
  return values;
}

class Bnb4Kernels : public ::testing::TestWithParam<FourBitType> {};

TEST_P(Bnb4Kernels, Avx2AndGemmMatchTheScalarReference) {
  const std::int64_t out = 67, in = 192;
  const auto w = random_values(static_cast<std::size_t>(out * in), 7);
  const auto weight =
      Bnb4Weight::quantize(w.data(), DType::F32, out, in, GetParam(), 64, true, "w");
  std::vector<float> dense(static_cast<std::size_t>(out * in));
  cpu::bnb4_dequantize_rows(weight->matrix(), 0, out, dense.data(), cpu::KernelIsa::Scalar);
  std::vector<float> dense_avx2(dense.size());
  weight->dequantize_rows(0, out, dense_avx2.data());
  EXPECT_EQ(dense, dense_avx2);
  for (const std::int64_t rows : {1, 3, 8, 20}) {
    const auto x = random_values(static_cast<std::size_t>(rows * in), 11);
    std::vector<double> expected(static_cast<std::size_t>(rows * out), 0.0);
    for (std::int64_t r = 0; r < rows; ++r) {
      for (std::int64_t o = 0; o < out; ++o) {
        for (std::int64_t i = 0; i < in; ++i) {
          expected[static_cast<std::size_t>(r * out + o)] +=
              double{x[static_cast<std::size_t>(r * in + i)]} *
              dense[static_cast<std::size_t>(o * in + i)];
        }
      }
    }
    for (const auto isa : {cpu::KernelIsa::Scalar, cpu::KernelIsa::Avx2}) {
      std::vector<float> gemv(expected.size()), gemm(expected.size());
      cpu::bnb4_gemv(weight->matrix(), x.data(), rows, gemv.data(), isa);
      cpu::bnb4_gemm(weight->matrix(), x.data(), rows, gemm.data(), isa);
      for (std::size_t k = 0; k < expected.size(); ++k) {
        EXPECT_NEAR(gemv[k], expected[k], 1e-4) << "rows " << rows << " at " << k;
        EXPECT_NEAR(gemm[k], expected[k], 1e-4) << "rows " << rows << " at " << k;
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Types, Bnb4Kernels, ::testing::Values(FourBitType::NF4, FourBitType::FP4),
                         [](const auto& test_info) {
                           return std::string(bnb::four_bit_type_name(test_info.param));
                         });

TEST(Bnb, Int8Avx2MatchesReference) {
  const std::int64_t out = 33, in = 100;
  auto w = random_values(static_cast<std::size_t>(out * in), 3);
  const auto weight = Int8RowwiseWeight::quantize(w.data(), DType::F32, out, in, 6.0f, "w");
  auto x = random_values(static_cast<std::size_t>(5 * in), 5);
  x[17] = 7.0f;  // an outlier column
  std::vector<float> fast(static_cast<std::size_t>(5 * out)), reference(fast.size());
  weight->matmul(x.data(), 5, fast.data());
  weight->matmul_reference(x.data(), 5, reference.data());
  EXPECT_EQ(fast, reference);  // integer dot products: exact
}

TEST(Bnb, MalformedPartsAreRefusedByName) {
  EXPECT_THROW(Bnb4Weight::from_parts(2, 64, FourBitType::NF4, 64, DType::BF16,
                                      std::vector<std::uint8_t>(10), std::vector<float>(16),
                                      std::vector<float>(2), std::nullopt, "m.weight"),
               Error);
  EXPECT_THROW(Bnb4Weight::from_parts(2, 64, FourBitType::NF4, 48, DType::BF16,
                                      std::vector<std::uint8_t>(64), std::vector<float>(16),
                                      std::vector<float>(2), std::nullopt, "m.weight"),
               Error);
  const std::vector<float> bad{std::nanf(""), 1.0f};
  EXPECT_THROW(Bnb4Weight::quantize(bad.data(), DType::F32, 1, 2, FourBitType::NF4, 64, true, "m"),
               Error);
}

}  // namespace
}  // namespace uq

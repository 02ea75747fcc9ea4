// Symmetric per-channel weights (quanto qint8, custom int8/int4) and quanto's
// qint4/qint2 packing and affine numerics, on hand-derived cases; the AVX2
// kernels against the scalar reference.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "core/error.hpp"
#include "kernels/cpu/symmetric_kernels.hpp"
#include "quant/affine_weight.hpp"
#include "quant/quanto_affine.hpp"
#include "quant/symmetric_weight.hpp"

namespace uq {
namespace {

std::vector<int> signed_codes(const SymmetricWeight& weight) {
  const auto matrix = weight.matrix();
  std::vector<int> codes;
  for (std::int64_t o = 0; o < matrix.out; ++o) {
    for (std::int64_t i = 0; i < matrix.in; ++i) {
      codes.push_back(matrix.code(matrix.codes + o * matrix.bytes_per_row(), i));
    }
  }
  return codes;
}

TEST(SymmetricQuantize, Int8RoundsHalfToEven) {
  // absmax 254 -> scale 2; 127/2 = 63.5 -> 64, 3/2 = 1.5 -> 2, 5/2 = 2.5 -> 2.
  const std::vector<float> w{127.0f, -254.0f, 3.0f, 5.0f};
  const auto weight = SymmetricWeight::quantize(w.data(), DType::F32, 1, 4, 8, DType::F32, "w");
  EXPECT_EQ(signed_codes(*weight), (std::vector<int>{64, -127, 2, 2}));
  std::vector<float> back(4);
  weight->dequantize_rows(0, 1, back.data());
  EXPECT_EQ(back, (std::vector<float>{128.0f, -254.0f, 4.0f, 4.0f}));
  EXPECT_EQ(weight->describe(), "symmetric int8 per-channel");
}

TEST(SymmetricQuantize, Int4PacksLowNibbleFirstWithOffsetEight) {
  // absmax 14 -> scale 2; codes 4, -7, 2, 2 stored as 12, 1, 10, 10.
  const std::vector<float> w{7.0f, -14.0f, 3.0f, 5.0f, 7.0f, -14.0f, 3.0f, 0.0f};
  const auto even = SymmetricWeight::quantize(w.data(), DType::F32, 2, 4, 4, DType::F32, "w");
  EXPECT_EQ(std::vector<std::uint8_t>(even->codes().begin(), even->codes().end()),
            (std::vector<std::uint8_t>{0x1C, 0xAA, 0x1C, 0x8A}));
  // Odd rows: the last byte's high nibble stays 0.
  const auto odd = SymmetricWeight::quantize(w.data(), DType::F32, 1, 3, 4, DType::F32, "w");
  EXPECT_EQ(std::vector<std::uint8_t>(odd->codes().begin(), odd->codes().end()),
            (std::vector<std::uint8_t>{0x1C, 0x0A}));
  EXPECT_EQ(signed_codes(*odd), (std::vector<int>{4, -7, 2}));
}

TEST(SymmetricQuantize, ZeroRowAndBadInput) {
  const std::vector<float> zeros(8, 0.0f);
  const auto weight = SymmetricWeight::quantize(zeros.data(), DType::F32, 1, 8, 8, DType::F32, "w");
  EXPECT_EQ(signed_codes(*weight), std::vector<int>(8, 0));
  std::vector<float> bad{1.0f, NAN};
  EXPECT_THROW(SymmetricWeight::quantize(bad.data(), DType::F32, 1, 2, 8, DType::F32, "t.weight"),
               Error);
  EXPECT_THROW(SymmetricWeight::quantize(zeros.data(), DType::F32, 1, 8, 3, DType::F32, "w"),
               Error);
  const std::vector<std::byte> codes(7), scales(4);
  EXPECT_THROW(SymmetricWeight::from_codes(1, 8, 8, codes, DType::F32, scales, "w"), Error);
}

TEST(SymmetricQuantize, Bf16ArithmeticRoundsTheScaleAsTorchDoes) {
  // absmax 1.0: 1/127 in bf16 is 0.00787353515625 (not 0.0078740157...).
  const std::vector<float> w{1.0f, 0.5f};
  const auto weight = SymmetricWeight::quantize(w.data(), DType::F32, 1, 2, 8, DType::BF16, "w");
  const auto scales = weight->scale_bytes();
  ASSERT_EQ(scales.size(), 2u);
  std::uint16_t bits;
  std::memcpy(&bits, scales.data(), 2);
  EXPECT_EQ(bf16_to_f32(bits), 0.00787353515625f);
  // 1 / 0.00787353515625 = 127.006... -> 127; 0.5 / s = 63.503 -> bf16 63.5 -> 64 (half even).
  EXPECT_EQ(signed_codes(*weight), (std::vector<int>{127, 64}));
}

class SymmetricKernels : public ::testing::TestWithParam<std::tuple<int, int, int>> {};

TEST_P(SymmetricKernels, Avx2MatchesScalarAndDequantizedReference) {
  const auto [bits, in, rows] = GetParam();
  const std::int64_t out = 37;
  std::mt19937 rng(7);
  std::normal_distribution<float> normal;
  std::vector<float> w(static_cast<std::size_t>(out * in)), x(static_cast<std::size_t>(rows * in));
  for (auto& v : w) v = normal(rng);
  for (auto& v : x) v = normal(rng);
  const auto weight =
      SymmetricWeight::quantize(w.data(), DType::F32, out, in, bits, DType::F32, "w");
  const auto matrix = weight->matrix();
  std::vector<float> dense(w.size()), dense_avx(w.size());
  cpu::detail::symmetric_dequantize_rows_scalar(matrix, 0, out, dense.data());
  cpu::detail::symmetric_dequantize_rows_avx2(matrix, 0, out, dense_avx.data());
  EXPECT_EQ(dense, dense_avx);
  std::vector<float> reference(static_cast<std::size_t>(rows * out));
  for (int r = 0; r < rows; ++r) {
    for (std::int64_t o = 0; o < out; ++o) {
      double sum = 0;
      for (int i = 0; i < in; ++i) sum += double(dense[o * in + i]) * x[r * in + i];
      reference[r * out + o] = static_cast<float>(sum);
    }
  }
  for (auto isa : {cpu::KernelIsa::Scalar, cpu::KernelIsa::Avx2}) {
    std::vector<float> gemv(reference.size()), gemm(reference.size());
    cpu::symmetric_gemv(matrix, x.data(), rows, gemv.data(), isa);
    cpu::symmetric_gemm(matrix, x.data(), rows, gemm.data(), isa);
    for (std::size_t k = 0; k < reference.size(); ++k) {
      const float tolerance = 1e-4f * (1.0f + std::fabs(reference[k]));
      EXPECT_NEAR(gemv[k], reference[k], tolerance) << k;
      EXPECT_NEAR(gemm[k], reference[k], tolerance) << k;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Shapes, SymmetricKernels,
                         ::testing::Combine(::testing::Values(8, 4), ::testing::Values(256, 77, 5),
                                            ::testing::Values(1, 3, 9)));

// ---- quanto qint4 / qint2 --------------------------------------------------

TEST(QuantoPacking, Int4SplitsRowsInHalves) {
  // byte[r, c] = q[r, c] | q[r + R/2, c] << 4
  const std::vector<std::uint8_t> codes{1, 2, 3, 4, 5, 6, 7, 8};  // [4, 2]
  const auto packed = quanto_pack(codes, 4, 2, 4);
  EXPECT_EQ(packed, (std::vector<std::uint8_t>{0x51, 0x62, 0x73, 0x84}));
  EXPECT_EQ(quanto_unpack(packed, 4, 2, 4), codes);
}

TEST(QuantoPacking, Int2SplitsRowsInQuarters) {
  // R = 4: one byte row, row k at shift 2k: 1 | 2<<2 | 3<<4 | 0<<6 = 0x39.
  const std::vector<std::uint8_t> four{1, 2, 3, 0};
  EXPECT_EQ(quanto_pack(four, 4, 1, 2), (std::vector<std::uint8_t>{0x39}));
  // R = 5: ceil(5/4) = 2 byte rows; row r -> byte row r % 2, shift 2*(r / 2).
  const std::vector<std::uint8_t> five{1, 2, 3, 1, 2};
  const auto packed = quanto_pack(five, 5, 1, 2);
  EXPECT_EQ(packed, (std::vector<std::uint8_t>{1 | 3 << 2 | 2 << 4, 2 | 1 << 2}));
  EXPECT_EQ(quanto_unpack(packed, 5, 1, 2), five);
  EXPECT_THROW(quanto_unpack(packed, 9, 1, 2), Error);
}

TEST(QuantoPacking, GroupSizeRule) {
  EXPECT_EQ(quanto_group_size(4096), 128);
  EXPECT_EQ(quanto_group_size(192), 96);
  EXPECT_EQ(quanto_group_size(320), 64);
  EXPECT_EQ(quanto_group_size(160), 32);
  EXPECT_EQ(quanto_group_size(130), 130);  // no divisor: per channel
  EXPECT_EQ(quanto_group_size(64), 64);    // <= 128: per channel
}

TEST(QuantoAffine, ScaleShiftAndCodesOnAHandCase) {
  // Row 0: min -1, max 14 -> scale 15/15 = 1, shift 1, q = w + 1 = i % 16.
  // Row 1: constant 3 -> scale 0, shift -3, codes 0, dequantized exactly 3.
  std::vector<float> w(64);
  for (int i = 0; i < 32; ++i) w[i] = static_cast<float>(i % 16 - 1);
  for (int i = 32; i < 64; ++i) w[i] = 3.0f;
  std::string note;
  const auto weight = quanto_affine_quantize(w.data(), DType::F32, 2, 32, 4, "w", note);
  ASSERT_NE(weight, nullptr) << note;
  EXPECT_EQ(weight->group_size(), 32);
  const auto codes = affine_codes(*weight);
  for (int i = 0; i < 32; ++i) EXPECT_EQ(codes[i], i % 16) << i;
  for (int i = 32; i < 64; ++i) EXPECT_EQ(codes[i], 0) << i;
  const auto shift = quanto_shift_bytes(*weight);
  std::vector<float> shifts(2);
  convert_to_f32(DType::F32, shift.data(), 2, shifts.data());
  EXPECT_EQ(shifts, (std::vector<float>{1.0f, -3.0f}));
  std::vector<float> back(64);
  weight->dequantize_rows(0, 2, back.data());
  EXPECT_EQ(back, w);
  // A row the affine kernels cannot hold (per channel, 40 wide) stays float.
  std::vector<float> narrow(40, 1.0f);
  EXPECT_EQ(quanto_affine_quantize(narrow.data(), DType::F32, 1, 40, 4, "n", note), nullptr);
  EXPECT_NE(note.find("40"), std::string::npos);
}

}  // namespace
}  // namespace uq

// ggml block formats: hand-derived blocks for Q4_0, Q8_0 and Q4_K (bytes and
// values), round-trip error bounds for every type, and the GgmlWeight kernels
// (GEMV and tiled GEMM) against a double-precision reference.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "core/dtype.hpp"
#include "core/error.hpp"
#include "kernels/cpu/affine_gemv_int8.hpp"
#include "quant/ggml_blocks.hpp"
#include "quant/ggml_weight.hpp"

namespace uq {
namespace {

std::vector<std::uint8_t> quantize(GgmlType type, const std::vector<float>& x) {
  std::vector<std::byte> out(ggml_row_bytes(type, static_cast<std::int64_t>(x.size())));
  ggml_quantize_row(type, x.data(), static_cast<std::int64_t>(x.size()), out.data());
  std::vector<std::uint8_t> bytes(out.size());
  std::memcpy(bytes.data(), out.data(), out.size());
  return bytes;
}

std::vector<float> dequantize(GgmlType type, const std::vector<std::uint8_t>& bytes,
                              std::int64_t count) {
  std::vector<float> out(static_cast<std::size_t>(count));
  ggml_dequantize_row(type, reinterpret_cast<const std::byte*>(bytes.data()), count, out.data());
  return out;
}

std::uint16_t u16_at(const std::vector<std::uint8_t>& bytes, std::size_t offset) {
  return static_cast<std::uint16_t>(bytes[offset] | (bytes[offset + 1] << 8));
}

// x = -16, -15, ..., 15.
std::vector<float> ramp32() {
  std::vector<float> x(32);
  for (int j = 0; j < 32; ++j) x[static_cast<std::size_t>(j)] = static_cast<float>(j - 16);
  return x;
}

TEST(GgmlBlocks, Q4_0HandDerived) {
  // max = -16 (largest magnitude, signed) -> d = -16 / -8 = 2, id = 0.5;
  // q = min(15, (int)(x * 0.5 + 8.5)); byte j = q(x[j]) | q(x[j + 16]) << 4.
  const auto bytes = quantize(GgmlType::Q4_0, ramp32());
  ASSERT_EQ(bytes.size(), 18u);
  EXPECT_EQ(u16_at(bytes, 0), 0x4000);  // f16 2.0
  EXPECT_EQ(bytes[2 + 0], 0x80);        // x=-16 -> 0, x=0 -> 8
  EXPECT_EQ(bytes[2 + 1], 0x91);        // x=-15 -> 1 (-7.5 + 8.5), x=1 -> 9 (9.0)
  EXPECT_EQ(bytes[2 + 2], 0x91);        // x=-14 -> 1 (1.5), x=2 -> 9 (9.5)
  EXPECT_EQ(bytes[2 + 15], 0xF8);       // x=-1 -> 8 (8.0), x=15 -> 16 clamped to 15
  const auto values = dequantize(GgmlType::Q4_0, bytes, 32);
  EXPECT_FLOAT_EQ(values[0], -16.0f);  // (0 - 8) * 2
  EXPECT_FLOAT_EQ(values[1], -14.0f);  // (1 - 8) * 2
  EXPECT_FLOAT_EQ(values[16], 0.0f);
  EXPECT_FLOAT_EQ(values[31], 14.0f);  // (15 - 8) * 2

  // A positive extreme gives a negative d: x = [8, 0, ...] -> d = -1, code 0.
  std::vector<float> positive(32, 0.0f);
  positive[0] = 8.0f;
  const auto positive_bytes = quantize(GgmlType::Q4_0, positive);
  EXPECT_EQ(u16_at(positive_bytes, 0), 0xBC00);  // f16 -1.0
  EXPECT_EQ(positive_bytes[2], 0x80);            // 8 -> 0, 0 -> 8
  EXPECT_FLOAT_EQ(dequantize(GgmlType::Q4_0, positive_bytes, 32)[0], 8.0f);
}

TEST(GgmlBlocks, Q8_0HandDerived) {
  // d = 16 / 127 = 0.12598..., stored f16 0x3008 = 0.1259765625; id = 127/16;
  // q = round(x * id): -16 -> -127, 1 -> round(7.9375) = 8, 2 -> round(15.875) = 16.
  const auto bytes = quantize(GgmlType::Q8_0, ramp32());
  ASSERT_EQ(bytes.size(), 34u);
  EXPECT_EQ(u16_at(bytes, 0), 0x3008);
  EXPECT_EQ(static_cast<std::int8_t>(bytes[2 + 0]), -127);
  EXPECT_EQ(static_cast<std::int8_t>(bytes[2 + 16]), 0);
  EXPECT_EQ(static_cast<std::int8_t>(bytes[2 + 17]), 8);
  EXPECT_EQ(static_cast<std::int8_t>(bytes[2 + 18]), 16);
  EXPECT_EQ(static_cast<std::int8_t>(bytes[2 + 31]), 119);  // 15 * 7.9375 = 119.06
  const auto values = dequantize(GgmlType::Q8_0, bytes, 32);
  EXPECT_FLOAT_EQ(values[17], 8 * 0.1259765625f);
  EXPECT_FLOAT_EQ(values[0], -127 * 0.1259765625f);
}

TEST(GgmlBlocks, Q4_KHandDerived) {
  // Every 32-element sub-block holds (i % 16) - 4: min -4, max 11, so the
  // first guess scale (max - min) / 15 = 1 with min -4 fits exactly and no
  // searched scale beats zero error. Scales and mins are all 1 and 4, so the
  // 6-bit codes are 63 for both: d = f16(1/63) = 0x2410, dmin = f16(4/63) =
  // 0x2C10, and all 12 packed scale bytes are 0xFF. Levels re-derived from the
  // stored d*63 = 0.999755859375 and dmin*63 = 3.9990234375 are x + 4.
  std::vector<float> x(256);
  for (std::size_t i = 0; i < 256; ++i) x[i] = static_cast<float>(i % 16) - 4.0f;
  const auto bytes = quantize(GgmlType::Q4_K, x);
  ASSERT_EQ(bytes.size(), 144u);
  EXPECT_EQ(u16_at(bytes, 0), 0x2410);
  EXPECT_EQ(u16_at(bytes, 2), 0x2C10);
  for (std::size_t j = 0; j < 12; ++j) EXPECT_EQ(bytes[4 + j], 0xFF) << j;
  // 64 elements per 32 bytes: element l low nibble, element l + 32 high nibble.
  for (std::size_t l = 0; l < 128; ++l) {
    const std::uint8_t level = static_cast<std::uint8_t>(l % 16);
    EXPECT_EQ(bytes[16 + l], level | (level << 4)) << l;
  }
  const auto values = dequantize(GgmlType::Q4_K, bytes, 256);
  for (std::size_t i = 0; i < 256; ++i) {
    EXPECT_FLOAT_EQ(values[i], 0.999755859375f * static_cast<float>(i % 16) - 3.9990234375f) << i;
  }

  // Without an offset (min 0) the mins are 0: dmin = 0 and the mins' 6-bit
  // codes vanish, leaving 0xFF (scale 63 with its top bits) in bytes 0-3,
  // 0x00 in 4-7 and 0x0F (low scale bits) in 8-11.
  for (std::size_t i = 0; i < 256; ++i) x[i] = static_cast<float>(i % 16);
  const auto plain = quantize(GgmlType::Q4_K, x);
  EXPECT_EQ(u16_at(plain, 2), 0x0000);
  const std::vector<std::uint8_t> scales(plain.begin() + 4, plain.begin() + 16);
  EXPECT_EQ(scales, (std::vector<std::uint8_t>{255, 255, 255, 255, 0, 0, 0, 0, 15, 15, 15, 15}));
}

TEST(GgmlBlocks, AllZeroBlocksStayZero) {
  const std::vector<float> zeros(256, 0.0f);
  for (const auto type : {GgmlType::Q4_0, GgmlType::Q4_1, GgmlType::Q5_0, GgmlType::Q8_0,
                          GgmlType::Q4_K, GgmlType::Q6_K}) {
    const auto values = dequantize(type, quantize(type, zeros), 256);
    for (const float v : values) ASSERT_EQ(v, 0.0f) << ggml_type_name(type);
  }
}

// A block of subnormal values has a scale whose reciprocal overflows: x*inf
// gave inf or NaN codes, undefined as integers. The scale is 0 once stored as
// f16, so such blocks decode to zeros.
TEST(GgmlBlocks, SubnormalBlocksDecodeToZero) {
  std::vector<float> tiny(256);
  for (std::size_t i = 0; i < tiny.size(); ++i) tiny[i] = (i % 3 == 0 ? -1e-39f : 1e-39f);
  tiny[5] = 0.0f;
  for (const auto type : {GgmlType::Q4_0, GgmlType::Q4_1, GgmlType::Q5_0, GgmlType::Q8_0,
                          GgmlType::Q4_K, GgmlType::Q6_K}) {
    const auto values = dequantize(type, quantize(type, tiny), 256);
    for (const float v : values) ASSERT_EQ(v, 0.0f) << ggml_type_name(type);
  }
}

// Round trip of N(0, 1) rows: mean squared error relative to the signal, with
// bounds a little above what each format gives on such data, and the
// F16/BF16 element formats within their rounding.
TEST(GgmlBlocks, RoundTripErrorPerType) {
  std::mt19937 rng(7);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> x(256 * 16);
  for (auto& v : x) v = normal(rng);
  const struct {
    GgmlType type;
    double max_relative_mse;
  } cases[] = {{GgmlType::Q8_0, 1e-4}, {GgmlType::Q6_K, 3e-3},   {GgmlType::Q5_0, 1.5e-2},
               {GgmlType::Q4_1, 3e-2}, {GgmlType::Q4_K, 1.5e-2}, {GgmlType::Q4_0, 4e-2},
               {GgmlType::F16, 1e-6},  {GgmlType::BF16, 2e-5}};
  for (const auto& c : cases) {
    const auto values =
        dequantize(c.type, quantize(c.type, x), static_cast<std::int64_t>(x.size()));
    double error = 0, signal = 0;
    for (std::size_t i = 0; i < x.size(); ++i) {
      error += (values[i] - x[i]) * (values[i] - x[i]);
      signal += x[i] * x[i];
    }
    EXPECT_LT(error / signal, c.max_relative_mse) << ggml_type_name(c.type);
    EXPECT_GT(error / signal, 0.0) << ggml_type_name(c.type);
  }
}

TEST(GgmlBlocks, TypeNamesSizesAndBadCounts) {
  EXPECT_EQ(ggml_type_size(GgmlType::Q4_K), 144u);
  EXPECT_EQ(ggml_type_size(GgmlType::Q6_K), 210u);
  EXPECT_EQ(ggml_type_size(GgmlType::Q5_0), 22u);
  EXPECT_EQ(ggml_row_bytes(GgmlType::Q4_0, 64), 36u);
  EXPECT_EQ(parse_ggml_type("q4_k"), GgmlType::Q4_K);
  EXPECT_FALSE(parse_ggml_type("Q3_K"));
  EXPECT_FALSE(ggml_type_from_code(13));  // Q5_K: not read here
  try {
    (void)ggml_row_bytes(GgmlType::Q4_K, 100);
    ADD_FAILURE() << "no error";
  } catch (const Error& error) {
    EXPECT_STREQ(error.what(),
                 "ggml type Q4_K: 100 elements is not a whole number of blocks of 256");
  }
}

// Exact float GEMV (1-4 rows, UQ_EXACT_GEMV; the int8-activation GEMV has its
// own bound in test_ggml_gemv_int8) and tiled GEMM (more rows) against
// dequantize + double sums.
TEST(GgmlWeight, MatmulMatchesDequantizedReference) {
  cpu::set_exact_gemv(true);
  std::mt19937 rng(3);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  const std::int64_t out = 96, in = 512;
  std::vector<float> w(static_cast<std::size_t>(out * in));
  for (auto& v : w) v = normal(rng);
  for (const auto type : {GgmlType::Q4_0, GgmlType::Q4_1, GgmlType::Q5_0, GgmlType::Q8_0,
                          GgmlType::Q4_K, GgmlType::Q6_K, GgmlType::F16, GgmlType::BF16}) {
    const GgmlWeight weight = GgmlWeight::quantize(type, out, in, w.data());
    std::vector<float> dense(w.size());
    weight.dequantize_rows(0, out, dense.data());
    for (const std::int64_t rows : {1, 3, 9}) {
      std::vector<float> x(static_cast<std::size_t>(rows * in));
      for (auto& v : x) v = normal(rng);
      std::vector<float> y(static_cast<std::size_t>(rows * out));
      weight.matmul(x.data(), rows, y.data());
      for (std::int64_t r = 0; r < rows; ++r) {
        for (std::int64_t o = 0; o < out; ++o) {
          double sum = 0;
          for (std::int64_t i = 0; i < in; ++i) {
            sum += static_cast<double>(dense[static_cast<std::size_t>(o * in + i)]) *
                   x[static_cast<std::size_t>(r * in + i)];
          }
          ASSERT_NEAR(y[static_cast<std::size_t>(r * out + o)], sum, 1e-3 * (1 + std::fabs(sum)))
              << ggml_type_name(type) << " rows " << rows;
        }
      }
    }
    EXPECT_EQ(weight.storage_bytes(), ggml_row_bytes(type, in) * out);
  }
  cpu::set_exact_gemv(false);
}

}  // namespace
}  // namespace uq

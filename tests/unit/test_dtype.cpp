#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "core/dtype.hpp"

namespace uq {
namespace {

TEST(DType, NamesRoundTrip) {
  for (auto dtype : {DType::F64, DType::F32, DType::F16, DType::BF16, DType::I64, DType::I32,
                     DType::I16, DType::I8, DType::U8, DType::U32, DType::BOOL, DType::F8_E4M3,
                     DType::F8_E5M2}) {
    EXPECT_EQ(parse_dtype(dtype_name(dtype)), dtype);
  }
  EXPECT_FALSE(parse_dtype("F128").has_value());
  EXPECT_EQ(dtype_size(DType::BF16), 2u);
  EXPECT_EQ(dtype_size(DType::F8_E5M2), 1u);
}

TEST(DType, Bf16RoundsToNearestEven) {
  EXPECT_EQ(f32_to_bf16(1.0f), 0x3f80);
  // 1 + 2^-8 is exactly half way between bf16 1.0 and 1.0078125: ties to even (1.0).
  EXPECT_EQ(f32_to_bf16(1.00390625f), 0x3f80);
  // 1 + 3*2^-8 is half way between 1.0078125 (odd) and 1.015625 (even).
  EXPECT_EQ(f32_to_bf16(1.01171875f), 0x3f82);
  EXPECT_TRUE(std::isnan(bf16_to_f32(f32_to_bf16(std::numeric_limits<float>::quiet_NaN()))));
  EXPECT_EQ(bf16_to_f32(0xc000), -2.0f);
}

TEST(DType, F16KnownValues) {
  EXPECT_EQ(f32_to_f16(1.0f), 0x3c00);
  EXPECT_EQ(f32_to_f16(-2.0f), 0xc000);
  EXPECT_EQ(f32_to_f16(65504.0f), 0x7bff);
  EXPECT_EQ(f32_to_f16(1e6f), 0x7c00);                      // overflow to inf
  EXPECT_EQ(f16_to_f32(0x0001), std::ldexp(1.0f, -24));     // smallest subnormal
  EXPECT_EQ(f32_to_f16(std::ldexp(1.0f, -25)), 0x0000);     // tie to even: zero
  EXPECT_EQ(f32_to_f16(std::ldexp(3.0f, -25)), 0x0002);     // 1.5 ulp -> 2
  EXPECT_EQ(f32_to_f16(1.0f + std::ldexp(1.0f, -11)), 0x3c00);  // tie to even
  for (std::uint32_t bits = 0; bits < 0x7c00; ++bits) {
    const auto half = static_cast<std::uint16_t>(bits);
    ASSERT_EQ(f32_to_f16(f16_to_f32(half)), half) << bits;
  }
}

TEST(DType, Fp8KnownValues) {
  EXPECT_EQ(fp8_e4m3_to_f32(0x7e), 448.0f);  // largest finite e4m3fn
  EXPECT_TRUE(std::isnan(fp8_e4m3_to_f32(0x7f)));
  EXPECT_EQ(f32_to_fp8_e4m3(1000.0f), 0x7e);  // saturates
  EXPECT_EQ(fp8_e4m3_to_f32(0x01), std::ldexp(1.0f, -9));
  EXPECT_EQ(fp8_e5m2_to_f32(0x7b), 57344.0f);
  EXPECT_EQ(f32_to_fp8_e5m2(1e6f), 0x7c);  // inf
  for (std::uint32_t bits = 0; bits < 0x7f; ++bits) {
    const auto byte = static_cast<std::uint8_t>(bits);
    ASSERT_EQ(f32_to_fp8_e4m3(fp8_e4m3_to_f32(byte)), byte) << bits;
    ASSERT_EQ(f32_to_fp8_e4m3(-fp8_e4m3_to_f32(byte)), byte | 0x80) << bits;
  }
  for (std::uint32_t bits = 0; bits < 0x7c; ++bits) {
    const auto byte = static_cast<std::uint8_t>(bits);
    ASSERT_EQ(f32_to_fp8_e5m2(fp8_e5m2_to_f32(byte)), byte) << bits;
  }
}

}  // namespace
}  // namespace uq

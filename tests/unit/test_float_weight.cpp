#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "core/dtype.hpp"
#include "core/error.hpp"
#include "model/float_weight.hpp"

namespace uq {
namespace {

std::vector<float> random_values(std::size_t count, std::uint32_t seed) {
  std::mt19937 random(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> values(count);
  for (auto& value : values) value = normal(random);
  return values;
}

FloatWeight make_weight(DType dtype, std::int64_t out, std::int64_t in, std::uint32_t seed) {
  const auto values = random_values(static_cast<std::size_t>(out * in), seed);
  std::vector<std::byte> stored(values.size() * dtype_size(dtype));
  convert_from_f32(values.data(), values.size(), dtype, stored.data());
  return FloatWeight(dtype, out, in, stored.data());
}

double max_relative_error(const std::vector<float>& got, const std::vector<float>& want) {
  double worst = 0.0;
  double scale = 0.0;
  for (float value : want) scale = std::max(scale, static_cast<double>(std::fabs(value)));
  for (std::size_t i = 0; i < got.size(); ++i) {
    worst = std::max(worst, std::fabs(static_cast<double>(got[i]) - want[i]) / scale);
  }
  return worst;
}

class FloatWeightPaths : public ::testing::TestWithParam<DType> {};

// The GEMV (few rows) and blocked-sgemm (many rows) paths agree with the
// scalar reference, including widths that are not a multiple of 8.
TEST_P(FloatWeightPaths, AgreeWithReference) {
  for (const std::int64_t in : {64, 67}) {
    const FloatWeight weight = make_weight(GetParam(), 150, in, 7);
    for (const std::int64_t rows : {1, 3, 4, 5, 8, 9, 33}) {
      const auto x = random_values(static_cast<std::size_t>(rows * in), 11);
      std::vector<float> fast(static_cast<std::size_t>(rows * 150));
      std::vector<float> reference(fast.size());
      weight.matmul(x.data(), rows, fast.data());
      weight.matmul_reference(x.data(), rows, reference.data());
      EXPECT_LT(max_relative_error(fast, reference), 1e-5) << "rows " << rows << " in " << in;
    }
  }
}

TEST_P(FloatWeightPaths, DequantizeRowsGivesStoredValues) {
  const FloatWeight weight = make_weight(GetParam(), 10, 12, 3);
  std::vector<float> rows(3 * 12);
  weight.dequantize_rows(4, 3, rows.data());
  // Row 4 column 0 times the unit vector e_0 gives the same value via matmul.
  std::vector<float> unit(12, 0.0f);
  unit[0] = 1.0f;
  std::vector<float> column(10);
  weight.matmul(unit.data(), 1, column.data());
  EXPECT_EQ(rows[0], column[4]);
  EXPECT_EQ(weight.storage_bytes(), 10u * 12u * dtype_size(GetParam()));
  EXPECT_THROW(weight.dequantize_rows(8, 3, rows.data()), Error);
}

INSTANTIATE_TEST_SUITE_P(Dtypes, FloatWeightPaths,
                         ::testing::Values(DType::F32, DType::F16, DType::BF16));

TEST(FloatWeight, KeepsStoredDtype) {
  const FloatWeight weight = make_weight(DType::BF16, 4, 8, 1);
  EXPECT_EQ(weight.describe(), "bf16");
  EXPECT_EQ(weight.storage_bytes(), 4u * 8u * 2u);
  const std::vector<std::int32_t> ints(4, 0);
  EXPECT_THROW(FloatWeight(DType::I32, 2, 2, ints.data()), Error);
}

}  // namespace
}  // namespace uq

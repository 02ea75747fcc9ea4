// make_synthetic_model: the preset's shapes, the requested formats, a spread of 0.02 in every
// format, and the same weights for the same seed.
#include <gtest/gtest.h>

#include <cmath>

#include "core/error.hpp"
#include "model/decoder.hpp"
#include "model/float_weight.hpp"
#include "model/synthetic_model.hpp"
#include "quant/affine_weight.hpp"

namespace {

double standard_deviation(const uq::Weight& weight) {
  std::vector<float> rows(static_cast<std::size_t>(8 * weight.in_features()));
  weight.dequantize_rows(0, 8, rows.data());
  double sum = 0.0;
  double squares = 0.0;
  for (const float v : rows) {
    sum += v;
    squares += double(v) * v;
  }
  const double n = static_cast<double>(rows.size());
  return std::sqrt(squares / n - (sum / n) * (sum / n));
}

TEST(SyntheticModel, ShapesFormatsAndSpread) {
  for (const int bits : {16, 8, 4, 3}) {
    uq::SyntheticModelOptions options;
    options.preset = "tiny";
    options.layers = 2;
    options.bits = bits;
    const auto model = uq::make_synthetic_model(options);
    EXPECT_EQ(model->config().hidden_size, 256);
    EXPECT_EQ(model->layers().size(), 2u);
    const auto weights = model->named_weights();
    ASSERT_EQ(weights.size(), 2u + 2u * 7u);  // embedding, 7 per layer, lm_head
    for (const auto& [path, weight] : weights) {
      if (bits == 16) {
        ASSERT_NE(dynamic_cast<const uq::FloatWeight*>(weight.get()), nullptr) << path;
      } else {
        const auto* affine = dynamic_cast<const uq::AffineWeight*>(weight.get());
        ASSERT_NE(affine, nullptr) << path;
        EXPECT_EQ(affine->bits(), bits);
        EXPECT_EQ(affine->group_size(), 64);
      }
      EXPECT_NEAR(standard_deviation(*weight), 0.02, 0.003) << path << " bits " << bits;
    }
  }
}

TEST(SyntheticModel, SameSeedSameModel) {
  uq::SyntheticModelOptions options;
  options.layers = 1;
  options.bits = 4;
  const std::vector<std::int32_t> ids = {1, 17, 300, 4095};
  const auto first = uq::make_synthetic_model(options)->forward(ids);
  EXPECT_EQ(uq::make_synthetic_model(options)->forward(ids), first);
  options.seed = 1;
  EXPECT_NE(uq::make_synthetic_model(options)->forward(ids), first);
}

TEST(SyntheticModel, RejectsBadOptions) {
  uq::SyntheticModelOptions options;
  options.bits = 9;
  EXPECT_THROW(uq::make_synthetic_model(options), uq::Error);
  options.bits = 4;
  options.preset = "llama9";
  EXPECT_THROW(uq::make_synthetic_model(options), uq::Error);
}

}  // namespace

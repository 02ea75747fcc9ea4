// The seed's example (DESIGN.md §1), written as a user would, through <uq/uq.hpp>.
#include <gtest/gtest.h>

#include <uq/uq.hpp>

#include "support/test_support.hpp"

namespace {

TEST(SeedApi, QuantizeSaveLoadCompare) {
  uq::test::TempDir dir;
  auto model = uq::load_model(uq::test::bundled_model());
  auto [qmodel, quantizer] = uq::quantize_model(model, {.bits = 4, .backend = "auto"});
  EXPECT_EQ(quantizer.report().backend, "mlx");
  EXPECT_FALSE(quantizer.report().backend_reason.empty());
  quantizer.save_model(*qmodel, dir / "model_quantized");
  auto again = quantizer.load_model(dir / "model_quantized");

  const auto ids = model->tokenizer()->encode("In the beginning God created the heaven");
  const auto original = model->forward(ids);
  const float similarity = uq::cosine_similarity(original, qmodel->forward(ids));
  EXPECT_GT(similarity, 0.99f);
  EXPECT_LT(similarity, 1.0f);
  EXPECT_EQ(uq::cosine_similarity(qmodel->forward(ids), again->forward(ids)), 1.0f);
  EXPECT_EQ(uq::cosine_similarity(original, original), 1.0f);
}

TEST(SeedApi, ConfigObjectAndPath) {
  uq::UnifiedQuantizationConfig cfg;
  cfg.backend = "mlx";
  cfg.default_bits = 4;
  cfg.layer_bits = {{"embed", 8}, {"lm_head", 8}, {"model.layers.0", 6}};
  auto [m2, q2] = uq::quantize_model(uq::test::bundled_model(), cfg);
  for (const auto& layer : q2.report().layers) {
    const int expected = layer.path == "model.embed_tokens" || layer.path == "lm_head" ? 8
                         : layer.path.starts_with("model.layers.0.")                   ? 6
                                                                                       : 4;
    EXPECT_EQ(layer.bits, expected) << layer.path;
  }
}

TEST(SeedApi, InvalidConfigThrowsUqError) {
  auto model = uq::load_model(uq::test::bundled_model());
  EXPECT_THROW(uq::quantize_model(model, {.bits = 9}), uq::Error);
  EXPECT_THROW(uq::quantize_model(model, {.bits = 4, .backend = "nope"}), uq::Error);
}

}  // namespace

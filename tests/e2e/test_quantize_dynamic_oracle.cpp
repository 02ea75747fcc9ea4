// The migration claim of docs/MIGRATION.md: on the same weights, our int8
// path (custom backend: int8 per output channel, float activations) stays
// closer to the float model than torch's quantize_dynamic (int8 per tensor,
// activations quantized per call), the call people migrate from.
#include <gtest/gtest.h>

#include <cmath>
#include <span>
#include <vector>

#include "api/metrics.hpp"
#include "api/quantize.hpp"
#include "io/safetensors.hpp"
#include "model/decoder.hpp"
#include "support/test_support.hpp"

namespace uq {
namespace {

TEST(QuantizeDynamicOracle, CustomInt8IsCloserToFloatThanTorch) {
  if (!test::python_available()) GTEST_SKIP() << "oracle venv not installed";
  test::TempDir dir;
  const auto oracle = test::run_oracle("quantize_dynamic_oracle.py", {dir.path().string()});
  ASSERT_EQ(oracle.exit_code, 0) << oracle.err;
  const auto file = SafetensorsFile::open(dir / "logits.safetensors");
  const TensorView ids_view = file->tensor("ids");
  const auto* first = reinterpret_cast<const std::int32_t*>(ids_view.data);
  const std::vector<std::int32_t> ids(first, first + ids_view.numel());
  const std::vector<float> reference = file->tensor("float").to_f32();
  const std::vector<float> torch_dynamic = file->tensor("dynamic").to_f32();

  // quantize_dynamic touches nn.Linear only: the embedding stays float here too.
  UnifiedQuantizationConfig config;
  config.backend = "custom";
  config.bits = 8;
  config.layer_bits = {{"embed", 16}};
  const auto [ours_model, quantizer] = quantize_model(test::bundled().model, config);
  const std::vector<float> ours = ours_model->forward(ids);
  const std::int64_t vocab = ours_model->config().vocab_size;

  const float cosine_ours = cosine_similarity(reference, ours);
  const float cosine_torch = cosine_similarity(reference, torch_dynamic);
  const double kl_ours = mean_kl_divergence(reference, ours, vocab);
  const double kl_torch = mean_kl_divergence(reference, torch_dynamic, vocab);
  RecordProperty("cosine_ours", std::to_string(cosine_ours));
  RecordProperty("cosine_torch", std::to_string(cosine_torch));
  RecordProperty("kl_ours", std::to_string(kl_ours));
  RecordProperty("kl_torch", std::to_string(kl_torch));
  // Both are int8 and close to float...
  EXPECT_GT(cosine_torch, 0.99f);
  EXPECT_GT(cosine_ours, 0.999f);
  // ...and per-channel scales with float activations lose less than torch's call.
  EXPECT_GT(cosine_ours, cosine_torch);
  EXPECT_LT(kl_ours, kl_torch / 2);
  std::printf("cosine vs float: ours %.6f, quantize_dynamic %.6f; KL: ours %.3g, torch %.3g\n",
              cosine_ours, cosine_torch, kl_ours, kl_torch);
}

}  // namespace
}  // namespace uq

// Small random llama / mistral / qwen2 models built by transformers
// (tests/oracle/hf_models.py): our logits and greedy continuations match.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>

#include "io/safetensors.hpp"
#include "io/tokenizer/tokenizer.hpp"
#include "model/decoder.hpp"
#include "support/test_support.hpp"

namespace uq {
namespace {

class HfOracleModels : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (!test::python_available()) return;
    directory_ = new test::TempDir();
    const auto result = test::run_oracle("hf_models.py", {directory_->path().string()});
    ASSERT_EQ(result.exit_code, 0) << result.err;
  }
  static void TearDownTestSuite() {
    delete directory_;
    directory_ = nullptr;
  }
  void SetUp() override {
    if (!test::python_available()) GTEST_SKIP() << "oracle venv not installed";
  }
  static const std::filesystem::path& dir() { return directory_->path(); }

  static inline test::TempDir* directory_ = nullptr;
};

void expect_matches_transformers(const std::filesystem::path& root, const std::string& family) {
  const auto model = load_model(root / family);
  const auto refs = SafetensorsFile::open(root / "logits.safetensors");
  const TensorView ids_tensor = refs->tensor(family + ".ids");
  std::vector<std::int32_t> ids(static_cast<std::size_t>(ids_tensor.numel()));
  std::memcpy(ids.data(), ids_tensor.data, ids.size() * sizeof(std::int32_t));
  const auto want = refs->tensor(family + ".logits").to_f32();
  const auto got = model->forward(ids);
  ASSERT_EQ(got.size(), want.size());
  EXPECT_LE(test::relative_l2(got, want), 1e-4) << family;

  std::ifstream in(root / "greedy.json");
  const auto greedy = nlohmann::json::parse(in)[family];
  const auto prompt = greedy["prompt_ids"].get<std::vector<std::int32_t>>();
  const auto expected = greedy["output_ids"].get<std::vector<std::int32_t>>();
  GenerationOptions options;
  options.max_new_tokens = static_cast<std::int64_t>(expected.size() - prompt.size());
  EXPECT_EQ(model->generate(prompt, options).ids, expected) << family;
}

TEST_F(HfOracleModels, LlamaWithBiasesAndLlama3Rope) {
  expect_matches_transformers(dir(), "llama");
}

TEST_F(HfOracleModels, MistralSlidingWindow) {
  expect_matches_transformers(dir(), "mistral");
  // The window (8) is shorter than the sequence (24): without it the logits differ.
  const auto model = load_model(dir() / "mistral");
  EXPECT_EQ(model->config().sliding_window, 8);
  ModelConfig unlimited = model->config();
  unlimited.layer_uses_sliding_window.assign(unlimited.num_hidden_layers, false);
  const Checkpoint checkpoint = Checkpoint::open(dir() / "mistral");
  const TensorSource tensors = checkpoint_tensors(checkpoint);
  const Model full_attention(unlimited, tensors, float_weights(tensors));
  std::vector<std::int32_t> ids(24);
  for (std::size_t i = 0; i < ids.size(); ++i) ids[i] = static_cast<std::int32_t>(7 + 13 * i);
  EXPECT_GT(test::relative_l2(full_attention.forward(ids), model->forward(ids)), 1e-2);
}

TEST_F(HfOracleModels, Qwen2TiedBf16WithBiases) {
  expect_matches_transformers(dir(), "qwen2");
  auto model = load_model(dir() / "qwen2");
  EXPECT_TRUE(model->config().tie_word_embeddings);
  EXPECT_EQ(model->embed_tokens().describe(), "bf16");
  EXPECT_EQ(&model->lm_head(), &model->embed_tokens());
  const auto slots = model->weight_slots();
  EXPECT_EQ(slots.front().tied_paths, std::vector<std::string>{"lm_head"});
  EXPECT_NE(slots.back().path, "lm_head");
  EXPECT_FALSE(model->layers()[0].q_bias.empty());
  EXPECT_TRUE(model->layers()[0].o_bias.empty());
}

// `uq eval --reference`: the cosine similarity (mean over windows of the
// flattened predicted logits) and KL(reference || model) (mean over predicted
// positions), recomputed here from the two models' logits.
TEST_F(HfOracleModels, EvalAgainstReferenceModel) {
  test::TempDir data;
  const std::string text =
      "In the beginning God created the heaven and the earth. And the earth "
      "was without form, and void; and darkness was upon the face of the deep.";
  std::ofstream(data / "text.txt") << text;
  const std::int64_t ctx = 16;
  const auto result = test::run_uq({"eval", test::bundled_model().string(), "--data",
                                    (data / "text.txt").string(), "--ctx", std::to_string(ctx),
                                    "--reference", (dir() / "llama").string(), "--json"});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  const auto report = nlohmann::json::parse(result.out);

  const auto model = load_model(test::bundled_model());
  const auto reference = load_model(dir() / "llama");
  const auto ids = model->tokenizer()->encode(text);
  const std::int64_t windows = static_cast<std::int64_t>(ids.size()) / ctx;
  const std::int64_t vocab = 4096;
  double cosine_sum = 0.0;
  double kl_sum = 0.0;
  for (std::int64_t w = 0; w < windows; ++w) {
    const auto window = std::span(ids).subspan(w * ctx, ctx);
    const auto ours = model->forward(window);
    const auto theirs = reference->forward(window);
    double dot = 0.0, norm_ours = 0.0, norm_theirs = 0.0;
    for (std::int64_t i = 0; i < (ctx - 1) * vocab; ++i) {
      dot += static_cast<double>(ours[i]) * theirs[i];
      norm_ours += static_cast<double>(ours[i]) * ours[i];
      norm_theirs += static_cast<double>(theirs[i]) * theirs[i];
    }
    cosine_sum += dot / std::sqrt(norm_ours * norm_theirs);
    for (std::int64_t t = 0; t + 1 < ctx; ++t) {
      double z_ours = 0.0, z_theirs = 0.0;
      for (std::int64_t v = 0; v < vocab; ++v) {
        z_ours += std::exp(static_cast<double>(ours[t * vocab + v]));
        z_theirs += std::exp(static_cast<double>(theirs[t * vocab + v]));
      }
      for (std::int64_t v = 0; v < vocab; ++v) {
        const double log_p = theirs[t * vocab + v] - std::log(z_theirs);
        const double log_q = ours[t * vocab + v] - std::log(z_ours);
        kl_sum += std::exp(log_p) * (log_p - log_q);
      }
    }
  }
  EXPECT_EQ(report["windows"].get<std::int64_t>(), windows);
  EXPECT_NEAR(report["cosine_similarity"].get<double>(), cosine_sum / static_cast<double>(windows),
              1e-5);
  EXPECT_NEAR(report["kl_divergence"].get<double>(),
              kl_sum / static_cast<double>(windows * (ctx - 1)), 1e-4);
  EXPECT_GT(report["kl_divergence"].get<double>(), 0.1);  // unrelated models
}

}  // namespace
}  // namespace uq

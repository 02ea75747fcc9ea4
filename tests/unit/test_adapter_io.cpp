// Adapters on disk: PEFT and mlx-lm layouts written and read back bitwise,
// the loaded adapters giving bitwise the same logits, and malformed
// directories rejected with the culprit named.
#include <gtest/gtest.h>

#include <random>

#include "core/error.hpp"
#include "io/atomic_file.hpp"
#include "model/decoder.hpp"
#include "support/test_support.hpp"
#include "train/adapter_io.hpp"
#include "train/lora_attach.hpp"

namespace uq {
namespace {

// The bundled model with trained-looking adapters (B random, not PEFT's zero).
std::shared_ptr<Model> adapted_model(std::uint64_t seed) {
  auto model = std::make_shared<Model>(*test::bundled().model);
  LoraConfig config;
  config.rank = 4;
  config.alpha = 8.0;
  std::mt19937 rng(static_cast<std::uint32_t>(seed));
  std::normal_distribution<float> normal(0.0f, 0.05f);
  for (const auto& named : attach_lora(*model, config, seed)) {
    for (auto& value : named.adapter->b) value = normal(rng);
  }
  return model;
}

AdapterSet adapter_set(const Model& model, AdapterFormat format) {
  AdapterSet set;
  set.format = format;
  set.config.rank = 4;
  set.config.alpha = 8.0;
  for (const auto& named : model.lora_parameters())
    set.adapters.emplace(named.path, *named.adapter);
  return set;
}

const std::vector<std::int32_t> kIds = {1, 200, 35, 900, 7, 4000, 12};

class AdapterRoundTrip : public ::testing::TestWithParam<AdapterFormat> {};

TEST_P(AdapterRoundTrip, SavedAndLoadedAdaptersGiveBitwiseTheSameLogits) {
  const auto model = adapted_model(3);
  const std::vector<float> logits = model->forward(kIds);
  test::TempDir dir;
  save_adapters(dir.path(), adapter_set(*model, GetParam()), 4);
  const AdapterSet loaded = load_adapters(dir.path());
  EXPECT_EQ(loaded.format, GetParam());
  EXPECT_EQ(loaded.config.rank, 4);
  EXPECT_DOUBLE_EQ(loaded.config.scale(), 2.0);
  ASSERT_EQ(loaded.adapters.size(), 28u);
  for (const auto& named : model->lora_parameters()) {
    const LoraAdapter& got = loaded.adapters.at(named.path);
    EXPECT_EQ(got.a, named.adapter->a) << named.path;
    EXPECT_EQ(got.b, named.adapter->b) << named.path;
    EXPECT_EQ(got.scale, named.adapter->scale);
  }
  auto reloaded = std::make_shared<Model>(*test::bundled().model);
  attach_adapter_directory(*reloaded, dir.path());
  EXPECT_EQ(reloaded->forward(kIds), logits);
  // And the adapters change the model: the logits differ from the base's.
  EXPECT_NE(test::bundled().model->forward(kIds), logits);
}

INSTANTIATE_TEST_SUITE_P(Layouts, AdapterRoundTrip,
                         ::testing::Values(AdapterFormat::Peft, AdapterFormat::MlxLm));

TEST(AdapterFiles, PeftLayoutHasTheDocumentedNamesShapesAndConfig) {
  const auto model = adapted_model(4);
  test::TempDir dir;
  save_adapters(dir.path(), adapter_set(*model, AdapterFormat::Peft), 4);
  const auto config = test::read_json(dir / "adapter_config.json");
  EXPECT_EQ(config["peft_type"], "LORA");
  EXPECT_EQ(config["r"], 4);
  EXPECT_EQ(config["lora_alpha"], 8.0);
  EXPECT_EQ(config["target_modules"].size(), 7u);  // the short names, every layer alike
  const auto file = SafetensorsFile::open(dir / "adapter_model.safetensors");
  const auto a = file->tensor("base_model.model.model.layers.2.mlp.down_proj.lora_A.weight");
  EXPECT_EQ(a.shape, (std::vector<std::int64_t>{4, 768}));
  const auto b = file->tensor("base_model.model.model.layers.2.mlp.down_proj.lora_B.weight");
  EXPECT_EQ(b.shape, (std::vector<std::int64_t>{256, 4}));
}

TEST(AdapterFiles, MlxLayoutHasTheDocumentedNamesShapesAndConfig) {
  const auto model = adapted_model(5);
  test::TempDir dir;
  save_adapters(dir.path(), adapter_set(*model, AdapterFormat::MlxLm), 4);
  const auto config = test::read_json(dir / "adapter_config.json");
  EXPECT_EQ(config["lora_parameters"]["rank"], 4);
  EXPECT_EQ(config["lora_parameters"]["scale"], 2.0);
  EXPECT_EQ(config["num_layers"], 4);
  const auto file = SafetensorsFile::open(dir / "adapters.safetensors");
  const auto a = file->tensor("model.layers.2.mlp.down_proj.lora_a");
  EXPECT_EQ(a.shape, (std::vector<std::int64_t>{768, 4}));
  const auto b = file->tensor("model.layers.2.mlp.down_proj.lora_b");
  EXPECT_EQ(b.shape, (std::vector<std::int64_t>{4, 256}));
  // lora_a is Aᵀ: element [i, k] is A[k, i].
  const auto values = a.to_f32();
  const LoraAdapter& adapter = *model->lora_parameters()[6 + 14].adapter;  // layer 2 down_proj
  EXPECT_EQ(values[5 * 4 + 3], adapter.a[3 * 768 + 5]);
}

TEST(AdapterFiles, MalformedDirectoriesNameTheCulprit) {
  test::TempDir dir;
  const auto expect_error = [&](const std::string& needle) {
    try {
      load_adapters(dir.path());
      ADD_FAILURE() << "no error, expected one naming " << needle;
    } catch (const Error& error) {
      EXPECT_NE(std::string(error.what()).find(needle), std::string::npos) << error.what();
    }
  };
  expect_error("adapter_config.json");
  write_file_atomic(dir / "adapter_config.json", R"({"peft_type": "LORA", "r": 4})");
  expect_error("neither");
  const auto model = adapted_model(6);
  save_adapters(dir.path(), adapter_set(*model, AdapterFormat::Peft), 4);
  write_file_atomic(dir / "adapter_config.json", R"({"peft_type": "PREFIX_TUNING", "r": 4})");
  expect_error("PREFIX_TUNING");
  write_file_atomic(dir / "adapter_config.json",
                    R"({"peft_type": "LORA", "r": 8, "lora_alpha": 16})");
  expect_error("rank r = 8");
  write_file_atomic(dir / "adapter_config.json", R"({"peft_type": "LORA", "lora_alpha": 16})");
  expect_error("\"r\"");
  // An adapter for a module the model lacks.
  write_file_atomic(dir / "adapter_config.json",
                    R"({"peft_type": "LORA", "r": 4, "lora_alpha": 8})");
  AdapterSet set = adapter_set(*model, AdapterFormat::Peft);
  set.adapters.emplace("model.layers.9.mlp.up_proj", set.adapters.begin()->second);
  save_adapters(dir.path(), set, 4);
  auto fresh = std::make_shared<Model>(*test::bundled().model);
  try {
    attach_adapter_directory(*fresh, dir.path());
    ADD_FAILURE() << "attached an adapter for a missing module";
  } catch (const Error& error) {
    EXPECT_NE(std::string(error.what()).find("model.layers.9.mlp.up_proj"), std::string::npos);
  }
  EXPECT_TRUE(fresh->lora_parameters().empty());  // nothing half-attached
}

}  // namespace
}  // namespace uq

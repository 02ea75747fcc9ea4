// The mlx backend end to end: quantize_model, perplexity against the
// simulated references, save/load, the mlx-lm layout both ways with real
// mlx-lm, mixed precision, and bad input through `uq quantize`.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>

#include "api/quantize.hpp"
#include "core/error.hpp"
#include "io/safetensors.hpp"
#include "io/tokenizer/tokenizer.hpp"
#include "model/decoder.hpp"
#include "model/perplexity.hpp"
#include "support/test_support.hpp"

namespace uq {
namespace {

using test::TempDir;

using test::read_json;
using test::read_text;

// refs.json quant_sim row for "affine b{bits} g{group}" with all_layers.
double simulated_ppl(int bits, int group_size) {
  const auto refs = read_json(test::source_path("tests/data/refs.json"));
  const std::string scheme = "affine b" + std::to_string(bits) + " g" + std::to_string(group_size);
  for (const auto& row : refs["quant_sim"]["rows"]) {
    if (row["scheme"] == scheme && row["all_layers"] == true) return row["val_ppl"].get<double>();
  }
  ADD_FAILURE() << "no quant_sim row for " << scheme;
  return 0.0;
}

double quantized_ppl(int bits, int group_size, std::map<std::string, int> layer_bits = {}) {
  UnifiedQuantizationConfig config;
  config.backend = "mlx";
  config.bits = bits;
  config.group_size = group_size;
  config.layer_bits = std::move(layer_bits);
  auto [model, quantizer] = quantize_model(test::bundled().model, config);
  return perplexity(*model, test::bundled().val_ids, 256).perplexity;
}

struct PplCase {
  int bits;
  int group_size;
  double tolerance;  // relative
};

class MlxPerplexity : public ::testing::TestWithParam<PplCase> {};

// Every layer quantized (embedding and lm_head too), against the float32
// fake-quant simulation that follows MLX's rules.
TEST_P(MlxPerplexity, MatchesSimulatedQuantization) {
  const auto [bits, group_size, tolerance] = GetParam();
  const double expected = simulated_ppl(bits, group_size);
  const double measured = quantized_ppl(bits, group_size);
  EXPECT_NEAR(measured, expected, tolerance * expected) << "b" << bits << " g" << group_size;
}

INSTANTIATE_TEST_SUITE_P(
    AllLayers, MlxPerplexity,
    ::testing::Values(PplCase{8, 32, 0.005}, PplCase{8, 64, 0.005}, PplCase{8, 128, 0.005},
                      PplCase{6, 32, 0.005}, PplCase{6, 64, 0.005}, PplCase{6, 128, 0.005},
                      PplCase{5, 32, 0.005}, PplCase{5, 64, 0.005}, PplCase{5, 128, 0.005},
                      PplCase{4, 32, 0.005}, PplCase{4, 64, 0.005}, PplCase{4, 128, 0.005},
                      PplCase{3, 32, 0.01}, PplCase{3, 64, 0.01}, PplCase{3, 128, 0.01}),
    [](const auto& test_info) {
      return "b" + std::to_string(test_info.param.bits) + "g" +
             std::to_string(test_info.param.group_size);
    });

TEST(MlxBackend, SaveLoadGivesBitwiseIdenticalLogits) {
  UnifiedQuantizationConfig config;
  config.backend = "mlx";
  config.bits = 4;
  auto [model, quantizer] = quantize_model(test::bundled().model, config);
  TempDir dir;
  quantizer.save_model(*model, dir / "q4");
  const auto again = quantizer.load_model(dir / "q4");
  const std::vector<std::int32_t> ids(test::bundled().val_ids.begin(),
                                      test::bundled().val_ids.begin() + 64);
  const auto before = model->forward(ids);
  const auto after = again->forward(ids);
  ASSERT_EQ(before.size(), after.size());
  EXPECT_EQ(std::memcmp(before.data(), after.data(), before.size() * sizeof(float)), 0);
  // The original float model is untouched by quantize_model.
  EXPECT_EQ(test::bundled().model->lm_head().describe().find("affine"), std::string::npos);
}

TEST(MlxBackend, FourBitGroup64IsAboutFourAndAHalfBitsOnDisk) {
  TempDir dir;
  const auto result = test::run_uq({"quantize", test::bundled_model().string(), "-o",
                                    (dir / "q4").string(), "--bits", "4", "--group-size", "64"});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  const auto checkpoint = Checkpoint::open(dir / "q4");
  std::size_t quantized_bytes = 0;
  std::int64_t quantized_weights = 0;
  for (const auto& name : checkpoint.names()) {
    const auto tensor = checkpoint.tensor(name);
    if (!name.ends_with(".scales")) continue;
    const std::string module = name.substr(0, name.size() - 7);
    const auto codes = checkpoint.tensor(module + ".weight");
    quantized_bytes += codes.nbytes + tensor.nbytes + checkpoint.tensor(module + ".biases").nbytes;
    quantized_weights += codes.shape[0] * codes.shape[1] * 8;  // 8 codes per uint32 at 4 bits
  }
  ASSERT_GT(quantized_weights, 0);
  const double bits =
      8.0 * static_cast<double>(quantized_bytes) / static_cast<double>(quantized_weights);
  EXPECT_NEAR(bits, 4.5, 1e-9);  // 4 + 2 x 16 bits per 64 weights
  const auto config = read_json(dir / "q4" / "config.json");
  EXPECT_EQ(config["quantization"]["bits"], 4);
  EXPECT_EQ(config["quantization"]["group_size"], 64);
  EXPECT_EQ(config["quantization"]["mode"], "affine");
  EXPECT_EQ(config["quantization_config"], config["quantization"]);
  EXPECT_TRUE(std::filesystem::exists(dir / "q4" / "tokenizer.json"));
  EXPECT_TRUE(std::filesystem::exists(dir / "q4" / "model.safetensors.index.json"));
  EXPECT_EQ(checkpoint.metadata().at("format"), "mlx");
}

TEST(MlxBackend, SeedMixedPrecisionExample) {
  TempDir dir;
  const auto result =
      test::run_uq({"quantize", test::bundled_model().string(), "-o", (dir / "mixed").string(),
                    "--bits", "4", "--layer-bits", "embed=8", "--layer-bits", "lm_head=8",
                    "--layer-bits", "model.layers.0=6", "--json"});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  const auto quantization = read_json(dir / "mixed" / "config.json")["quantization"];
  EXPECT_EQ(quantization["bits"], 4);
  EXPECT_EQ(quantization["model.embed_tokens"]["bits"], 8);
  EXPECT_EQ(quantization["lm_head"]["bits"], 8);
  for (const char* module : {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj",
                             "self_attn.o_proj", "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"}) {
    EXPECT_EQ(quantization[std::string("model.layers.0.") + module]["bits"], 6) << module;
    EXPECT_FALSE(quantization.contains(std::string("model.layers.1.") + module)) << module;
  }
  const auto mixed = load_model(dir / "mixed");
  const double mixed_ppl = perplexity(*mixed, test::bundled().val_ids, 256).perplexity;
  const double ppl4 = quantized_ppl(4, 64);
  const double ppl8 = quantized_ppl(8, 64);
  EXPECT_LT(mixed_ppl, ppl4);
  EXPECT_GT(mixed_ppl, ppl8);
}

TEST(MlxBackend, KeptLayersAreMarkedFalse) {
  UnifiedQuantizationConfig config;
  config.backend = "mlx";
  config.layer_bits = {{"lm_head", 16}};
  config.skip = {"model.layers.3.mlp"};
  auto [model, quantizer] = quantize_model(test::bundled().model, config);
  TempDir dir;
  quantizer.save_model(*model, dir / "kept");
  const auto quantization = read_json(dir / "kept" / "config.json")["quantization"];
  EXPECT_EQ(quantization["lm_head"], false);
  EXPECT_EQ(quantization["model.layers.3.mlp.up_proj"], false);
  const auto checkpoint = Checkpoint::open(dir / "kept");
  EXPECT_EQ(checkpoint.tensor("lm_head.weight").dtype, DType::BF16);
  EXPECT_FALSE(checkpoint.contains("lm_head.scales"));
  const auto again = load_model(dir / "kept");
  EXPECT_EQ(again->lm_head().describe(), "bf16");
}

// ---- real mlx-lm, both ways ------------------------------------------------

std::vector<float> read_logits(const std::filesystem::path& file) {
  const auto st = SafetensorsFile::open(file);
  return st->tensor("logits").to_f32();
}

TEST(MlxLmOracle, MlxLmLoadsOurDirectoryWithTheSameLogits) {
  if (!test::python_available()) GTEST_SKIP() << "oracle venv not installed";
  TempDir dir;
  const auto quantized = test::run_uq({"quantize", test::bundled_model().string(), "-o",
                                       (dir / "ours").string(), "--bits", "4", "--layer-bits",
                                       "model.layers.1=3", "--layer-bits", "lm_head=8"});
  ASSERT_EQ(quantized.exit_code, 0) << quantized.err;
  const std::string ids = "1183,259,2430,424,3130,259,892,271,259,727,14";
  const auto oracle = test::run_oracle(
      "mlx_lm_oracle.py",
      {"logits", (dir / "ours").string(), (dir / "mlx.safetensors").string(), "--ids", ids});
  ASSERT_EQ(oracle.exit_code, 0) << oracle.err;
  const auto ours = test::run_uq(
      {"logits", (dir / "ours").string(), "--ids", ids, "-o", (dir / "ours.safetensors").string()});
  ASSERT_EQ(ours.exit_code, 0) << ours.err;
  const auto expected = read_logits(dir / "mlx.safetensors");
  const auto actual = read_logits(dir / "ours.safetensors");
  ASSERT_EQ(expected.size(), actual.size());
  double diff = 0, norm = 0, max_abs = 0;
  for (std::size_t i = 0; i < expected.size(); ++i) {
    diff += std::pow(double(actual[i]) - expected[i], 2);
    norm += std::pow(double(expected[i]), 2);
    max_abs = std::max(max_abs, std::fabs(double(actual[i]) - expected[i]));
  }
  // Both run float32 over the same dequantized weights: only summation order differs.
  EXPECT_LT(std::sqrt(diff / norm), 1e-5);
  EXPECT_LT(max_abs, 1e-3);
}

TEST(MlxLmOracle, DirectoryWrittenByMlxLmLoadsAndMatchesOurs) {
  if (!test::python_available()) GTEST_SKIP() << "oracle venv not installed";
  TempDir dir;
  const auto converted = test::run_oracle(
      "mlx_lm_oracle.py", {"convert", test::bundled_model().string(), (dir / "mlx").string(),
                           "--bits", "4", "--group-size", "64"});
  ASSERT_EQ(converted.exit_code, 0) << converted.err;
  // Our quantization is bit-exact with MLX's, so every stored tensor is equal.
  UnifiedQuantizationConfig config;
  config.backend = "mlx";
  config.bits = 4;
  auto [ours, quantizer] = quantize_model(test::bundled().model, config);
  quantizer.save_model(*ours, dir / "ours");
  const auto theirs_checkpoint = Checkpoint::open(dir / "mlx");
  const auto ours_checkpoint = Checkpoint::open(dir / "ours");
  EXPECT_EQ(theirs_checkpoint.names(), ours_checkpoint.names());
  for (const auto& name : theirs_checkpoint.names()) {
    const auto a = theirs_checkpoint.tensor(name);
    const auto b = ours_checkpoint.tensor(name);
    ASSERT_EQ(a.dtype, b.dtype) << name;
    ASSERT_EQ(a.shape, b.shape) << name;
    EXPECT_EQ(std::memcmp(a.data, b.data, a.nbytes), 0) << name;
  }
  const auto theirs = load_model(dir / "mlx");
  const double ppl_theirs = perplexity(*theirs, test::bundled().val_ids, 256).perplexity;
  const double ppl_ours = perplexity(*ours, test::bundled().val_ids, 256).perplexity;
  EXPECT_DOUBLE_EQ(ppl_theirs, ppl_ours);
}

// ---- bad input -------------------------------------------------------------

void expect_one_error_line(const test::CommandResult& result, const std::string& culprit) {
  EXPECT_NE(result.exit_code, 0);
  EXPECT_LT(result.exit_code, 128) << "crashed";
  EXPECT_EQ(result.err.rfind("error: ", 0), 0u) << result.err;
  EXPECT_EQ(std::count(result.err.begin(), result.err.end(), '\n'), 1) << result.err;
  EXPECT_NE(result.err.find(culprit), std::string::npos) << result.err;
}

TEST(MlxBackend, BadOptionsGiveOneErrorLine) {
  TempDir dir;
  const std::string model = test::bundled_model().string();
  const std::string out = (dir / "out").string();
  expect_one_error_line(test::run_uq({"quantize", model, "-o", out, "--bits", "0"}), "bits 0");
  expect_one_error_line(test::run_uq({"quantize", model, "-o", out, "--bits", "9"}), "bits 9");
  expect_one_error_line(test::run_uq({"quantize", model, "-o", out, "--group-size", "48"}),
                        "group size 48");
  expect_one_error_line(test::run_uq({"quantize", model, "-o", out, "--backend", "tensorrt"}),
                        "unknown backend 'tensorrt'");
  expect_one_error_line(test::run_uq({"quantize", model, "-o", out, "--layer-bits", "lm_head"}),
                        "--layer-bits 'lm_head'");
  expect_one_error_line(test::run_uq({"quantize", model, "-o", out, "--bits", "7"}), "7-bit");
  EXPECT_FALSE(std::filesystem::exists(out));  // no partial output left behind
}

TEST(MlxBackend, PatternMatchingNothingWarns) {
  TempDir dir;
  const auto result = test::run_uq({"quantize", test::bundled_model().string(), "-o",
                                    (dir / "out").string(), "--layer-bits", "transformer.h.0=8"});
  EXPECT_EQ(result.exit_code, 0) << result.err;
  EXPECT_NE(result.err.find("warning: layer pattern 'transformer.h.0' matched no module"),
            std::string::npos)
      << result.err;
}

TEST(MlxBackend, ConfigPromisingQuantizationWithoutScalesIsRefused) {
  TempDir dir;
  ASSERT_EQ(test::run_uq({"quantize", test::bundled_model().string(), "-o", (dir / "q").string()})
                .exit_code,
            0);
  // Rewrite the checkpoint without one module's scales.
  const auto checkpoint = Checkpoint::open(dir / "q");
  {
    SafetensorsWriter writer(dir / "stripped.safetensors");
    for (const auto& name : checkpoint.names()) {
      if (name == "model.layers.2.mlp.up_proj.scales") continue;
      const auto tensor = checkpoint.tensor(name);
      writer.add(name, tensor.dtype, tensor.shape, {tensor.data, tensor.nbytes});
    }
    writer.commit();
  }
  std::filesystem::remove(dir / "q" / "model.safetensors.index.json");
  std::filesystem::rename(dir / "stripped.safetensors", dir / "q" / "model.safetensors");
  const auto result = test::run_uq(
      {"eval", (dir / "q").string(), "--data", test::source_path("data/val.txt").string()});
  expect_one_error_line(result, "model.layers.2.mlp.up_proj.scales");
}

}  // namespace
}  // namespace uq

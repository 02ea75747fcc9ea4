// The quanto and custom backends end to end: perplexity against the
// simulated references, save -> load, the raw safetensors of both layouts,
// and real optimum-quanto both ways.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>

#include "api/quantize.hpp"
#include "io/safetensors.hpp"
#include "io/tokenizer/tokenizer.hpp"
#include "model/decoder.hpp"
#include "model/perplexity.hpp"
#include "support/test_support.hpp"

namespace uq {
namespace {

using test::TempDir;

// prefix + n (appending avoids GCC 12's false -Wrestrict on "literal" + std::string).
std::string numbered(std::string prefix, int n) {
  prefix += std::to_string(n);
  return prefix;
}

using test::read_json;
using test::read_text;

double simulated_ppl(const std::string& scheme, bool all_layers) {
  const auto refs = read_json(test::source_path("tests/data/refs.json"));
  for (const auto& row : refs["quant_sim"]["rows"]) {
    if (row["scheme"] == scheme && row["all_layers"] == all_layers) {
      return row["val_ppl"].get<double>();
    }
  }
  ADD_FAILURE() << "no quant_sim row for " << scheme;
  return 0.0;
}

std::pair<std::shared_ptr<Model>, Quantizer> quantized(const std::string& backend, int bits,
                                                       std::vector<std::string> skip = {}) {
  UnifiedQuantizationConfig config;
  config.backend = backend;
  config.bits = bits;
  config.skip = std::move(skip);
  return quantize_model(test::bundled().model, config);
}

// all_layers=false in refs.json: only the Linear layers of the decoder blocks.
const std::vector<std::string> kBlocksOnly{"model.embed_tokens", "lm_head"};

struct PplCase {
  int bits;
  bool all_layers;
};

class CustomPerplexity : public ::testing::TestWithParam<PplCase> {};

// refs.json "symmetric int{8,4} per-row": scale = absmax/qmax per output row,
// round half to even — the custom backend's scheme.
TEST_P(CustomPerplexity, MatchesSymmetricPerRowSimulation) {
  const auto [bits, all_layers] = GetParam();
  const double expected =
      simulated_ppl(numbered("symmetric int", bits).append(" per-row"), all_layers);
  auto [model, quantizer] =
      quantized("custom", bits, all_layers ? std::vector<std::string>{} : kBlocksOnly);
  const double measured = perplexity(*model, test::bundled().val_ids, 256).perplexity;
  EXPECT_NEAR(measured, expected, 0.005 * expected);
  std::cout << "custom int" << bits << (all_layers ? " all layers" : " blocks only") << ": ppl "
            << measured << " (reference " << expected << ")\n";
}

INSTANTIATE_TEST_SUITE_P(Rows, CustomPerplexity,
                         ::testing::Values(PplCase{8, true}, PplCase{8, false}, PplCase{4, true},
                                           PplCase{4, false}),
                         [](const auto& test_info) {
                           return numbered("int", test_info.param.bits)
                               .append(test_info.param.all_layers ? "_all" : "_blocks");
                         });

// quanto's qint8 is the same symmetric per-row scheme (scales in bf16); it
// never quantizes the embedding, so lm_head is skipped to match all_layers=false.
TEST(QuantoBackend, Qint8MatchesSymmetricInt8Simulation) {
  const double expected = simulated_ppl("symmetric int8 per-row", false);
  auto [model, quantizer] = quantized("quanto", 8, {"lm_head"});
  const double measured = perplexity(*model, test::bundled().val_ids, 256).perplexity;
  EXPECT_NEAR(measured, expected, 0.005 * expected);
}

// qint4 is affine per group of 128 like "affine b4 g128", with quanto's
// plain min/max rule instead of MLX's edge snapping: close, not identical.
TEST(QuantoBackend, Qint4IsCloseToAffineGroup128Simulation) {
  const double expected = simulated_ppl("affine b4 g128", false);
  auto [model, quantizer] = quantized("quanto", 4, {"lm_head"});
  const double measured = perplexity(*model, test::bundled().val_ids, 256).perplexity;
  EXPECT_NEAR(measured, expected, 0.01 * expected);
  std::cout << "quanto qint4 blocks only: ppl " << measured << " (affine b4 g128 " << expected
            << ")\n";
}

struct RoundTripCase {
  const char* backend;
  int bits;
};

class SaveLoad : public ::testing::TestWithParam<RoundTripCase> {};

TEST_P(SaveLoad, IdenticalLogits) {
  const auto [backend, bits] = GetParam();
  auto [model, quantizer] = quantized(backend, bits);
  TempDir dir;
  quantizer.save_model(*model, dir / "q");
  const auto again = quantizer.load_model(dir / "q");
  const auto before_weights = model->named_weights();
  const auto after_weights = again->named_weights();
  ASSERT_EQ(before_weights.size(), after_weights.size());
  for (std::size_t i = 0; i < before_weights.size(); ++i) {
    EXPECT_EQ(before_weights[i].first, after_weights[i].first);
    EXPECT_EQ(before_weights[i].second->describe(), after_weights[i].second->describe())
        << before_weights[i].first;
  }
  const std::vector<std::int32_t> ids(test::bundled().val_ids.begin(),
                                      test::bundled().val_ids.begin() + 48);
  const auto before = model->forward(ids);
  const auto after = again->forward(ids);
  ASSERT_EQ(before.size(), after.size());
  EXPECT_EQ(std::memcmp(before.data(), after.data(), before.size() * sizeof(float)), 0);
}

INSTANTIATE_TEST_SUITE_P(Backends, SaveLoad,
                         ::testing::Values(RoundTripCase{"quanto", 8}, RoundTripCase{"quanto", 4},
                                           RoundTripCase{"quanto", 2}, RoundTripCase{"custom", 8},
                                           RoundTripCase{"custom", 4}),
                         [](const auto& test_info) {
                           return numbered(test_info.param.backend, test_info.param.bits);
                         });

// ---- raw layouts ------------------------------------------------------------

void expect_tensor(const Checkpoint& checkpoint, const std::string& name, DType dtype,
                   std::vector<std::int64_t> shape) {
  ASSERT_TRUE(checkpoint.contains(name)) << name;
  const auto tensor = checkpoint.tensor(name);
  EXPECT_EQ(tensor.dtype, dtype) << name;
  EXPECT_EQ(tensor.shape, shape) << name;
}

// A model saved before quanto's freeze() keeps float weights under map entries that name a
// qtype (quanto quantizes them while loading): it loads, in float, with the float logits.
TEST(QuantoLayout, FloatWeightsUnderAQtypeEntryLoadAsFloat) {
  TempDir dir;
  const auto model = dir / "unfrozen";
  std::filesystem::create_directories(model);
  for (const char* name : {"config.json", "tokenizer.json", "model.safetensors"}) {
    std::filesystem::copy_file(test::bundled_model() / name, model / name);
  }
  std::ofstream(model / "quantization_map.json")
      << R"({"model.layers.0.self_attn.q_proj": {"weights": "qint8", "activations": "none"}})";
  const auto logits = [&](const std::filesystem::path& dir_in, const std::string& out) {
    return test::run_uq({"logits", dir_in.string(), "--ids", "1,2,3", "-o", (dir / out).string()});
  };
  const auto unfrozen = logits(model, "unfrozen.safetensors");
  ASSERT_EQ(unfrozen.exit_code, 0) << unfrozen.err;
  const auto plain = logits(test::bundled_model(), "plain.safetensors");
  ASSERT_EQ(plain.exit_code, 0) << plain.err;
  EXPECT_EQ(read_text(dir / "unfrozen.safetensors"), read_text(dir / "plain.safetensors"));
}

TEST(QuantoLayout, KeysDtypesAndShapes) {
  TempDir dir;
  for (int bits : {8, 4, 2}) {
    const auto out = dir / (numbered("q", bits));
    const auto result =
        test::run_uq({"quantize", test::bundled_model().string(), "-o", out.string(), "--backend",
                      "quanto", "--bits", std::to_string(bits)});
    ASSERT_EQ(result.exit_code, 0) << result.err;
    const auto checkpoint = Checkpoint::open(out);
    const std::string q = "model.layers.2.self_attn.q_proj";  // [256, 256]
    const std::string down = "model.layers.2.mlp.down_proj";  // [256, 768]
    if (bits == 8) {
      expect_tensor(checkpoint, q + ".weight._data", DType::I8, {256, 256});
      expect_tensor(checkpoint, q + ".weight._scale", DType::BF16, {256, 1});
      expect_tensor(checkpoint, "lm_head.weight._data", DType::I8, {4096, 256});
    } else {
      // groups of 128: R = 256*256/128 = 512 rows; down_proj R = 256*768/128 = 1536.
      const std::int64_t per_byte = 8 / bits;
      expect_tensor(checkpoint, q + ".weight._data._data", DType::U8, {512 / per_byte, 128});
      expect_tensor(checkpoint, q + ".weight._scale", DType::BF16, {512, 1});
      expect_tensor(checkpoint, q + ".weight._shift", DType::BF16, {512, 1});
      expect_tensor(checkpoint, down + ".weight._data._data", DType::U8, {1536 / per_byte, 128});
    }
    expect_tensor(checkpoint, q + ".input_scale", DType::BF16, {});
    expect_tensor(checkpoint, q + ".output_scale", DType::BF16, {});
    expect_tensor(checkpoint, "model.embed_tokens.weight", DType::BF16, {4096, 256});
    EXPECT_FALSE(checkpoint.contains(q + ".weight"));
    const auto map = read_json(out / "quantization_map.json");
    const std::string qtype = numbered("qint", bits);
    EXPECT_EQ(map[q], (nlohmann::json{{"weights", qtype}, {"activations", "none"}}));
    EXPECT_EQ(map["lm_head"]["weights"], qtype);
    EXPECT_FALSE(map.contains("model.embed_tokens"));
    EXPECT_EQ(map.size(), 4u * 7u + 1u);
    EXPECT_TRUE(std::filesystem::exists(out / "tokenizer.json"));
  }
}

TEST(CustomLayout, KeysDtypesAndShapes) {
  TempDir dir;
  for (int bits : {8, 4}) {
    const auto out = dir / (numbered("c", bits));
    const auto result =
        test::run_uq({"quantize", test::bundled_model().string(), "-o", out.string(), "--backend",
                      "mps", "--bits", std::to_string(bits)});
    ASSERT_EQ(result.exit_code, 0) << result.err;
    const auto checkpoint = Checkpoint::open(out);
    const DType codes = bits == 8 ? DType::I8 : DType::U8;
    const std::int64_t per_byte = bits == 8 ? 1 : 2;
    expect_tensor(checkpoint, "model.layers.0.mlp.down_proj.weight", codes, {256, 768 / per_byte});
    expect_tensor(checkpoint, "model.layers.0.mlp.down_proj.weight_scale", DType::F32, {256});
    expect_tensor(checkpoint, "model.embed_tokens.weight", codes, {4096, 256 / per_byte});
    expect_tensor(checkpoint, "model.embed_tokens.weight_scale", DType::F32, {4096});
    expect_tensor(checkpoint, "model.norm.weight", DType::BF16, {256});
    EXPECT_EQ(checkpoint.metadata().at("format"), "uq-custom");
    const auto config = read_json(out / "config.json")["quantization_config"];
    EXPECT_EQ(config["quant_method"], "uq-custom");
    EXPECT_EQ(config["bits"], bits);
  }
}

// A checkpoint missing one tensor, or with codes of the wrong dtype, is
// refused with one error line naming the tensor.
void rewrite_without(const std::filesystem::path& dir, const std::string& dropped,
                     const std::string& retyped) {
  const auto source = dir / "model.safetensors";
  const auto copy = dir / "copy.safetensors";
  {
    const auto checkpoint = SafetensorsFile::open(source);
    SafetensorsWriter writer(copy);
    for (const auto& name : checkpoint->names()) {
      if (name == dropped) continue;
      const auto tensor = checkpoint->tensor(name);
      const DType dtype = name == retyped ? DType::U8 : tensor.dtype;
      writer.add(name, dtype, tensor.shape, {tensor.data, tensor.nbytes});
    }
    writer.commit();
  }
  std::filesystem::rename(copy, source);
}

TEST(QuantoAndCustomLayouts, DamagedCheckpointsGiveOneErrorLine) {
  TempDir dir;
  const std::string q = "model.layers.1.mlp.up_proj";
  struct Case {
    const char* backend;
    const char* bits;
    std::string dropped, retyped, culprit;
  };
  for (const auto& [backend, bits, dropped, retyped, culprit] :
       {Case{"quanto", "4", q + ".weight._shift", "", q + ".weight._shift"},
        Case{"quanto", "8", "", q + ".weight._data", q + ".weight._data"},
        Case{"custom", "8", q + ".weight_scale", "", q + ".weight"}}) {
    const auto out = dir / (std::string(backend) + bits);
    ASSERT_EQ(test::run_uq({"quantize", test::bundled_model().string(), "-o", out.string(),
                            "--backend", backend, "--bits", bits})
                  .exit_code,
              0);
    rewrite_without(out, dropped, retyped);
    const auto result = test::run_uq(
        {"logits", out.string(), "--ids", "1,2", "-o", (dir / "l.safetensors").string()});
    EXPECT_NE(result.exit_code, 0) << backend;
    EXPECT_LT(result.exit_code, 128) << "crashed";
    EXPECT_EQ(result.err.rfind("error: ", 0), 0u) << result.err;
    EXPECT_NE(result.err.find(culprit), std::string::npos) << result.err;
  }
}

// ---- real optimum-quanto, both ways ---------------------------------------

const std::string kIds = "1183,259,2430,424,3130,259,892,271,259,727,14";

std::vector<float> our_logits(const std::filesystem::path& model_dir, const TempDir& dir) {
  const auto result = test::run_uq(
      {"logits", model_dir.string(), "--ids", kIds, "-o", (dir / "ours.safetensors").string()});
  EXPECT_EQ(result.exit_code, 0) << result.err;
  return test::read_f32_tensor(dir / "ours.safetensors", "logits");
}

class QuantoOracle : public ::testing::TestWithParam<int> {};

// quanto quantizes the bundled model in torch and saves it (state dict + map):
// it loads here, our quanto backend writes the same tensors byte for byte, and
// our logits equal those of quanto's dequantized weights in float32.
TEST_P(QuantoOracle, QuantoDirectoryLoadsHereAndMatchesOurs) {
  if (!test::python_available()) GTEST_SKIP() << "oracle venv not installed";
  const int bits = GetParam();
  TempDir dir;
  const auto made = test::run_oracle(
      "quanto_oracle.py", {"quantize", test::bundled_model().string(), (dir / "quanto").string(),
                           "--weights", numbered("qint", bits)});
  ASSERT_EQ(made.exit_code, 0) << made.err;
  auto [ours, quantizer] = quantized("quanto", bits);
  quantizer.save_model(*ours, dir / "ours");
  const auto theirs_checkpoint = Checkpoint::open(dir / "quanto");
  const auto ours_checkpoint = Checkpoint::open(dir / "ours");
  EXPECT_EQ(theirs_checkpoint.names(), ours_checkpoint.names());
  for (const auto& name : theirs_checkpoint.names()) {
    const auto a = theirs_checkpoint.tensor(name);
    const auto b = ours_checkpoint.tensor(name);
    ASSERT_EQ(a.dtype, b.dtype) << name;
    ASSERT_EQ(a.shape, b.shape) << name;
    EXPECT_EQ(std::memcmp(a.data, b.data, a.nbytes), 0) << name;
  }
  EXPECT_EQ(read_json(dir / "quanto" / "quantization_map.json"),
            read_json(dir / "ours" / "quantization_map.json"));
  const auto logits = test::run_oracle(
      "quanto_oracle.py",
      {"logits", (dir / "quanto").string(), (dir / "quanto.safetensors").string(), "--ids", kIds});
  ASSERT_EQ(logits.exit_code, 0) << logits.err;
  const auto expected = test::read_f32_tensor(dir / "quanto.safetensors", "logits");
  const auto actual = our_logits(dir / "quanto", dir);
  ASSERT_EQ(expected.size(), actual.size());
  EXPECT_LT(test::relative_l2(actual, expected), 1e-5);
}

// Our directory loads with quanto's requantize (every key consumed) and gives
// the same logits; quanto's own bf16 forward agrees within bf16 precision.
TEST_P(QuantoOracle, OurDirectoryLoadsWithRequantize) {
  if (!test::python_available()) GTEST_SKIP() << "oracle venv not installed";
  const int bits = GetParam();
  TempDir dir;
  auto [ours, quantizer] = quantized("quanto", bits, {"model.layers.1.mlp"});
  quantizer.save_model(*ours, dir / "ours");
  const auto logits = test::run_oracle(
      "quanto_oracle.py",
      {"logits", (dir / "ours").string(), (dir / "quanto.safetensors").string(), "--ids", kIds});
  ASSERT_EQ(logits.exit_code, 0) << logits.err;
  const auto actual = our_logits(dir / "ours", dir);
  EXPECT_LT(test::relative_l2(actual, test::read_f32_tensor(dir / "quanto.safetensors", "logits")),
            1e-5);
  EXPECT_LT(
      test::relative_l2(actual, test::read_f32_tensor(dir / "quanto.safetensors", "logits_quanto")),
      0.03);
}

INSTANTIATE_TEST_SUITE_P(Bits, QuantoOracle, ::testing::Values(8, 4, 2),
                         [](const auto& test_info) { return numbered("qint", test_info.param); });

}  // namespace
}  // namespace uq

// The bnb backend end to end: perplexity against the simulated NF4 rows,
// save/load for nf4, fp4 and int8, the raw layout as transformers +
// bitsandbytes write it, and bitsandbytes itself (its CPU path) as oracle.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>

#include "api/quantize.hpp"
#include "core/error.hpp"
#include "io/safetensors.hpp"
#include "io/tokenizer/tokenizer.hpp"
#include "model/decoder.hpp"
#include "model/perplexity.hpp"
#include "quant/bnb.hpp"
#include "quant/bnb4_weight.hpp"
#include "quant/int8_rowwise_weight.hpp"
#include "support/test_support.hpp"

namespace uq {
namespace {

using test::TempDir;

using test::read_json;
using test::read_text;

UnifiedQuantizationConfig bnb_config(int bits, const std::string& quant_type = "nf4") {
  UnifiedQuantizationConfig config;
  config.backend = "bnb";
  config.bits = bits;
  config.bnb_4bit_quant_type = quant_type;
  return config;
}

template <typename T>
std::vector<T> values_of(const TensorView& view) {
  std::vector<T> values(view.nbytes / sizeof(T));
  std::memcpy(values.data(), view.data, view.nbytes);
  return values;
}

// "" when equal, else the count of differing elements and the first one.
template <typename T>
std::string difference(const std::vector<T>& expected, const std::vector<T>& actual) {
  if (expected.size() != actual.size()) {
    return "sizes " + std::to_string(expected.size()) + " vs " + std::to_string(actual.size());
  }
  std::size_t count = 0, first = 0;
  for (std::size_t i = expected.size(); i-- > 0;) {
    if (expected[i] != actual[i]) {
      ++count;
      first = i;
    }
  }
  if (count == 0) return "";
  return std::to_string(count) + " differ, first at " + std::to_string(first) + ": " +
         std::to_string(+expected[first]) + " vs " + std::to_string(+actual[first]);
}

class BnbPerplexity : public ::testing::TestWithParam<bool> {};

// refs.json "nf4 block64" rows fake-quantize in fp32 with the plain absmax;
// ours runs double quantization too (bitsandbytes' and our default).
TEST_P(BnbPerplexity, Nf4MatchesSimulatedQuantization) {
  const bool all_layers = GetParam();
  double expected = 0.0;
  const auto refs = read_json(test::source_path("tests/data/refs.json"));
  for (const auto& row : refs["quant_sim"]["rows"]) {
    if (row["scheme"] == "nf4 block64" && row["all_layers"] == all_layers) {
      expected = row["val_ppl"].get<double>();
    }
  }
  ASSERT_GT(expected, 0.0);
  auto config = bnb_config(4);
  if (!all_layers) config.skip = {"model.embed_tokens", "lm_head"};
  auto [model, quantizer] = quantize_model(test::bundled().model, config);
  const double measured = perplexity(*model, test::bundled().val_ids, 256).perplexity;
  EXPECT_NEAR(measured / expected, 1.0, 0.005)
      << "measured " << measured << " expected " << expected;
}

INSTANTIATE_TEST_SUITE_P(AllLayers, BnbPerplexity, ::testing::Bool(), [](const auto& test_info) {
  return test_info.param ? std::string("all_layers") : std::string("decoder_only");
});

class BnbRoundTrip : public ::testing::TestWithParam<std::pair<int, const char*>> {};

TEST_P(BnbRoundTrip, SaveLoadGivesBitwiseIdenticalLogits) {
  const auto [bits, quant_type] = GetParam();
  auto [model, quantizer] = quantize_model(test::bundled().model, bnb_config(bits, quant_type));
  TempDir dir;
  quantizer.save_model(*model, dir / "q");
  const auto again = load_model(dir / "q");
  EXPECT_EQ(again->named_weights().front().second->describe(),
            model->named_weights().front().second->describe());
  const std::vector<std::int32_t> ids(test::bundled().val_ids.begin(),
                                      test::bundled().val_ids.begin() + 48);
  const auto before = model->forward(ids);
  const auto after = again->forward(ids);
  ASSERT_EQ(before.size(), after.size());
  EXPECT_EQ(std::memcmp(before.data(), after.data(), before.size() * sizeof(float)), 0);
}

INSTANTIATE_TEST_SUITE_P(Formats, BnbRoundTrip,
                         ::testing::Values(std::make_pair(4, "nf4"), std::make_pair(4, "fp4"),
                                           std::make_pair(8, "nf4")),
                         [](const auto& test_info) {
                           return test_info.param.first == 8 ? std::string("int8")
                                                             : std::string(test_info.param.second);
                         });

TEST(BnbLayout, KeysDtypesAndShapesAreThoseOfTransformersBitsandbytes) {
  auto config = bnb_config(4);
  config.skip = {"model.embed_tokens", "lm_head"};
  auto [model, quantizer] = quantize_model(test::bundled().model, config);
  TempDir dir;
  quantizer.save_model(*model, dir / "nf4");
  const auto file = SafetensorsFile::open(dir / "nf4" / "model.safetensors");
  const std::string p = "model.layers.0.self_attn.q_proj.weight";  // [256, 256]
  const auto expect = [&](const std::string& name, DType dtype, std::vector<std::int64_t> shape) {
    ASSERT_TRUE(file->contains(name)) << name;
    EXPECT_EQ(file->tensor(name).dtype, dtype) << name;
    EXPECT_EQ(file->tensor(name).shape, shape) << name;
  };
  expect(p, DType::U8, {256 * 256 / 2, 1});
  expect(p + ".absmax", DType::U8, {256 * 256 / 64});
  expect(p + ".quant_map", DType::F32, {16});
  expect(p + ".nested_absmax", DType::F32, {4});  // 1024 absmax in blocks of 256
  expect(p + ".nested_quant_map", DType::F32, {256});
  const auto state_view = file->tensor(p + ".quant_state.bitsandbytes__nf4");
  EXPECT_EQ(state_view.dtype, DType::U8);
  const auto state_bytes = values_of<std::uint8_t>(state_view);
  const auto state = nlohmann::json::parse(state_bytes.begin(), state_bytes.end());
  EXPECT_EQ(state["quant_type"], "nf4");
  EXPECT_EQ(state["blocksize"], 64);
  EXPECT_EQ(state["dtype"], "bfloat16");
  EXPECT_EQ(state["shape"], nlohmann::json::array({256, 256}));
  EXPECT_EQ(state["nested_blocksize"], 256);
  EXPECT_EQ(state["nested_dtype"], "float32");
  const auto& weight = dynamic_cast<const Bnb4Weight&>(*model->named_weights()[1].second);
  EXPECT_EQ(state["nested_offset"].template get<double>(),
            static_cast<double>(weight.nested()->offset));
  EXPECT_EQ(values_of<float>(file->tensor(p + ".quant_map")),
            std::vector<float>(bnb::four_bit_code(bnb::FourBitType::NF4).begin(),
                               bnb::four_bit_code(bnb::FourBitType::NF4).end()));
  // Kept modules stay in the model dtype and are listed as skipped.
  expect("model.embed_tokens.weight", DType::BF16, {4096, 256});
  const auto written = read_json(dir / "nf4" / "config.json")["quantization_config"];
  EXPECT_EQ(written["quant_method"], "bitsandbytes");
  EXPECT_EQ(written["load_in_4bit"], true);
  EXPECT_EQ(written["bnb_4bit_quant_type"], "nf4");
  EXPECT_EQ(written["bnb_4bit_use_double_quant"], true);
  EXPECT_NE(std::find(written["llm_int8_skip_modules"].begin(),
                      written["llm_int8_skip_modules"].end(), "lm_head"),
            written["llm_int8_skip_modules"].end());

  auto [model8, quantizer8] = quantize_model(test::bundled().model, bnb_config(8));
  quantizer8.save_model(*model8, dir / "int8");
  const auto file8 = SafetensorsFile::open(dir / "int8" / "model.safetensors");
  EXPECT_EQ(file8->tensor(p).dtype, DType::I8);
  EXPECT_EQ(file8->tensor(p).shape, (std::vector<std::int64_t>{256, 256}));
  const std::string scb = "model.layers.0.self_attn.q_proj.SCB";
  EXPECT_EQ(file8->tensor(scb).dtype, DType::F32);
  EXPECT_EQ(file8->tensor(scb).shape, (std::vector<std::int64_t>{256}));
  const auto format = file8->tensor("model.layers.0.self_attn.q_proj.weight_format");
  EXPECT_EQ(format.dtype, DType::U8);
  EXPECT_TRUE(format.shape.empty());
  EXPECT_EQ(values_of<std::uint8_t>(format), std::vector<std::uint8_t>{0});
  EXPECT_EQ(read_json(dir / "int8" / "config.json")["quantization_config"]["load_in_8bit"], true);
}

// bitsandbytes (CPU) quantizes the same weights: codes, absmax, nested
// codes, nested absmax, offset and int8 codes equal ours exactly, and a model
// directory in its Linear4bit serialization loads here with its logits.
class BnbOracle : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (!test::python_available()) return;
    dir_ = new TempDir();
    const auto result =
        test::run_oracle("bnb_oracle.py", {dir_->path().string(), test::bundled_model().string()});
    ASSERT_EQ(result.exit_code, 0) << result.err;
  }
  static void TearDownTestSuite() {
    delete dir_;
    dir_ = nullptr;
  }
  void SetUp() override {
    if (!test::python_available()) GTEST_SKIP() << "oracle venv not installed";
  }
  static TempDir* dir_;
};
TempDir* BnbOracle::dir_ = nullptr;

TEST_F(BnbOracle, DynamicMapEqualsCreateDynamicMap) {
  const auto file = SafetensorsFile::open(*dir_ / "codes.safetensors");
  const auto theirs = values_of<float>(file->tensor("dynamic_map"));
  const auto& ours = bnb::dynamic_map();
  EXPECT_EQ(theirs, std::vector<float>(ours.begin(), ours.end()));
}

TEST_F(BnbOracle, FourBitCodesAndQuantStateEqualBitsandbytes) {
  const auto file = SafetensorsFile::open(*dir_ / "codes.safetensors");
  const auto w = file->tensor("w");
  for (const auto type : {bnb::FourBitType::NF4, bnb::FourBitType::FP4}) {
    const std::string name(bnb::four_bit_type_name(type));
    SCOPED_TRACE(name);
    const auto ours =
        Bnb4Weight::quantize(w.data, w.dtype, w.shape[0], w.shape[1], type, 64, true, "w");
    EXPECT_EQ(difference(values_of<std::uint8_t>(file->tensor(name + ".weight")), ours->packed()),
              "");
    EXPECT_EQ(difference(values_of<float>(file->tensor(name + ".quant_map")), ours->code()), "");
    // bitsandbytes 0.50.2's CPU search for the nested codes is not always
    // the nearest code (its bucketed search misses for values below ~0.002
    // of the block absmax): on this tensor 2 of 480 absmax codes land one
    // step off the nearest. Ours is the exact nearest; allow one step on at
    // most 1% of the codes.
    const auto theirs_nested = values_of<std::uint8_t>(file->tensor(name + ".absmax"));
    ASSERT_EQ(theirs_nested.size(), ours->nested()->codes.size());
    std::size_t off_by_one = 0;
    for (std::size_t i = 0; i < theirs_nested.size(); ++i) {
      const int step = int{theirs_nested[i]} - int{ours->nested()->codes[i]};
      EXPECT_LE(std::abs(step), 1) << "absmax code " << i;
      off_by_one += step != 0;
    }
    EXPECT_LE(off_by_one, theirs_nested.size() / 100);
    EXPECT_EQ(
        difference(values_of<float>(file->tensor(name + ".nested_absmax")), ours->nested()->absmax),
        "");
    EXPECT_EQ(difference(values_of<float>(file->tensor(name + ".nested_quant_map")),
                         ours->nested()->code),
              "");
    const auto state_bytes = values_of<std::uint8_t>(file->tensor(name + ".state"));
    const auto state = nlohmann::json::parse(state_bytes.begin(), state_bytes.end());
    EXPECT_EQ(state["nested_offset"].template get<double>(),
              static_cast<double>(ours->nested()->offset));
    const auto plain =
        Bnb4Weight::quantize(w.data, w.dtype, w.shape[0], w.shape[1], type, 64, false, "w");
    EXPECT_EQ(difference(values_of<float>(file->tensor(name + ".plain_absmax")), plain->absmax()),
              "");
  }
}

TEST_F(BnbOracle, Int8CodesAndScbEqualBitsandbytes) {
  const auto file = SafetensorsFile::open(*dir_ / "codes.safetensors");
  const auto w = file->tensor("w");
  const auto ours = Int8RowwiseWeight::quantize(w.data, w.dtype, w.shape[0], w.shape[1], 6.0f, "w");
  EXPECT_EQ(difference(values_of<std::int8_t>(file->tensor("int8.weight")), ours->codes()), "");
  EXPECT_EQ(difference(values_of<float>(file->tensor("int8.SCB")), ours->scb()), "");
}

TEST_F(BnbOracle, DirectoryInLinear4bitSerializationLoadsWithItsLogits) {
  const auto model = load_model(*dir_ / "model_nf4");
  EXPECT_EQ(model->named_weights()[1].second->describe(), "bnb nf4 block64 double-quant");
  const auto file = SafetensorsFile::open(*dir_ / "model_nf4_logits.safetensors");
  const auto ids = values_of<std::int32_t>(file->tensor("ids"));
  const auto expected = values_of<float>(file->tensor("logits"));
  const auto actual = model->forward(ids);
  ASSERT_EQ(expected.size(), actual.size());
  double diff = 0, norm = 0;
  for (std::size_t i = 0; i < expected.size(); ++i) {
    diff += std::pow(double(actual[i]) - expected[i], 2);
    norm += std::pow(double(expected[i]), 2);
  }
  // bitsandbytes rounds the dequantized weights to bf16; we multiply the
  // fp32 code x absmax directly.
  EXPECT_LT(std::sqrt(diff / norm), 5e-3);
}

}  // namespace
}  // namespace uq

namespace uq {
namespace {

TEST(BnbCli, Fp4WithoutDoubleQuantAndBadOptions) {
  TempDir dir;
  const auto quantized = test::run_uq({"quantize", test::bundled_model().string(), "-o",
                                       (dir / "fp4").string(), "--backend", "bnb", "--bits", "4",
                                       "--bnb-4bit-quant-type", "fp4", "--bnb-no-double-quant"});
  ASSERT_EQ(quantized.exit_code, 0) << quantized.err;
  const auto model = load_model(dir / "fp4");
  EXPECT_EQ(model->named_weights()[1].second->describe(), "bnb fp4 block64");
  const auto file = SafetensorsFile::open(dir / "fp4" / "model.safetensors");
  EXPECT_EQ(file->tensor("model.layers.0.mlp.up_proj.weight.absmax").dtype, DType::F32);
  EXPECT_FALSE(file->contains("model.layers.0.mlp.up_proj.weight.nested_absmax"));
  EXPECT_TRUE(file->contains("model.layers.0.mlp.up_proj.weight.quant_state.bitsandbytes__fp4"));

  const auto bad_type =
      test::run_uq({"quantize", test::bundled_model().string(), "-o", (dir / "x").string(),
                    "--backend", "bnb", "--bnb-4bit-quant-type", "int4"});
  EXPECT_NE(bad_type.exit_code, 0);
  EXPECT_NE(bad_type.err.find("bnb_4bit_quant_type 'int4'"), std::string::npos) << bad_type.err;
  const auto bad_bits = test::run_uq({"quantize", test::bundled_model().string(), "-o",
                                      (dir / "x").string(), "--backend", "bnb", "--bits", "3"});
  EXPECT_NE(bad_bits.exit_code, 0);
  EXPECT_NE(bad_bits.err.find("supported: 4, 8"), std::string::npos) << bad_bits.err;
}

TEST(BnbLayout, MissingQuantStatePieceIsNamed) {
  auto [model, quantizer] = quantize_model(test::bundled().model, bnb_config(4));
  TempDir dir;
  quantizer.save_model(*model, dir / "nf4");
  // Rewrite the checkpoint without one layer's quant_map.
  const auto source = SafetensorsFile::open(dir / "nf4" / "model.safetensors");
  const std::string dropped = "model.layers.2.mlp.down_proj.weight.quant_map";
  {
    SafetensorsWriter writer(dir / "broken.safetensors");
    for (const auto& name : source->names()) {
      if (name == dropped) continue;
      const auto view = source->tensor(name);
      writer.add(name, view.dtype, view.shape, {view.data, view.nbytes});
    }
    writer.commit();
  }
  std::filesystem::rename(dir / "broken.safetensors", dir / "nf4" / "model.safetensors");
  try {
    load_model(dir / "nf4");
    FAIL() << "a checkpoint without " << dropped << " loaded";
  } catch (const Error& error) {
    EXPECT_NE(std::string(error.what()).find(dropped), std::string::npos) << error.what();
  }
}

}  // namespace
}  // namespace uq

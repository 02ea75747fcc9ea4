#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>

#include "core/error.hpp"
#include "io/hf_config.hpp"
#include "support/test_support.hpp"

namespace uq {
namespace {

using nlohmann::json;
using ::testing::HasSubstr;

json minimal(const std::string& type) {
  return {{"model_type", type},
          {"hidden_size", 64},
          {"num_hidden_layers", 2},
          {"num_attention_heads", 4},
          {"intermediate_size", 96},
          {"vocab_size", 100},
          {"max_position_embeddings", 128}};
}

std::string error_of(const json& raw) {
  try {
    parse_model_config(raw, "cfg.json");
  } catch (const Error& error) {
    return error.what();
  }
  return "";
}

TEST(HfConfig, BundledModel) {
  const ModelConfig config = load_model_config(test::bundled_model() / "config.json");
  EXPECT_EQ(config.model_type, "llama");
  EXPECT_EQ(config.hidden_size, 256);
  EXPECT_EQ(config.num_hidden_layers, 4);
  EXPECT_EQ(config.num_attention_heads, 8);
  EXPECT_EQ(config.num_key_value_heads, 4);
  EXPECT_EQ(config.head_dim, 32);
  EXPECT_EQ(config.intermediate_size, 768);
  EXPECT_EQ(config.vocab_size, 4096);
  EXPECT_EQ(config.max_position_embeddings, 1024);
  EXPECT_DOUBLE_EQ(config.rms_norm_eps, 1e-5);
  EXPECT_DOUBLE_EQ(config.rope_theta, 10000.0);
  EXPECT_EQ(config.rope_scaling.kind, RopeScaling::Kind::Default);
  EXPECT_FALSE(config.tie_word_embeddings);
  EXPECT_FALSE(config.attention_bias);
  EXPECT_FALSE(config.sliding_window.has_value());
  EXPECT_EQ(config.eos_token_ids, std::vector<std::int32_t>{0});
  EXPECT_EQ(config.dtype, DType::BF16);
  EXPECT_EQ(config.raw["architectures"][0], "LlamaForCausalLM");
}

TEST(HfConfig, DefaultsFollowTransformers) {
  const ModelConfig config = parse_model_config(minimal("llama"), "cfg.json");
  EXPECT_EQ(config.num_key_value_heads, 4);
  EXPECT_EQ(config.head_dim, 16);
  EXPECT_DOUBLE_EQ(config.rope_theta, 10000.0);
  EXPECT_EQ(config.dtype, DType::F32);
  EXPECT_TRUE(config.bos_token_ids.empty());
}

TEST(HfConfig, RopeThetaAndScalingSpellings) {
  json old_style = minimal("llama");
  old_style["rope_theta"] = 500000.0;
  old_style["rope_scaling"] = {{"rope_type", "llama3"},
                               {"factor", 8.0},
                               {"low_freq_factor", 1.0},
                               {"high_freq_factor", 4.0},
                               {"original_max_position_embeddings", 8192}};
  ModelConfig config = parse_model_config(old_style, "cfg.json");
  EXPECT_DOUBLE_EQ(config.rope_theta, 500000.0);
  EXPECT_EQ(config.rope_scaling.kind, RopeScaling::Kind::Llama3);
  EXPECT_EQ(config.rope_scaling.original_max_position_embeddings, 8192);

  json new_style = minimal("llama");
  new_style["rope_parameters"] = {{"rope_type", "linear"}, {"rope_theta", 1e6}, {"factor", 2.0}};
  config = parse_model_config(new_style, "cfg.json");
  EXPECT_DOUBLE_EQ(config.rope_theta, 1e6);
  EXPECT_EQ(config.rope_scaling.kind, RopeScaling::Kind::Linear);
  EXPECT_DOUBLE_EQ(config.rope_scaling.factor, 2.0);

  json legacy_type = minimal("llama");
  legacy_type["rope_scaling"] = {{"type", "linear"}, {"factor", 4.0}};
  EXPECT_DOUBLE_EQ(parse_model_config(legacy_type, "cfg.json").rope_scaling.factor, 4.0);
}

TEST(HfConfig, UnsupportedRopeTypeIsNamed) {
  json raw = minimal("llama");
  raw["rope_parameters"] = {{"rope_type", "yarn"}, {"rope_theta", 1e4}, {"factor", 4.0}};
  EXPECT_THAT(error_of(raw), HasSubstr("unsupported rope type 'yarn'"));
  EXPECT_THAT(error_of(raw), HasSubstr("cfg.json"));
  raw["rope_parameters"] = {{"rope_type", "default"}, {"partial_rotary_factor", 0.5}};
  EXPECT_THAT(error_of(raw), HasSubstr("partial_rotary_factor"));
}

TEST(HfConfig, FamilySpecifics) {
  json qwen = minimal("qwen2");
  qwen["tie_word_embeddings"] = true;
  qwen["sliding_window"] = 32;  // ignored: use_sliding_window is off
  ModelConfig config = parse_model_config(qwen, "cfg.json");
  EXPECT_TRUE(config.attention_bias);
  EXPECT_FALSE(config.o_proj_bias);
  EXPECT_TRUE(config.tie_word_embeddings);
  EXPECT_FALSE(config.sliding_window.has_value());

  qwen["use_sliding_window"] = true;
  qwen["max_window_layers"] = 1;
  config = parse_model_config(qwen, "cfg.json");
  EXPECT_EQ(config.sliding_window, 32);
  EXPECT_EQ(config.layer_uses_sliding_window, (std::vector<bool>{false, true}));

  json mistral = minimal("mistral");
  mistral["sliding_window"] = 16;
  config = parse_model_config(mistral, "cfg.json");
  EXPECT_EQ(config.sliding_window, 16);
  EXPECT_EQ(config.layer_uses_sliding_window, (std::vector<bool>{true, true}));
  mistral["sliding_window"] = nullptr;
  EXPECT_FALSE(parse_model_config(mistral, "cfg.json").sliding_window.has_value());

  json llama = minimal("llama");
  llama["attention_bias"] = true;
  llama["mlp_bias"] = true;
  llama["eos_token_id"] = {1, 2};
  llama["torch_dtype"] = "float16";
  config = parse_model_config(llama, "cfg.json");
  EXPECT_TRUE(config.attention_bias && config.o_proj_bias && config.mlp_bias);
  EXPECT_EQ(config.eos_token_ids, (std::vector<std::int32_t>{1, 2}));
  EXPECT_EQ(config.dtype, DType::F16);
}

TEST(HfConfig, ErrorsNameFileAndField) {
  json raw = minimal("llama");
  raw.erase("hidden_size");
  EXPECT_THAT(error_of(raw), HasSubstr("cfg.json: missing required field 'hidden_size'"));

  raw = minimal("gpt2");
  EXPECT_THAT(error_of(raw), HasSubstr("unsupported model_type 'gpt2'"));
  EXPECT_THAT(error_of(raw), HasSubstr("llama, mistral, qwen2"));

  raw = minimal("llama");
  raw["hidden_act"] = "gelu";
  EXPECT_THAT(error_of(raw), HasSubstr("hidden_act"));

  raw = minimal("llama");
  raw["num_key_value_heads"] = 3;
  EXPECT_THAT(error_of(raw), HasSubstr("num_key_value_heads"));

  raw = minimal("llama");
  raw["vocab_size"] = "many";
  EXPECT_THAT(error_of(raw), HasSubstr("'vocab_size' must be an integer"));

  test::TempDir dir;
  std::ofstream(dir / "config.json") << "{not json";
  EXPECT_THROW(load_model_config(dir / "config.json"), Error);
  EXPECT_THROW(load_model_config(dir / "absent.json"), Error);
}

}  // namespace
}  // namespace uq

// The HF <-> GGUF llama mapping: tensor names, the q/k row order (hand-derived),
// the Q4_K_M recipe, and tokenizers surviving the tokenizer.ggml.* round trip.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "core/error.hpp"
#include "io/formats/gguf_llama.hpp"
#include "io/formats/gguf_reader.hpp"
#include "io/formats/gguf_recipe.hpp"
#include "io/formats/gguf_writer.hpp"
#include "io/hf_config.hpp"
#include "io/tokenizer/tokenizer.hpp"
#include "support/test_support.hpp"

namespace uq {
namespace {

TEST(GgufLlama, ModuleNamesBothWays) {
  EXPECT_EQ(gguf_module_name("model.layers.12.self_attn.o_proj"), "blk.12.attn_output");
  EXPECT_EQ(gguf_module_name("model.layers.0.post_attention_layernorm"), "blk.0.ffn_norm");
  EXPECT_EQ(gguf_module_name("model.embed_tokens"), "token_embd");
  EXPECT_EQ(gguf_module_name("lm_head"), "output");
  EXPECT_FALSE(gguf_module_name("model.layers.0.self_attn.rotary_emb"));
  EXPECT_EQ(hf_module_name("blk.3.ffn_down"), "model.layers.3.mlp.down_proj");
  EXPECT_EQ(hf_module_name("output_norm"), "model.norm");
  EXPECT_FALSE(hf_module_name("rope_freqs"));
}

TEST(GgufLlama, QkRowOrderPairsRotaryHalves) {
  // 2 heads of 4 rows: GGUF rows (0,1,2,3) of head 0 are HF rows (0,2,1,3).
  EXPECT_EQ(gguf_qk_row_order(2, 4), (std::vector<std::int64_t>{0, 2, 1, 3, 4, 6, 5, 7}));
}

TEST(GgufLlama, Q4KMRecipe) {
  const auto recipe = *parse_gguf_recipe("q4_k_m");
  // 32 layers: use_more_bits = i < 4, i >= 28, or (i - 4) % 3 == 2.
  EXPECT_EQ(gguf_tensor_type(recipe, "output", 32, 4096), GgmlType::Q6_K);
  EXPECT_EQ(gguf_tensor_type(recipe, "token_embd", 32, 4096), GgmlType::Q4_K);
  EXPECT_EQ(gguf_tensor_type(recipe, "blk.3.attn_v", 32, 4096), GgmlType::Q6_K);
  EXPECT_EQ(gguf_tensor_type(recipe, "blk.4.attn_v", 32, 4096), GgmlType::Q4_K);
  EXPECT_EQ(gguf_tensor_type(recipe, "blk.6.ffn_down", 32, 14336), GgmlType::Q6_K);
  EXPECT_EQ(gguf_tensor_type(recipe, "blk.7.ffn_down", 32, 14336), GgmlType::Q4_K);
  EXPECT_EQ(gguf_tensor_type(recipe, "blk.28.attn_v", 32, 4096), GgmlType::Q6_K);
  EXPECT_EQ(gguf_tensor_type(recipe, "blk.6.attn_q", 32, 4096), GgmlType::Q4_K);
  // Rows a 256-block does not tile fall back as in llama.cpp.
  EXPECT_EQ(gguf_tensor_type(recipe, "blk.4.attn_q", 32, 4160), GgmlType::Q5_0);
  EXPECT_EQ(gguf_tensor_type(recipe, "output", 32, 4160), GgmlType::Q8_0);
  EXPECT_EQ(gguf_tensor_type(recipe, "output", 32, 100), GgmlType::F16);
  EXPECT_FALSE(parse_gguf_recipe("Q3_K_M"));
}

// Writes the tokenizer as GGUF metadata, reads it back as tokenizer.json and
// checks both tokenizers agree on `text`.
void expect_round_trip(const std::string& tokenizer_json, const std::string& text,
                       const std::string& expected_pre) {
  const Tokenizer original = Tokenizer::from_json(tokenizer_json);
  const auto pre = gguf_pre_tokenizer_name(nlohmann::json::parse(tokenizer_json));
  ASSERT_EQ(pre, expected_pre);
  test::TempDir dir;
  ModelConfig config;
  config.bos_token_ids = {0};
  {
    GgufWriter writer(dir / "t.gguf");
    add_tokenizer_metadata(writer, original, *pre, original.vocab_size() + 3, config);
    writer.commit();
  }
  const auto file = GgufFile::open(dir / "t.gguf");
  EXPECT_EQ(file->string_array("tokenizer.ggml.tokens").back(),
            "[PAD" + std::to_string(original.vocab_size() + 2) + "]");
  const Tokenizer restored = Tokenizer::from_json(tokenizer_json_from_gguf(*file));
  EXPECT_EQ(restored.encode(text), original.encode(text));
  EXPECT_EQ(restored.decode(original.encode(text)), original.decode(original.encode(text)));
}

TEST(GgufLlama, TokenizerRoundTripGpt2AndLlama3) {
  const std::string text =
      "Hello world, don't 123 4567 caf\xC3\xA9  \xE6\x97\xA5\xE6\x9C\xAC\n\nThe <|endoftext|> end";
  expect_round_trip(test::read_text(test::bundled_model() / "tokenizer.json"), text, "gpt-2");
  const std::string seed = test::read_text(test::source_path("fuzz/corpus/tokenizer/llama3_style"));
  expect_round_trip(seed.substr(0, seed.find('\0')), text, "llama-bpe");
}

TEST(GgufLlama, UnsupportedTokenizersAreRefused) {
  test::TempDir dir;
  {
    GgufWriter writer(dir / "t.gguf");
    writer.add_string("tokenizer.ggml.model", "llama");
    writer.commit();
  }
  try {
    (void)tokenizer_json_from_gguf(*GgufFile::open(dir / "t.gguf"));
    ADD_FAILURE() << "no error";
  } catch (const Error& error) {
    EXPECT_EQ(std::string(error.what()),
              (dir / "t.gguf").string() +
                  ": metadata 'tokenizer.ggml.model' 'llama' is not supported (only byte-level "
                  "BPE, \"gpt2\")");
  }
}

}  // namespace
}  // namespace uq

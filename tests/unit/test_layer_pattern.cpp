#include <gtest/gtest.h>

#include "core/error.hpp"
#include "quant/layer_pattern.hpp"

namespace uq {
namespace {

struct PatternCase {
  const char* pattern;
  const char* path;
  bool matches;
};

// The rule table of DESIGN.md §4.3.
constexpr PatternCase kCases[] = {
    {"lm_head", "lm_head", true},                                              // whole path
    {"model.layers.1", "model.layers.1.mlp.up_proj", true},                    // dot prefix
    {"model.layers.1", "model.layers.10.mlp.up_proj", false},                  // not 10
    {"model.layers.1", "model.layers.11", false},                              //
    {"transformer.h.0", "transformer.h.0.attn.c_attn", true},                  //
    {"transformer.h.0", "transformer.h.10.attn.c_attn", false},                //
    {"transformer.h.1", "transformer.h.10", false},                            //
    {"self_attn.q_proj", "model.layers.3.self_attn.q_proj", true},             // inner run
    {"layers.3.mlp", "model.layers.3.mlp.down_proj", true},                    //
    {"layers.3.mlp", "model.layers.13.mlp.down_proj", false},                  //
    {"mlp.up", "model.layers.3.mlp.up_proj", false},                           // runs are whole
    {"embed", "model.embed_tokens", true},                                     // substring
    {"proj", "model.layers.0.self_attn.o_proj", true},                         //
    {"head", "lm_head", true},                                                 //
    {"q_proj", "model.layers.0.self_attn.k_proj", false},                      //
    {"model.layers.0.self_attn.q_proj", "model.layers.0.self_attn.q_proj", true},
    {"model.layers.0.self_attn.q_proj.x", "model.layers.0.self_attn.q_proj", false},
    {"re:layers\\.[0-3]\\.mlp", "model.layers.2.mlp.gate_proj", true},        // regex
    {"re:layers\\.[0-3]\\.mlp", "model.layers.5.mlp.gate_proj", false},       //
    {"re:^lm_head$", "lm_head", true},                                         //
    {"re:^lm_head$", "model.lm_head.x", false},                                //
    {"", "lm_head", false},                                                    //
};

TEST(LayerPattern, RuleTable) {
  for (const auto& c : kCases) {
    EXPECT_EQ(pattern_matches(c.pattern, c.path), c.matches) << c.pattern << " vs " << c.path;
  }
}

TEST(LayerPattern, LongestKeyWins) {
  const std::map<std::string, int> layer_bits{
      {"embed", 8}, {"lm_head", 8}, {"model.layers.0", 6}, {"model.layers.0.mlp", 3}};
  EXPECT_EQ(bits_for_module("model.embed_tokens", 4, layer_bits, {}), 8);
  EXPECT_EQ(bits_for_module("lm_head", 4, layer_bits, {}), 8);
  EXPECT_EQ(bits_for_module("model.layers.0.self_attn.q_proj", 4, layer_bits, {}), 6);
  EXPECT_EQ(bits_for_module("model.layers.0.mlp.up_proj", 4, layer_bits, {}), 3);
  EXPECT_EQ(bits_for_module("model.layers.10.mlp.up_proj", 4, layer_bits, {}), 4);
}

TEST(LayerPattern, SixteenOrZeroBitsAndSkipKeepFloat) {
  const std::map<std::string, int> layer_bits{{"lm_head", 16}, {"embed", 0}};
  EXPECT_EQ(bits_for_module("lm_head", 4, layer_bits, {}), 0);
  EXPECT_EQ(bits_for_module("model.embed_tokens", 4, layer_bits, {}), 0);
  EXPECT_EQ(bits_for_module("model.layers.1.mlp.up_proj", 4, layer_bits, {"mlp"}), 0);
  EXPECT_EQ(bits_for_module("model.layers.1.self_attn.v_proj", 4, layer_bits, {"mlp"}), 4);
}

TEST(LayerPattern, InvalidRegexNamesThePattern) {
  try {
    pattern_matches("re:([", "lm_head");
    FAIL() << "expected an error";
  } catch (const Error& error) {
    EXPECT_NE(std::string(error.what()).find("re:(["), std::string::npos) << error.what();
  }
}

}  // namespace
}  // namespace uq

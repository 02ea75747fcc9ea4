// Decoding through the int8-activation GEMV: the bundled model quantized at 8
// bits (mlx backend) still continues the reference prompt greedily exactly as
// transformers' float model does (tests/data/refs.json), and as the exact
// float GEMV does at 8 and at 4 bits.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "api/quantize.hpp"
#include "kernels/cpu/affine_gemv_int8.hpp"
#include "model/decoder.hpp"
#include "support/test_support.hpp"

namespace uq {
namespace {

struct Greedy {
  std::vector<std::int32_t> prompt;
  std::vector<std::int32_t> expected;
};

Greedy reference_greedy() {
  std::ifstream in(test::source_path("tests/data/refs.json"));
  const auto greedy = nlohmann::json::parse(in)["greedy_prompt0"];
  return {greedy["prompt_ids"].get<std::vector<std::int32_t>>(),
          greedy["output_ids"].get<std::vector<std::int32_t>>()};
}

std::vector<std::int32_t> greedy_ids(const Model& model, const Greedy& greedy, bool exact) {
  const bool was_exact = cpu::exact_gemv();
  cpu::set_exact_gemv(exact);
  GenerationOptions options;
  options.max_new_tokens = static_cast<std::int64_t>(greedy.expected.size() - greedy.prompt.size());
  auto ids = model.generate(greedy.prompt, options).ids;
  cpu::set_exact_gemv(was_exact);
  return ids;
}

TEST(Int8Decode, GreedyContinuationMatchesTheFloatPath) {
  const auto greedy = reference_greedy();
  for (int bits : {8, 4}) {
    UnifiedQuantizationConfig config;
    config.bits = bits;
    config.backend = "mlx";
    config.device = "cpu";
    const auto model = quantize_model(test::bundled_model(), config).first;
    const auto int8 = greedy_ids(*model, greedy, false);
    EXPECT_EQ(int8, greedy_ids(*model, greedy, true)) << bits << " bits";
    if (bits == 8) {
      EXPECT_EQ(int8, greedy.expected);
    }
  }
}

}  // namespace
}  // namespace uq

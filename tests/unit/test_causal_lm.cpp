// The CausalLM interface the perplexity protocol and generation run on: the CPU Model's
// sequences are its KV-cache forward, forward_greedy is the argmax of the last logits.
#include <gtest/gtest.h>

#include "model/causal_lm.hpp"
#include "model/decoder.hpp"
#include "model/sampling.hpp"
#include "support/test_support.hpp"

namespace {

TEST(CausalLM, CpuSequenceIsTheCachedForward) {
  const auto& model = *uq::test::bundled().model;
  const auto& ids = uq::test::bundled().val_ids;
  const std::span<const std::int32_t> prompt(ids.data(), 20);
  const std::span<const std::int32_t> next(ids.data() + 20, 3);

  uq::KVCache cache = model.make_cache();
  const auto prompt_logits = model.forward(prompt, cache, uq::LogitsMode::All);
  const auto next_logits = model.forward(next, cache, uq::LogitsMode::Last);

  auto sequence = static_cast<const uq::CausalLM&>(model).start_sequence();
  EXPECT_EQ(sequence->forward(prompt, uq::LogitsMode::All), prompt_logits);
  EXPECT_EQ(sequence->length(), 20);
  EXPECT_EQ(sequence->forward(next, uq::LogitsMode::Last), next_logits);
  EXPECT_EQ(sequence->length(), 23);

  auto greedy = model.start_sequence();
  greedy->forward(prompt, uq::LogitsMode::Last);
  EXPECT_EQ(greedy->forward_greedy(next), uq::argmax(next_logits));
}

}  // namespace

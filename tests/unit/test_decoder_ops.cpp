// RMSNorm, RoPE, attention with the KV cache, and sampling against values
// computed by hand or by transformers.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <map>
#include <random>
#include <vector>

#include "core/error.hpp"
#include "io/hf_config.hpp"
#include "model/attention.hpp"
#include "model/kv_cache.hpp"
#include "model/rms_norm.hpp"
#include "model/rope.hpp"
#include "model/sampling.hpp"

namespace uq {
namespace {

ModelConfig rope_config(const nlohmann::json& rope_parameters) {
  nlohmann::json raw = {{"model_type", "llama"},  {"hidden_size", 64},
                        {"num_hidden_layers", 1}, {"num_attention_heads", 4},
                        {"head_dim", 16},         {"intermediate_size", 8},
                        {"vocab_size", 8},        {"rope_parameters", rope_parameters}};
  return parse_model_config(raw, "test");
}

TEST(RmsNorm, MatchesFormula) {
  const std::vector<float> x{1.0f, -2.0f, 3.0f, 0.5f};
  const std::vector<float> weight{1.0f, 0.5f, 2.0f, -1.0f};
  std::vector<float> out(4);
  rms_norm(x.data(), 1, 4, weight.data(), 1e-5f, out.data());
  const float mean_square = (1.0f + 4.0f + 9.0f + 0.25f) / 4.0f;
  const float inverse_rms = 1.0f / std::sqrt(mean_square + 1e-5f);
  for (int i = 0; i < 4; ++i) EXPECT_NEAR(out[i], weight[i] * x[i] * inverse_rms, 1e-6f);
}

TEST(Rope, Llama3FrequenciesMatchTransformers) {
  const Rope rope(rope_config({{"rope_type", "llama3"},
                               {"rope_theta", 10000.0},
                               {"factor", 8.0},
                               {"low_freq_factor", 1.0},
                               {"high_freq_factor", 4.0},
                               {"original_max_position_embeddings", 64}}));
  // transformers 5.24 _compute_llama3_parameters for this config.
  const std::vector<float> expected{
      1.0f,           0.244384587f,    0.0130422562f,   0.00395284733f,
      0.00124999997f, 0.000395284733f, 0.000125000006f, 3.95284733e-05f};
  ASSERT_EQ(rope.inverse_frequencies().size(), expected.size());
  for (std::size_t i = 0; i < expected.size(); ++i) {
    EXPECT_NEAR(rope.inverse_frequencies()[i], expected[i], expected[i] * 1e-6f) << i;
  }
}

TEST(Rope, LinearDividesFrequencies) {
  const Rope plain(rope_config({{"rope_type", "default"}, {"rope_theta", 10000.0}}));
  const Rope linear(
      rope_config({{"rope_type", "linear"}, {"rope_theta", 10000.0}, {"factor", 4.0}}));
  for (std::size_t i = 0; i < 8; ++i) {
    EXPECT_FLOAT_EQ(linear.inverse_frequencies()[i], plain.inverse_frequencies()[i] / 4.0f);
  }
  EXPECT_FLOAT_EQ(plain.inverse_frequencies()[1], std::pow(10000.0f, -2.0f / 16.0f));
}

// rotate_half pairs element i with i + head_dim/2 (not 2i with 2i+1).
TEST(Rope, RotatesHalvesByPositionTimesFrequency) {
  const Rope rope(rope_config({{"rope_type", "default"}, {"rope_theta", 10000.0}}));
  std::vector<float> x(16, 0.0f);
  x[1] = 1.0f;  // (x1, x2) = (1, 0) in pair 1
  x[9] = 0.0f;
  rope.apply(x.data(), 1, 1, 3);
  const float angle = 3.0f * rope.inverse_frequencies()[1];
  EXPECT_NEAR(x[1], std::cos(angle), 1e-6f);
  EXPECT_NEAR(x[9], std::sin(angle), 1e-6f);
  for (int i : {0, 2, 8, 10}) EXPECT_EQ(x[i], 0.0f);

  std::vector<float> unchanged{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};
  const auto before = unchanged;
  rope.apply(unchanged.data(), 1, 1, 0);  // position 0: identity
  EXPECT_EQ(unchanged, before);
}

// Naive attention over explicit K/V for comparison.
std::vector<float> naive_attention(const std::vector<float>& q, const std::vector<float>& k,
                                   const std::vector<float>& v, std::int64_t count,
                                   const AttentionShape& shape) {
  const std::int64_t d = shape.head_dim;
  std::vector<float> out(q.size(), 0.0f);
  for (std::int64_t t = 0; t < count; ++t) {
    for (std::int64_t h = 0; h < shape.heads; ++h) {
      const std::int64_t kv = h / (shape.heads / shape.kv_heads);
      std::vector<double> weights;
      std::vector<std::int64_t> keys;
      for (std::int64_t j = 0; j <= t; ++j) {
        if (shape.sliding_window && t - j >= *shape.sliding_window) continue;
        double dot = 0.0;
        for (std::int64_t i = 0; i < d; ++i) {
          dot += q[(t * shape.heads + h) * d + i] * k[(j * shape.kv_heads + kv) * d + i];
        }
        weights.push_back(std::exp(dot / std::sqrt(static_cast<double>(d))));
        keys.push_back(j);
      }
      double total = 0.0;
      for (double w : weights) total += w;
      for (std::size_t n = 0; n < keys.size(); ++n) {
        for (std::int64_t i = 0; i < d; ++i) {
          out[(t * shape.heads + h) * d + i] +=
              static_cast<float>(weights[n] / total * v[(keys[n] * shape.kv_heads + kv) * d + i]);
        }
      }
    }
  }
  return out;
}

class Attention : public ::testing::TestWithParam<std::tuple<std::int64_t, std::int64_t>> {};

// Causal GQA with and without a sliding window, on the per-token path (few
// tokens) and the blocked sgemm path (many, across query blocks); a prompt
// processed in one call and token by token through the cache agree.
TEST_P(Attention, MatchesNaiveInOneCallAndIncrementally) {
  const auto [window, count] = GetParam();
  AttentionShape shape;
  shape.heads = 4;
  shape.kv_heads = 2;
  shape.head_dim = 8;
  if (window > 0) shape.sliding_window = window;
  std::mt19937 random(5);
  std::normal_distribution<float> normal;
  auto fill = [&](std::int64_t n) {
    std::vector<float> values(static_cast<std::size_t>(n));
    for (auto& value : values) value = normal(random);
    return values;
  };
  const auto q = fill(count * 4 * 8);
  const auto k = fill(count * 2 * 8);
  const auto v = fill(count * 2 * 8);
  const auto expected = naive_attention(q, k, v, count, shape);

  KVCache whole(1, 2, 8);
  whole.reserve_more(count);
  whole.store(0, k.data(), v.data(), count);
  std::vector<float> out(q.size());
  causal_attention(q.data(), count, 0, whole, 0, shape, out.data());
  whole.advance(count);
  for (std::size_t i = 0; i < out.size(); ++i) ASSERT_NEAR(out[i], expected[i], 1e-5f) << i;

  // A prefix in one call, the rest one by one.
  const std::int64_t prefix = count / 3;
  KVCache incremental(1, 2, 8);
  incremental.reserve_more(prefix);
  incremental.store(0, k.data(), v.data(), prefix);
  std::vector<float> head(static_cast<std::size_t>(prefix * 32));
  causal_attention(q.data(), prefix, 0, incremental, 0, shape, head.data());
  incremental.advance(prefix);
  for (std::size_t i = 0; i < head.size(); ++i) ASSERT_NEAR(head[i], expected[i], 1e-5f);
  for (std::int64_t t = prefix; t < count; ++t) {
    incremental.reserve_more(1);
    incremental.store(0, k.data() + t * 16, v.data() + t * 16, 1);
    std::vector<float> row(32);
    causal_attention(q.data() + t * 32, 1, t, incremental, 0, shape, row.data());
    incremental.advance(1);
    for (std::size_t i = 0; i < 32; ++i) ASSERT_NEAR(row[i], expected[t * 32 + i], 1e-5f);
  }
  EXPECT_EQ(incremental.length(), count);

  // Two calls: the second starts at a non-zero position with a cached prefix.
  KVCache halves(1, 2, 8);
  const std::int64_t first_half = count / 2;
  halves.reserve_more(count);
  halves.store(0, k.data(), v.data(), first_half);
  causal_attention(q.data(), first_half, 0, halves, 0, shape, out.data());
  halves.advance(first_half);
  halves.store(0, k.data() + first_half * 16, v.data() + first_half * 16, count - first_half);
  causal_attention(q.data() + first_half * 32, count - first_half, first_half, halves, 0, shape,
                   out.data() + first_half * 32);
  for (std::size_t i = 0; i < out.size(); ++i) ASSERT_NEAR(out[i], expected[i], 1e-5f) << i;
}

INSTANTIATE_TEST_SUITE_P(WindowsAndLengths, Attention,
                         ::testing::Combine(::testing::Values(0, 1, 4, 50),
                                            ::testing::Values(11, 150)));

TEST(Sampling, GreedyTakesFirstMaximum) {
  const std::vector<float> logits{0.5f, 2.0f, -1.0f, 2.0f};
  EXPECT_EQ(argmax(logits), 1);
  Sampler greedy({});
  EXPECT_EQ(greedy.next(logits), 1);
}

// NaN logits (from NaN weights) made max_element pick an arbitrary token; now every way of
// choosing one refuses them, naming the first bad logit.
TEST(Sampling, NonFiniteLogitsAreRefused) {
  for (const float bad :
       {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity()}) {
    const std::vector<float> logits{0.5f, 2.0f, bad, 1.0f};
    EXPECT_THROW(argmax(logits), Error);
    EXPECT_THROW(sampling_candidates(logits, 1.0f, 0, 1.0f), Error);
    EXPECT_THROW(sample(logits, {1.0f, 0, 1.0f, 0}, 0.5), Error);
    Sampler greedy({});
    EXPECT_THROW(greedy.next(logits), Error);
  }
  try {
    argmax(std::vector<float>{1.0f, std::numeric_limits<float>::quiet_NaN()});
  } catch (const Error& error) {
    EXPECT_STREQ(error.what(),
                 "sampling: logit 1 is nan (NaN or infinite weights? --check-tensors names the "
                 "tensor)");
  }
}

TEST(Sampling, TopPKeepsSmallestSetReachingMass) {
  // Probabilities 0.5, 0.3, 0.15, 0.05.
  const std::vector<float> logits{std::log(0.15f), std::log(0.5f), std::log(0.05f), std::log(0.3f)};
  auto kept = sampling_candidates(logits, 1.0f, 0, 0.75f);
  ASSERT_EQ(kept.size(), 2u);  // 0.5 + 0.3 >= 0.75; 0.5 alone is not
  EXPECT_EQ(kept[0].token, 1);
  EXPECT_EQ(kept[1].token, 3);
  EXPECT_NEAR(kept[0].probability, 0.5f / 0.8f, 1e-6f);
  EXPECT_EQ(sampling_candidates(logits, 1.0f, 0, 0.5f).size(), 1u);
  EXPECT_EQ(sampling_candidates(logits, 1.0f, 0, 0.81f).size(), 3u);
  EXPECT_EQ(sampling_candidates(logits, 1.0f, 0, 1.0f).size(), 4u);
  // top-k first, then top-p on the renormalised survivors.
  kept = sampling_candidates(logits, 1.0f, 2, 0.7f);
  ASSERT_EQ(kept.size(), 2u);  // 0.5/0.8 = 0.625 < 0.7
  // Temperature sharpens: at T = 0.5 the top token alone holds 0.25/0.3525.
  kept = sampling_candidates(logits, 0.5f, 0, 1.0f);
  EXPECT_NEAR(kept[0].probability, 0.25f / (0.25f + 0.09f + 0.0225f + 0.0025f), 1e-5f);
}

TEST(Sampling, SeededAndDistributedAsProbabilities) {
  const std::vector<float> logits{std::log(0.6f), std::log(0.3f), std::log(0.1f)};
  SamplingOptions options;
  options.temperature = 1.0f;
  options.seed = 42;
  Sampler first(options);
  Sampler second(options);
  std::map<std::int32_t, int> counts;
  const int draws = 20000;
  for (int i = 0; i < draws; ++i) {
    const auto token = first.next(logits);
    EXPECT_EQ(token, second.next(logits));
    ++counts[token];
  }
  EXPECT_NEAR(counts[0] / double(draws), 0.6, 0.02);
  EXPECT_NEAR(counts[1] / double(draws), 0.3, 0.02);
  EXPECT_NEAR(counts[2] / double(draws), 0.1, 0.02);
  options.top_k = 1;
  Sampler top1(options);
  for (int i = 0; i < 100; ++i) EXPECT_EQ(top1.next(logits), 0);
}

// next() is sample() with the stream's next draw (what a device sampler is given), and the
// draw picks the first candidate whose running probability exceeds it.
TEST(Sampling, NextIsSampleWithTheNextDraw) {
  const std::vector<float> logits{std::log(0.15f), std::log(0.5f), std::log(0.05f), std::log(0.3f)};
  SamplingOptions options;
  options.temperature = 1.0f;
  options.seed = 9;
  Sampler sampler(options);
  Sampler draws(options);
  for (int i = 0; i < 200; ++i) {
    const double draw = draws.next_draw();
    ASSERT_GE(draw, 0.0);
    ASSERT_LT(draw, 1.0);
    EXPECT_EQ(sampler.next(logits), sample(logits, options, draw));
  }
  EXPECT_EQ(sample(logits, options, 0.0), 1);
  EXPECT_EQ(sample(logits, options, 0.49), 1);
  EXPECT_EQ(sample(logits, options, 0.51), 3);
  EXPECT_EQ(sample(logits, options, 0.81), 0);
  EXPECT_EQ(sample(logits, options, 0.96), 2);
  EXPECT_EQ(sample(logits, options, 1.0), 2);  // past every sum: the last candidate
}

TEST(Sampling, RejectsBadOptions) {
  SamplingOptions options;
  options.top_p = 0.0f;
  EXPECT_THROW(Sampler{options}, Error);
  options = {};
  options.temperature = -1.0f;
  EXPECT_THROW(Sampler{options}, Error);
  options = {};
  options.top_k = -2;
  EXPECT_THROW(Sampler{options}, Error);
}

}  // namespace
}  // namespace uq

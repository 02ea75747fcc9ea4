#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "api/metrics.hpp"
#include "core/error.hpp"

namespace uq {
namespace {

TEST(Metrics, CosineSimilarityKnownValues) {
  const std::vector<float> a{1, 0, 0}, b{0, 1, 0}, c{2, 0, 0}, d{-1, 0, 0};
  EXPECT_FLOAT_EQ(cosine_similarity(a, b), 0.0f);
  EXPECT_FLOAT_EQ(cosine_similarity(a, c), 1.0f);
  EXPECT_FLOAT_EQ(cosine_similarity(a, d), -1.0f);
  const std::vector<float> e{1, 2, 3}, f{4, 5, 6};
  EXPECT_NEAR(cosine_similarity(e, f), 32.0 / std::sqrt(14.0 * 77.0), 1e-7);
  EXPECT_THROW(cosine_similarity(a, std::vector<float>{1, 2}), Error);
}

TEST(Metrics, KlDivergenceOfTwoDistributions) {
  // P = softmax(log(0.5, 0.5)), Q = softmax(log(0.9, 0.1)): KL = 0.5 ln(0.5/0.9) + 0.5 ln(0.5/0.1).
  const std::vector<float> p{std::log(0.5f), std::log(0.5f)};
  const std::vector<float> q{std::log(0.9f), std::log(0.1f)};
  const double expected = 0.5 * std::log(0.5 / 0.9) + 0.5 * std::log(0.5 / 0.1);
  EXPECT_NEAR(mean_kl_divergence(p, q, 2), expected, 1e-6);
  EXPECT_NEAR(mean_kl_divergence(p, p, 2), 0.0, 1e-12);
  // Shifting logits by a constant changes nothing.
  const std::vector<float> shifted{p[0] + 7, p[1] + 7};
  EXPECT_NEAR(mean_kl_divergence(shifted, q, 2), expected, 1e-6);
  EXPECT_THROW(mean_kl_divergence(p, q, 3), Error);
}

}  // namespace
}  // namespace uq

#include "api/metrics.hpp"

#include <cmath>
#include <vector>

#include "core/error.hpp"

namespace uq {
namespace {

// log-softmax of one row, in double.
void log_softmax(std::span<const float> logits, std::vector<double>& out) {
  double max_logit = -INFINITY;
  for (const float value : logits) max_logit = std::max(max_logit, static_cast<double>(value));
  double sum = 0.0;
  for (const float value : logits) sum += std::exp(static_cast<double>(value) - max_logit);
  const double log_sum = max_logit + std::log(sum);
  out.resize(logits.size());
  for (std::size_t i = 0; i < logits.size(); ++i) out[i] = logits[i] - log_sum;
}

}  // namespace

float cosine_similarity(std::span<const float> a, std::span<const float> b) {
  if (a.size() != b.size()) {
    fail("cosine_similarity: lengths differ (", a.size(), " vs ", b.size(), ")");
  }
  double dot = 0.0, norm_a = 0.0, norm_b = 0.0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    dot += static_cast<double>(a[i]) * b[i];
    norm_a += static_cast<double>(a[i]) * a[i];
    norm_b += static_cast<double>(b[i]) * b[i];
  }
  if (norm_a == 0.0 && norm_b == 0.0) return 1.0f;
  if (norm_a == 0.0 || norm_b == 0.0) return 0.0f;
  return static_cast<float>(dot / std::sqrt(norm_a * norm_b));
}

double mean_kl_divergence(std::span<const float> reference_logits,
                          std::span<const float> candidate_logits, std::int64_t vocab) {
  if (reference_logits.size() != candidate_logits.size() || vocab <= 0 ||
      reference_logits.size() % static_cast<std::size_t>(vocab) != 0) {
    fail("kl_divergence: logits of shapes ", reference_logits.size(), " and ",
         candidate_logits.size(), " do not share rows of ", vocab);
  }
  const std::size_t rows = reference_logits.size() / static_cast<std::size_t>(vocab);
  if (rows == 0) return 0.0;
  std::vector<double> log_p, log_q;
  double total = 0.0;
  for (std::size_t row = 0; row < rows; ++row) {
    const auto offset = row * static_cast<std::size_t>(vocab);
    log_softmax(reference_logits.subspan(offset, static_cast<std::size_t>(vocab)), log_p);
    log_softmax(candidate_logits.subspan(offset, static_cast<std::size_t>(vocab)), log_q);
    double kl = 0.0;
    for (std::size_t i = 0; i < log_p.size(); ++i) kl += std::exp(log_p[i]) * (log_p[i] - log_q[i]);
    total += kl;
  }
  return total / static_cast<double>(rows);
}

}  // namespace uq

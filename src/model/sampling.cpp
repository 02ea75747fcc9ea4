#include "model/sampling.hpp"

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/error.hpp"

namespace uq {

namespace {

// NaN or infinite logits come from NaN/Inf weights (or activations overflowing): no token can be
// chosen from them, and max_element over NaN would pick one anyway.
void require_finite(std::span<const float> logits) {
  if (logits.empty()) fail("sampling: empty logits");
  for (std::size_t i = 0; i < logits.size(); ++i) {
    if (!std::isfinite(logits[i])) {
      fail("sampling: logit ", i, " is ", logits[i],
           " (NaN or infinite weights? --check-tensors names the tensor)");
    }
  }
}

}  // namespace

std::int32_t argmax(std::span<const float> logits) {
  require_finite(logits);
  return static_cast<std::int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
}

std::vector<Candidate> sampling_candidates(std::span<const float> logits, float temperature,
                                           std::int32_t top_k, float top_p) {
  require_finite(logits);
  std::vector<Candidate> candidates(logits.size());
  const float max_logit = *std::max_element(logits.begin(), logits.end());
  for (std::size_t i = 0; i < logits.size(); ++i) {
    candidates[i] = {static_cast<std::int32_t>(i), (logits[i] - max_logit) / temperature};
  }
  // Most likely first; equal logits keep index order so results are reproducible.
  std::stable_sort(
      candidates.begin(), candidates.end(),
      [](const Candidate& a, const Candidate& b) { return a.probability > b.probability; });
  if (top_k > 0 && static_cast<std::size_t>(top_k) < candidates.size()) candidates.resize(top_k);
  double total = 0.0;
  for (auto& candidate : candidates) {
    candidate.probability = std::exp(candidate.probability);
    total += candidate.probability;
  }
  double kept_mass = 0.0;
  std::size_t kept = 0;
  while (kept < candidates.size()) {
    candidates[kept].probability = static_cast<float>(candidates[kept].probability / total);
    kept_mass += candidates[kept].probability;
    ++kept;
    if (kept_mass >= static_cast<double>(top_p)) break;
  }
  candidates.resize(kept);
  for (auto& candidate : candidates) {
    candidate.probability = static_cast<float>(candidate.probability / kept_mass);
  }
  return candidates;
}

Sampler::Sampler(const SamplingOptions& options) : options_(options), random_(options.seed) {
  if (!(options.temperature >= 0.0f)) fail("option --temperature must be >= 0");
  if (options.top_k < 0) fail("option --top-k must be >= 0");
  if (!(options.top_p > 0.0f && options.top_p <= 1.0f)) fail("option --top-p must be in (0, 1]");
}

std::int32_t sample(std::span<const float> logits, const SamplingOptions& options, double draw) {
  const auto candidates =
      sampling_candidates(logits, options.temperature, options.top_k, options.top_p);
  double cumulative = 0.0;
  for (const auto& candidate : candidates) {
    cumulative += candidate.probability;
    if (draw < cumulative) return candidate.token;
  }
  return candidates.back().token;
}

double Sampler::next_draw() {
  // 53 random bits -> uniform in [0, 1), independent of the library's distributions.
  return static_cast<double>(random_() >> 11) * 0x1.0p-53;
}

std::int32_t Sampler::next(std::span<const float> logits) {
  if (options_.temperature == 0.0f) return argmax(logits);
  return sample(logits, options_, next_draw());
}

}  // namespace uq

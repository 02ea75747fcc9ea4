#pragma once
// Choosing the next token from logits: greedy, or temperature sampling
// restricted by top-k and top-p (applied in that order, as transformers does).
#include <cstdint>
#include <random>
#include <span>
#include <vector>

namespace uq {

struct SamplingOptions {
  float temperature = 0.0f;  // 0: greedy (argmax, first index on ties)
  std::int32_t top_k = 0;    // 0: no limit
  float top_p = 1.0f;        // keep the smallest set of most likely tokens reaching this mass
  std::uint64_t seed = 0;
};

class Sampler {
 public:
  // Throws uq::Error naming the option for a negative temperature/top-k or top-p outside (0, 1].
  explicit Sampler(const SamplingOptions& options);
  const SamplingOptions& options() const { return options_; }
  // Greedy: the argmax (no random number used). Else sample(logits, options(), next_draw()).
  std::int32_t next(std::span<const float> logits);
  // The next uniform number in [0, 1) of this sampler's stream: a device sampler given it
  // picks the token next() would have picked from the same logits.
  double next_draw();

 private:
  SamplingOptions options_;
  std::mt19937_64 random_;
};

// Index of the largest logit (the first one on ties). Throws uq::Error for empty logits or a
// NaN/infinite one, as sampling_candidates and sample do.
std::int32_t argmax(std::span<const float> logits);

// The tokens sampling may pick, with renormalised probabilities, most likely
// first: softmax(logits / temperature), then top-k, then top-p.
struct Candidate {
  std::int32_t token;
  float probability;
};
std::vector<Candidate> sampling_candidates(std::span<const float> logits, float temperature,
                                           std::int32_t top_k, float top_p);

// The candidate where the running sum of probabilities (most likely first) first exceeds
// `draw` (uniform in [0, 1)); the last candidate when rounding leaves the sum below it.
// temperature > 0.
std::int32_t sample(std::span<const float> logits, const SamplingOptions& options, double draw);

}  // namespace uq

#include "train/lora_adapter.hpp"

#include <cmath>

#include "core/error.hpp"

namespace uq {

void validate(const LoraConfig& config) {
  if (config.rank < 1) fail("LoRA rank must be at least 1, got ", config.rank);
  if (!(config.alpha > 0.0) || !std::isfinite(config.alpha)) {
    fail("LoRA alpha must be a positive number, got ", config.alpha);
  }
  if (!(config.dropout >= 0.0 && config.dropout < 1.0)) {
    fail("LoRA dropout must be in [0, 1), got ", config.dropout);
  }
  if (config.target_modules.empty()) fail("LoRA target_modules is empty");
}

LoraAdapter make_lora_adapter(std::int64_t in_features, std::int64_t out_features,
                              const LoraConfig& config, std::mt19937_64& rng) {
  LoraAdapter adapter(config.rank, in_features, out_features, static_cast<float>(config.scale()));
  // kaiming_uniform with a = sqrt(5): gain sqrt(2 / (1 + 5)), bound gain * sqrt(3 / fan_in).
  const double bound = 1.0 / std::sqrt(static_cast<double>(in_features));
  std::uniform_real_distribution<double> uniform(-bound, bound);
  for (float& value : adapter.a) value = static_cast<float>(uniform(rng));
  return adapter;
}

}  // namespace uq

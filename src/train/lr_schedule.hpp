#pragma once
// Learning rate per optimizer step: linear warm-up from 0 to the peak over
// `warmup_steps`, then the peak held (constant, as mlx-lm's LoRA trainer and a
// plain torch optimizer do), decayed linearly to 0 at `total_steps`
// (transformers' get_linear_schedule_with_warmup) or along a cosine to 0
// (get_cosine_schedule_with_warmup).
#include <cstdint>
#include <string_view>

namespace uq {

enum class LrDecay { constant, linear, cosine };

// "constant", "linear" or "cosine"; throws uq::Error naming --lr-schedule otherwise.
LrDecay parse_lr_decay(std::string_view name);
const char* lr_decay_name(LrDecay decay);

struct LrSchedule {
  double peak = 1e-3;
  std::int64_t warmup_steps = 0;
  std::int64_t total_steps = 1;
  LrDecay decay = LrDecay::cosine;

  // The rate for optimizer step `step` (0-based).
  double at(std::int64_t step) const;
};

}  // namespace uq

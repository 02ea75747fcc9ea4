#pragma once
// Learning rate per optimizer step: linear warm-up from 0 to the peak over
// `warmup_steps`, then cosine decay to 0 at `total_steps` (as transformers'
// get_cosine_schedule_with_warmup).
#include <cstdint>

namespace uq {

struct LrSchedule {
  double peak = 1e-3;
  std::int64_t warmup_steps = 0;
  std::int64_t total_steps = 1;

  // The rate for optimizer step `step` (0-based).
  double at(std::int64_t step) const;
};

}  // namespace uq

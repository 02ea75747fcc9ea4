#include "train/lr_schedule.hpp"

#include <algorithm>
#include <cmath>
#include <numbers>

#include "core/error.hpp"

namespace uq {

LrDecay parse_lr_decay(std::string_view name) {
  if (name == "constant") return LrDecay::constant;
  if (name == "linear") return LrDecay::linear;
  if (name == "cosine") return LrDecay::cosine;
  fail("option --lr-schedule: unknown schedule '", name, "' (constant, linear or cosine)");
}

const char* lr_decay_name(LrDecay decay) {
  switch (decay) {
    case LrDecay::constant:
      return "constant";
    case LrDecay::linear:
      return "linear";
    case LrDecay::cosine:
      return "cosine";
  }
  return "cosine";
}

double LrSchedule::at(std::int64_t step) const {
  if (step < warmup_steps) {
    return peak * static_cast<double>(step) /
           static_cast<double>(std::max<std::int64_t>(1, warmup_steps));
  }
  const double progress =
      std::min(1.0, static_cast<double>(step - warmup_steps) /
                        static_cast<double>(std::max<std::int64_t>(1, total_steps - warmup_steps)));
  switch (decay) {
    case LrDecay::constant:
      return peak;
    case LrDecay::linear:
      return peak * (1.0 - progress);
    case LrDecay::cosine:
      break;
  }
  return peak * 0.5 * (1.0 + std::cos(std::numbers::pi * progress));
}

}  // namespace uq

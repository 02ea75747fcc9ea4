#include "model/causal_lm.hpp"

#include "model/sampling.hpp"

namespace uq {

std::int32_t ModelSequence::forward_greedy(std::span<const std::int32_t> ids) {
  return argmax(forward(ids, LogitsMode::Last));
}

std::int32_t ModelSequence::forward_sampled(std::span<const std::int32_t> ids, Sampler& sampler) {
  return sampler.next(forward(ids, LogitsMode::Last));
}

std::vector<float> CausalLM::forward(std::span<const std::int32_t> ids, LogitsMode mode) const {
  return start_sequence()->forward(ids, mode);
}

}  // namespace uq

#include "train/adamw.hpp"

#include <cmath>

#include "core/error.hpp"

namespace uq {

AdamW::AdamW(AdamWOptions options) : options_(options) {
  if (!(options_.beta1 >= 0.0 && options_.beta1 < 1.0)) fail("AdamW beta1 must be in [0, 1)");
  if (!(options_.beta2 >= 0.0 && options_.beta2 < 1.0)) fail("AdamW beta2 must be in [0, 1)");
  if (!(options_.eps > 0.0)) fail("AdamW eps must be positive");
  if (!(options_.weight_decay >= 0.0)) fail("AdamW weight_decay must be >= 0");
}

void AdamW::restore(std::int64_t steps, std::vector<std::vector<float>> m,
                    std::vector<std::vector<float>> v) {
  if (steps < 0 || m.size() != v.size()) fail("AdamW state: moments do not pair up");
  for (std::size_t i = 0; i < m.size(); ++i) {
    if (m[i].size() != v[i].size()) fail("AdamW state: moment ", i, " sizes differ");
  }
  steps_ = steps;
  m_ = std::move(m);
  v_ = std::move(v);
}

void AdamW::step(std::span<const ParameterRef> parameters, double lr) {
  if (m_.empty() && steps_ == 0) {
    for (const ParameterRef& parameter : parameters) {
      m_.emplace_back(parameter.value.size(), 0.0f);
      v_.emplace_back(parameter.value.size(), 0.0f);
    }
  }
  if (m_.size() != parameters.size()) {
    fail("AdamW: ", parameters.size(), " parameters given, the state has ", m_.size());
  }
  ++steps_;
  const double correction1 = 1.0 - std::pow(options_.beta1, static_cast<double>(steps_));
  const double correction2 = 1.0 - std::pow(options_.beta2, static_cast<double>(steps_));
  const double step_size = lr / correction1;
  const double decay = 1.0 - lr * options_.weight_decay;
  const auto beta1 = static_cast<float>(options_.beta1);
  const auto beta2 = static_cast<float>(options_.beta2);
  for (std::size_t p = 0; p < parameters.size(); ++p) {
    const ParameterRef& parameter = parameters[p];
    if (parameter.value.size() != m_[p].size() ||
        parameter.gradient.size() != parameter.value.size()) {
      fail("AdamW: parameter ", p, " changed size");
    }
    std::vector<float>& m = m_[p];
    std::vector<float>& v = v_[p];
    for (std::size_t i = 0; i < m.size(); ++i) {
      const float g = parameter.gradient[i];
      m[i] = beta1 * m[i] + (1.0f - beta1) * g;
      v[i] = beta2 * v[i] + (1.0f - beta2) * g * g;
      const double denominator = std::sqrt(static_cast<double>(v[i]) / correction2) + options_.eps;
      const double updated = static_cast<double>(parameter.value[i]) * decay -
                             step_size * static_cast<double>(m[i]) / denominator;
      parameter.value[i] = static_cast<float>(updated);
    }
  }
}

}  // namespace uq

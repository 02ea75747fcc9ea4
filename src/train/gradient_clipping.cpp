#include "train/gradient_clipping.hpp"

#include <cmath>

namespace uq {

double clip_gradient_norm(std::span<std::vector<float>* const> gradients, double max_norm) {
  double sum_squares = 0.0;
  for (const std::vector<float>* gradient : gradients) {
    for (const float g : *gradient) sum_squares += static_cast<double>(g) * g;
  }
  const double norm = std::sqrt(sum_squares);
  if (max_norm > 0.0 && norm > max_norm) {
    const auto factor = static_cast<float>(max_norm / (norm + 1e-6));
    for (std::vector<float>* gradient : gradients) {
      for (float& g : *gradient) g *= factor;
    }
  }
  return norm;
}

}  // namespace uq

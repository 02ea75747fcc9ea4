#include "model/rms_norm.hpp"

#include <cmath>

namespace uq {

void rms_norm(const float* x, std::int64_t rows, std::int64_t dim, const float* weight, float eps,
              float* out) {
  for (std::int64_t r = 0; r < rows; ++r) {
    const float* in_row = x + r * dim;
    float* out_row = out + r * dim;
    double sum_squares = 0.0;
    for (std::int64_t i = 0; i < dim; ++i)
      sum_squares += static_cast<double>(in_row[i]) * in_row[i];
    const float mean_square = static_cast<float>(sum_squares / static_cast<double>(dim));
    const float inverse_rms = 1.0f / std::sqrt(mean_square + eps);
    for (std::int64_t i = 0; i < dim; ++i) out_row[i] = weight[i] * (in_row[i] * inverse_rms);
  }
}

}  // namespace uq

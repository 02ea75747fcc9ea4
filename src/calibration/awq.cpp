#include "calibration/awq.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

#include "core/thread_pool.hpp"

namespace uq {

std::vector<float> awq_scales(const std::vector<double>& mean_magnitude, double alpha,
                              const std::vector<double>* weight_magnitude) {
  std::vector<double> scales(mean_magnitude.size());
  double low = std::numeric_limits<double>::max();
  double high = 0.0;
  for (std::size_t c = 0; c < scales.size(); ++c) {
    if (weight_magnitude != nullptr) {
      scales[c] = std::max(std::pow(mean_magnitude[c], alpha) /
                               (std::pow((*weight_magnitude)[c], 1.0 - alpha) + 1e-4),
                           1e-4);
    } else {
      scales[c] = std::pow(std::max(mean_magnitude[c], 1e-4), alpha);
    }
    low = std::min(low, scales[c]);
    high = std::max(high, scales[c]);
  }
  const double norm = std::sqrt(low * high);
  std::vector<float> result(scales.size());
  for (std::size_t c = 0; c < scales.size(); ++c) result[c] = static_cast<float>(scales[c] / norm);
  return result;
}

std::vector<double> weight_magnitude(const std::vector<const std::vector<float>*>& weights,
                                     std::int64_t in, std::int64_t group_size) {
  std::vector<double> sum(static_cast<std::size_t>(in), 0.0);
  std::int64_t rows = 0;
  for (const auto* matrix : weights) {
    const auto count = static_cast<std::int64_t>(matrix->size()) / in;
    rows += count;
    for (std::int64_t r = 0; r < count; ++r) {
      for (std::int64_t g = 0; g < in; g += group_size) {
        const float* values = matrix->data() + r * in + g;
        float absmax = 0.0f;
        for (std::int64_t i = 0; i < group_size; ++i)
          absmax = std::max(absmax, std::fabs(values[i]));
        for (std::int64_t i = 0; i < group_size; ++i) {
          sum[static_cast<std::size_t>(g + i)] += std::fabs(values[i]) / (absmax + 1e-6);
        }
      }
    }
  }
  for (auto& value : sum) value /= static_cast<double>(std::max<std::int64_t>(rows, 1));
  return sum;
}

std::vector<double> scale_hessian(const std::vector<double>& hessian,
                                  const std::vector<float>& scales) {
  const auto n = scales.size();
  std::vector<double> result(hessian.size());
  for (std::size_t r = 0; r < n; ++r) {
    for (std::size_t c = 0; c < n; ++c) {
      result[r * n + c] = hessian[r * n + c] / (static_cast<double>(scales[r]) * scales[c]);
    }
  }
  return result;
}

std::vector<float> awq_clip_ratios(const float* weights, std::int64_t out, std::int64_t in,
                                   const QuantGrid& grid, const std::vector<double>& hessian,
                                   int steps) {
  const std::int64_t group = grid.group_size();
  const std::int64_t groups = in / group;
  std::vector<float> ratios(static_cast<std::size_t>(out * groups), 1.0f);
  parallel_for(0, out, 1, [&](std::int64_t lo, std::int64_t hi) {
    std::vector<double> difference(static_cast<std::size_t>(group));
    for (std::int64_t o = lo; o < hi; ++o) {
      for (std::int64_t g = 0; g < groups; ++g) {
        const float* values = weights + o * in + g * group;
        const auto [low, high] = std::minmax_element(values, values + group);
        double best_error = std::numeric_limits<double>::max();
        for (int step = 0; step < steps; ++step) {
          const float ratio = 1.0f - static_cast<float>(step) / 20.0f;
          const GroupParams params = grid.params_for_range(*low * ratio, *high * ratio);
          for (std::int64_t i = 0; i < group; ++i) {
            difference[static_cast<std::size_t>(i)] =
                values[i] - QuantGrid::value(grid.code(values[i], params), params);
          }
          double error = 0.0;
          for (std::int64_t i = 0; i < group; ++i) {
            const double* row = hessian.data() + (g * group + i) * in + g * group;
            double dot = 0.0;
            for (std::int64_t j = 0; j < group; ++j)
              dot += row[j] * difference[static_cast<std::size_t>(j)];
            error += difference[static_cast<std::size_t>(i)] * dot;
          }
          if (error < best_error) {
            best_error = error;
            ratios[static_cast<std::size_t>(o * groups + g)] = ratio;
          }
        }
      }
    }
  });
  return ratios;
}

}  // namespace uq

#include "calibration/hqq.hpp"

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/error.hpp"
#include "core/thread_pool.hpp"

namespace uq {
namespace {

double shrink_lp(double x, double beta, double p) {
  const double magnitude = std::fabs(x);
  if (magnitude == 0.0) return 0.0;
  const double shrunk = magnitude - std::pow(magnitude, p - 1.0) / beta;
  return shrunk > 0.0 ? std::copysign(shrunk, x) : 0.0;
}

// Codes of `values` under params, and their mean absolute error.
double quantize_group(const float* values, std::int64_t count, const QuantGrid& grid,
                      GroupParams params, std::int16_t* codes) {
  double error = 0.0;
  for (std::int64_t i = 0; i < count; ++i) {
    const int code = grid.code(values[i], params);
    codes[i] = static_cast<std::int16_t>(code);
    error += std::fabs(values[i] - QuantGrid::value(code, params));
  }
  return error / static_cast<double>(count);
}

GroupParams refine_group(const float* values, std::int64_t count, const QuantGrid& grid,
                         const HqqOptions& options) {
  const auto [low, high] = std::minmax_element(values, values + count);
  const GroupParams initial = grid.params_for_range(*low, *high);
  if (initial.scale == 0.0f) return initial;
  // HQQ's parametrisation: Q = W·inv_scale + zero, Ŵ = (Q - zero)/inv_scale.
  const double inv_scale = 1.0 / initial.scale;
  double zero = -static_cast<double>(initial.bias) * inv_scale;
  double beta = options.beta;
  std::vector<std::int16_t> codes(static_cast<std::size_t>(count));
  GroupParams best = initial;
  double best_error = quantize_group(values, count, grid, initial, codes.data());
  for (int iteration = 0; iteration < options.iterations; ++iteration) {
    double zero_sum = 0.0;
    for (std::int64_t i = 0; i < count; ++i) {
      const double w = values[i];
      const double q =
          std::clamp(std::nearbyint(w * inv_scale + zero), static_cast<double>(grid.min_code()),
                     static_cast<double>(grid.max_code()));
      const double residual = shrink_lp(w - (q - zero) / inv_scale, beta, options.p);
      zero_sum += q - (w - residual) * inv_scale;
    }
    zero = zero_sum / static_cast<double>(count);
    beta *= options.kappa;
    const GroupParams candidate =
        grid.stored({initial.scale, static_cast<float>(-zero / inv_scale)});
    const double error = quantize_group(values, count, grid, candidate, codes.data());
    if (error >= best_error) break;
    best_error = error;
    best = candidate;
  }
  return best;
}

}  // namespace

double lp_error(const float* weights, const float* quantized, std::int64_t count, double p) {
  double sum = 0.0;
  for (std::int64_t i = 0; i < count; ++i) sum += std::pow(std::fabs(weights[i] - quantized[i]), p);
  return sum;
}

QuantizedMatrix hqq_quantize(const float* weights, std::int64_t out, std::int64_t in,
                             const QuantGrid& grid, const HqqOptions& options) {
  if (!grid.affine()) fail("hqq: refines zero points of affine formats, not ", grid.describe());
  QuantizedMatrix result(out, in, grid.group_size());
  const std::int64_t group = grid.group_size();
  parallel_for(0, out, 1, [&](std::int64_t lo, std::int64_t hi) {
    for (std::int64_t o = lo; o < hi; ++o) {
      for (std::int64_t g = 0; g < in / group; ++g) {
        const float* values = weights + o * in + g * group;
        const GroupParams params = refine_group(values, group, grid, options);
        result.param(o, g * group) = params;
        quantize_group(values, group, grid, params, result.codes.data() + o * in + g * group);
      }
    }
  });
  return result;
}

}  // namespace uq

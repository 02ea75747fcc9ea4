#pragma once
// The arithmetic of AWQ (Lin et al., 2023). Scaling input channel c of a
// linear layer by s_c (and its input by 1/s_c, folded into the operation
// before it) leaves the float function unchanged but shrinks the relative
// rounding error of salient channels, those with large activations:
// s = m^α for the mean input magnitude m, normalised so that
// sqrt(max s · min s) = 1, with α searched on a grid (awq_block.hpp).
// Then each group's range is clipped to the ratio that minimises its output
// error dᵀ H_gg d (d = w - ŵ over the group, H_gg its block of the Hessian).
#include <cstdint>
#include <vector>

#include "calibration/quant_grid.hpp"

namespace uq {

// s = max(m, 1e-4)^α / sqrt(max · min); with the weights' magnitude w per
// input channel ("duo scaling"), s = m^α / (w^(1-α) + 1e-4) before the norm.
std::vector<float> awq_scales(const std::vector<double>& mean_magnitude, double alpha,
                              const std::vector<double>* weight_magnitude = nullptr);

// Per input channel, the mean over rows of |w| / absmax of its group, over
// the [*, in] matrices of a group of linears sharing the input.
std::vector<double> weight_magnitude(const std::vector<const std::vector<float>*>& weights,
                                     std::int64_t in, std::int64_t group_size);

// The Hessian of X·diag(1/s): H_ij / (s_i s_j).
std::vector<double> scale_hessian(const std::vector<double>& hessian,
                                  const std::vector<float>& scales);

// Per group of W [out, in] (row-major groups, as QuantizedMatrix::params),
// the range ratio among 1, 1 - 1/20, ..., 1 - (steps-1)/20 with the least
// output error under `hessian` [in, in].
std::vector<float> awq_clip_ratios(const float* weights, std::int64_t out, std::int64_t in,
                                   const QuantGrid& grid, const std::vector<double>& hessian,
                                   int steps = 10);

}  // namespace uq

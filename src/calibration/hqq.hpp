#pragma once
// HQQ (Badri & Shaji, 2023): data-free refinement of an affine group's zero
// point by half-quadratic splitting of  min ‖W - Ŵ‖_p^p  (p < 1, which
// tolerates a few large outliers instead of averaging them in):
//   Ŵ = (Q - z)/s with Q = clamp(round(W s + z)),
//   E = shrink_p(W - Ŵ, β)   (generalised soft threshold),
//   z = mean(Q - (W - E) s),  β *= κ,
// stopping when the mean |W - Ŵ| stops improving. The scale s is the
// format's min/max scale; the refined (scale, bias) are then rounded as the
// format stores them.
#include <cstdint>

#include "calibration/quant_grid.hpp"

namespace uq {

struct HqqOptions {
  double p = 0.7;
  double beta = 10.0;
  double kappa = 1.01;
  int iterations = 20;
};

// Σ |w - ŵ|^p over [out, in]: the objective HQQ lowers.
double lp_error(const float* weights, const float* quantized, std::int64_t count, double p);

// Every group of W [out, in] refined on an affine `grid` (uq::Error for a
// symmetric one). Multi-threaded over rows; deterministic.
QuantizedMatrix hqq_quantize(const float* weights, std::int64_t out, std::int64_t in,
                             const QuantGrid& grid, const HqqOptions& options = {});

}  // namespace uq

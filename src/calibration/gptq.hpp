#pragma once
// GPTQ (Frantar et al., 2022): quantizes the columns of W one at a time and
// spreads each column's rounding error over the columns not yet quantized,
// weighted by the inverse Hessian of the layer's inputs, so that ‖(W - Ŵ)X‖²
// rather than ‖W - Ŵ‖² is minimised.
//
// H is damped (λ = damp · mean diag H added to the diagonal), inverted
// through its Cholesky factor, and the upper Cholesky factor U of H⁻¹ drives
// the updates: err = (w_i - q_i) / U_ii, W[:, j] -= err · U_ij for j > i.
// Updates inside a block of columns are applied eagerly, those to later
// columns once per block as one sgemm ("lazy batch" updates). Group
// parameters come from the group's current (already updated) values when its
// first column is reached, its range shrunk by the ratio (1, 0.95, ...) with
// the least loss Σ (w - q)² / U_ii²; with act_order the columns go by
// decreasing H_ii and every group's parameters are fixed from W beforehand ("static groups"), since
// a group's columns are then reached out of order.
#include <cstdint>
#include <vector>

#include "calibration/quant_grid.hpp"

namespace uq {

struct GptqOptions {
  double damp = 0.01;
  std::int64_t block_size = 128;  // rounded up to a multiple of the group size
  bool act_order = false;
  // Range ratios 1, 0.95, ... tried per group (without act_order), keeping
  // the one with the least Σ (w - q)² / U_ii²; 1: min/max only.
  int clip_steps = 10;
  // Rounds of Hessian-weighted (scale, bias) refits (calibration/group_refit.hpp)
  // after GPTQ; from the second on, GPTQ first re-chooses the codes on the
  // refit grid. Each row keeps its least-error iterate. 0: plain GPTQ.
  int refit_rounds = 6;
  // Refits only grids of at most this many levels: on the bundled model they
  // lowered 2-bit val perplexity by 0.9 but not 3-bit's (docs/ACCURACY.md).
  int refit_max_levels = 4;
};

// W [out, in] row-major; `hessian` [in, in] (HessianAccumulator::hessian()).
// Rows are processed in parallel in fixed chunks, so the result does not
// depend on the thread count. Throws uq::Error if H stays singular after
// raising the damping.
QuantizedMatrix gptq_quantize(const float* weights, std::int64_t out, std::int64_t in,
                              const std::vector<double>& hessian, const QuantGrid& grid,
                              const GptqOptions& options = {});

// The upper Cholesky factor U of (H + λI)⁻¹ (U ᵀU = (H + λI)⁻¹), row-major,
// lower triangle zero; dead inputs (H_ii = 0) get H_ii = 1 first. Exposed for
// the tests' float64 reference.
std::vector<double> gptq_inverse_cholesky(std::vector<double> hessian, std::int64_t in,
                                          double damp);

}  // namespace uq

#pragma once
// Hessian-weighted refit of the group parameters once the codes are chosen.
// With a row's codes q fixed, ŵ_i = scale_g·q_i + bias_g is linear in the
// row's (scale_g, bias_g), so the (scale, bias) minimising the output error
// (w - ŵ)ᵀ H (w - ŵ) of the row solve a least-squares problem of 2·groups
// unknowns (scale only for symmetric formats): JᵀHJ θ = JᵀH w.
#include <cstdint>
#include <vector>

#include "calibration/quant_grid.hpp"

namespace uq {

// H + damp · mean(diag H) · I, the curvature the refit and the error use
// (the damping keeps JᵀHJ definite where inputs are dead or collinear).
std::vector<double> damped_hessian(std::vector<double> hessian, std::int64_t in, double damp);

// (w - ŵ)ᵀ H (w - ŵ) of each row of `matrix` against `weights` [out, in].
std::vector<double> row_output_errors(const float* weights, const QuantizedMatrix& matrix,
                                      const std::vector<double>& hessian);

// Replaces each row's group parameters by the least-squares ones, rounded as
// `grid` stores them, where that lowers the row's error. Rows in parallel in
// fixed chunks (the result does not depend on the thread count).
void refit_group_params(const float* weights, const std::vector<double>& hessian,
                        const QuantGrid& grid, QuantizedMatrix& matrix);

}  // namespace uq

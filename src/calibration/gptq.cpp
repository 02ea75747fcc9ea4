#include "calibration/gptq.hpp"

#include <cblas.h>

#include <algorithm>
#include <limits>
#include <numeric>

#include "calibration/group_refit.hpp"
#include "core/error.hpp"
#include "core/thread_pool.hpp"
#include "model/blas.hpp"

extern "C" {
// LAPACK, shipped inside OpenBLAS (column-major; a symmetric matrix reads the
// same either way, and 'L' in column-major is the upper triangle row-major).
void dpotrf_(const char* uplo, const int* n, double* a, const int* lda, int* info);
void dpotri_(const char* uplo, const int* n, double* a, const int* lda, int* info);
}

namespace uq {
namespace {

constexpr std::int64_t kRowChunk = 16;

// In place: row-major upper factor U with A = UᵀU; false if A is not positive definite.
bool cholesky_upper(std::vector<double>& a, std::int64_t n) {
  const auto size = static_cast<int>(n);
  int info = 0;
  dpotrf_("L", &size, a.data(), &size, &info);
  if (info != 0) return false;
  for (std::int64_t r = 0; r < n; ++r) {
    for (std::int64_t c = 0; c < r; ++c) a[static_cast<std::size_t>(r * n + c)] = 0.0;
  }
  return true;
}

// In place: A⁻¹ (full, symmetric); false if A is not positive definite.
bool invert_spd(std::vector<double>& a, std::int64_t n) {
  const auto size = static_cast<int>(n);
  int info = 0;
  dpotrf_("L", &size, a.data(), &size, &info);
  if (info != 0) return false;
  dpotri_("L", &size, a.data(), &size, &info);
  if (info != 0) return false;
  for (std::int64_t r = 0; r < n; ++r) {  // mirror the upper triangle (row-major) down
    for (std::int64_t c = 0; c < r; ++c) {
      a[static_cast<std::size_t>(r * n + c)] = a[static_cast<std::size_t>(c * n + r)];
    }
  }
  return true;
}

// The group's range shrunk by the ratio among 1, 0.95, ... with the least
// GPTQ loss Σ (w - q)² / U_ii², the error the column updates cannot undo.
GroupParams group_params(const float* values, const float* u_diagonal, std::int64_t count,
                         const QuantGrid& grid, int clip_steps) {
  const auto [low, high] = std::minmax_element(values, values + count);
  GroupParams best = grid.params_for_range(*low, *high);
  double best_loss = std::numeric_limits<double>::max();
  for (int step = 0; step < clip_steps; ++step) {
    const float ratio = 1.0f - static_cast<float>(step) / 20.0f;
    const GroupParams params = grid.params_for_range(*low * ratio, *high * ratio);
    double loss = 0.0;
    for (std::int64_t i = 0; i < count; ++i) {
      const double error = values[i] - QuantGrid::value(grid.code(values[i], params), params);
      loss += error * error / (static_cast<double>(u_diagonal[i]) * u_diagonal[i]);
    }
    if (loss < best_loss) {
      best_loss = loss;
      best = params;
    }
  }
  return best;
}

}  // namespace

std::vector<double> gptq_inverse_cholesky(std::vector<double> hessian, std::int64_t in,
                                          double damp) {
  double mean_diagonal = 0.0;
  for (std::int64_t i = 0; i < in; ++i) {
    double& diagonal = hessian[static_cast<std::size_t>(i * in + i)];
    if (diagonal == 0.0) diagonal = 1.0;
    mean_diagonal += diagonal;
  }
  mean_diagonal /= static_cast<double>(in);
  // A Hessian from fewer tokens than inputs is singular; more damping fixes it.
  for (int attempt = 0; attempt < 6; ++attempt, damp *= 10.0) {
    std::vector<double> matrix = hessian;
    for (std::int64_t i = 0; i < in; ++i) {
      matrix[static_cast<std::size_t>(i * in + i)] += damp * mean_diagonal;
    }
    if (invert_spd(matrix, in) && cholesky_upper(matrix, in)) return matrix;
  }
  fail("gptq: the input Hessian is not positive definite even with damping ", damp / 10.0);
}

QuantizedMatrix gptq_quantize(const float* weights, std::int64_t out, std::int64_t in,
                              const std::vector<double>& hessian, const QuantGrid& grid,
                              const GptqOptions& options) {
  use_single_threaded_blas();
  const std::int64_t group = grid.group_size();
  std::vector<std::int64_t> order(static_cast<std::size_t>(in));
  std::iota(order.begin(), order.end(), 0);
  if (options.act_order) {
    std::stable_sort(order.begin(), order.end(), [&](std::int64_t a, std::int64_t b) {
      return hessian[static_cast<std::size_t>(a * in + a)] >
             hessian[static_cast<std::size_t>(b * in + b)];
    });
  }
  std::vector<double> permuted(hessian.size());
  for (std::int64_t r = 0; r < in; ++r) {
    for (std::int64_t c = 0; c < in; ++c) {
      permuted[static_cast<std::size_t>(r * in + c)] = hessian[static_cast<std::size_t>(
          order[static_cast<std::size_t>(r)] * in + order[static_cast<std::size_t>(c)])];
    }
  }
  const std::vector<double> factor_f64 =
      gptq_inverse_cholesky(std::move(permuted), in, options.damp);
  const std::vector<float> factor(factor_f64.begin(), factor_f64.end());
  std::vector<float> u_diagonal(static_cast<std::size_t>(in));
  for (std::int64_t i = 0; i < in; ++i)
    u_diagonal[static_cast<std::size_t>(i)] = factor[static_cast<std::size_t>(i * in + i)];
  // Blocks hold whole groups, so a group's parameters see all updates from earlier blocks.
  std::int64_t block = options.block_size;
  if (group < in) block = std::max<std::int64_t>(group, (block + group - 1) / group * group);
  block = std::min(block, in);

  // One GPTQ pass; with `fixed`, on those group parameters instead of each
  // group's own from its values when reached.
  const auto pass = [&](const std::vector<GroupParams>* fixed) {
    QuantizedMatrix result(out, in, group);
    if (fixed) result.params = *fixed;
    const std::int64_t chunks = (out + kRowChunk - 1) / kRowChunk;
    parallel_for(0, chunks, 1, [&](std::int64_t lo, std::int64_t hi) {
      std::vector<float> w(static_cast<std::size_t>(kRowChunk * in));
      std::vector<float> errors(static_cast<std::size_t>(kRowChunk * block));
      for (std::int64_t chunk = lo; chunk < hi; ++chunk) {
        const std::int64_t first_row = chunk * kRowChunk;
        const std::int64_t rows = std::min(kRowChunk, out - first_row);
        for (std::int64_t r = 0; r < rows; ++r) {
          for (std::int64_t i = 0; i < in; ++i) {
            w[static_cast<std::size_t>(r * in + i)] =
                weights[(first_row + r) * in + order[static_cast<std::size_t>(i)]];
          }
        }
        for (std::int64_t begin = 0; begin < in; begin += block) {
          const std::int64_t end = std::min(in, begin + block);
          for (std::int64_t i = begin; i < end; ++i) {
            const std::int64_t column = order[static_cast<std::size_t>(i)];
            const float* u = factor.data() + i * in;
            for (std::int64_t r = 0; r < rows; ++r) {
              float* row = w.data() + r * in;
              GroupParams& params = result.param(first_row + r, column);
              if (!fixed && column % group == 0) {
                params =
                    group_params(row + i, u_diagonal.data() + i, group, grid, options.clip_steps);
              }
              const int code = grid.code(row[i], params);
              result.codes[static_cast<std::size_t>((first_row + r) * in + column)] =
                  static_cast<std::int16_t>(code);
              const float error = (row[i] - QuantGrid::value(code, params)) / u[i];
              errors[static_cast<std::size_t>(r * block + (i - begin))] = error;
              for (std::int64_t j = i + 1; j < end; ++j) row[j] -= error * u[j];
            }
          }
          if (end < in) {  // W[:, end:] -= E · U[begin:end, end:]
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, static_cast<int>(rows),
                        static_cast<int>(in - end), static_cast<int>(end - begin), -1.0f,
                        errors.data(), static_cast<int>(block), factor.data() + begin * in + end,
                        static_cast<int>(in), 1.0f, w.data() + end, static_cast<int>(in));
          }
        }
      }
    });
    return result;
  };
  // Static groups with act_order, from W before any update, since a group's
  // columns are reached out of order.
  const std::vector<GroupParams> static_params =
      options.act_order ? round_to_nearest(weights, out, in, grid).params
                        : std::vector<GroupParams>{};
  QuantizedMatrix best = pass(options.act_order ? &static_params : nullptr);
  if (options.refit_rounds == 0 || grid.max_code() - grid.min_code() + 1 > options.refit_max_levels)
    return best;
  // Alternate: refit (scale, bias) to the codes, then GPTQ's codes on the
  // refit grid; every row keeps its parameters and codes of least error.
  const std::vector<double> curvature = damped_hessian(hessian, in, options.damp);
  std::vector<double> best_errors = row_output_errors(weights, best, curvature);
  QuantizedMatrix candidate = best;
  for (int round = 0; round < options.refit_rounds; ++round) {
    if (round > 0) candidate = pass(&candidate.params);
    refit_group_params(weights, curvature, grid, candidate);
    const std::vector<double> errors = row_output_errors(weights, candidate, curvature);
    const std::int64_t groups = best.groups_per_row();
    for (std::int64_t o = 0; o < out; ++o) {
      if (errors[static_cast<std::size_t>(o)] >= best_errors[static_cast<std::size_t>(o)]) continue;
      best_errors[static_cast<std::size_t>(o)] = errors[static_cast<std::size_t>(o)];
      std::copy_n(candidate.codes.begin() + o * in, in, best.codes.begin() + o * in);
      std::copy_n(candidate.params.begin() + o * groups, groups, best.params.begin() + o * groups);
    }
  }
  return best;
}

}  // namespace uq

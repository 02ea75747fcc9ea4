#include "calibration/group_refit.hpp"

#include <algorithm>

#include "core/thread_pool.hpp"

extern "C" {
// LAPACK, shipped inside OpenBLAS: solves A x = b for symmetric positive definite A.
void dposv_(const char* uplo, const int* n, const int* nrhs, double* a, const int* lda, double* b,
            const int* ldb, int* info);
}

namespace uq {
namespace {

constexpr std::int64_t kRowChunk = 8;

double row_error(const float* w, const float* values, std::int64_t in,
                 const std::vector<double>& hessian, std::vector<double>& difference) {
  for (std::int64_t i = 0; i < in; ++i)
    difference[static_cast<std::size_t>(i)] = static_cast<double>(w[i]) - values[i];
  double error = 0.0;
  for (std::int64_t i = 0; i < in; ++i) {
    const double* h = hessian.data() + i * in;
    double hd = 0.0;
    for (std::int64_t j = 0; j < in; ++j) hd += h[j] * difference[static_cast<std::size_t>(j)];
    error += difference[static_cast<std::size_t>(i)] * hd;
  }
  return error;
}

void dequantize_row(const QuantizedMatrix& matrix, std::int64_t row, const GroupParams* params,
                    float* values) {
  for (std::int64_t i = 0; i < matrix.in; ++i) {
    values[i] = QuantGrid::value(matrix.codes[static_cast<std::size_t>(row * matrix.in + i)],
                                 params[i / matrix.group_size]);
  }
}

}  // namespace

std::vector<double> damped_hessian(std::vector<double> hessian, std::int64_t in, double damp) {
  double mean = 0.0;
  for (std::int64_t i = 0; i < in; ++i) mean += hessian[static_cast<std::size_t>(i * in + i)];
  mean /= static_cast<double>(in);
  if (mean == 0.0) mean = 1.0;
  for (std::int64_t i = 0; i < in; ++i)
    hessian[static_cast<std::size_t>(i * in + i)] += damp * mean;
  return hessian;
}

std::vector<double> row_output_errors(const float* weights, const QuantizedMatrix& matrix,
                                      const std::vector<double>& hessian) {
  std::vector<double> errors(static_cast<std::size_t>(matrix.out));
  const std::int64_t in = matrix.in;
  parallel_for(0, matrix.out, kRowChunk, [&](std::int64_t lo, std::int64_t hi) {
    std::vector<float> values(static_cast<std::size_t>(in));
    std::vector<double> difference(static_cast<std::size_t>(in));
    for (std::int64_t o = lo; o < hi; ++o) {
      dequantize_row(matrix, o,
                     &matrix.params[static_cast<std::size_t>(o * matrix.groups_per_row())],
                     values.data());
      errors[static_cast<std::size_t>(o)] =
          row_error(weights + o * in, values.data(), in, hessian, difference);
    }
  });
  return errors;
}

void refit_group_params(const float* weights, const std::vector<double>& hessian,
                        const QuantGrid& grid, QuantizedMatrix& matrix) {
  const std::int64_t in = matrix.in, group = matrix.group_size, groups = matrix.groups_per_row();
  const std::int64_t per_group = grid.affine() ? 2 : 1;
  const std::int64_t unknowns = groups * per_group;
  // ones[g][i] = Σ_{j ∈ g} H_ij: the bias columns of HJ, the same for every row.
  std::vector<double> ones(static_cast<std::size_t>(groups * in), 0.0);
  for (std::int64_t i = 0; i < in; ++i) {
    for (std::int64_t j = 0; j < in; ++j)
      ones[static_cast<std::size_t>((j / group) * in + i)] +=
          hessian[static_cast<std::size_t>(i * in + j)];
  }
  parallel_for(0, matrix.out, kRowChunk, [&](std::int64_t lo, std::int64_t hi) {
    std::vector<double> scaled(static_cast<std::size_t>(groups * in));  // H[:, g] q_g
    std::vector<double> hw(static_cast<std::size_t>(in));
    std::vector<double> normal(static_cast<std::size_t>(unknowns * unknowns));
    std::vector<double> rhs(static_cast<std::size_t>(unknowns));
    std::vector<GroupParams> fitted(static_cast<std::size_t>(groups));
    std::vector<float> values(static_cast<std::size_t>(in));
    std::vector<double> difference(static_cast<std::size_t>(in));
    for (std::int64_t o = lo; o < hi; ++o) {
      const float* w = weights + o * in;
      const std::int16_t* q = matrix.codes.data() + o * in;
      // Group by group, each sum in ascending j as before: no division or scattered
      // store in the innermost loop.
      for (std::int64_t i = 0; i < in; ++i) {
        const double* h = hessian.data() + i * in;
        double sum = 0.0;
        for (std::int64_t g = 0; g < groups; ++g) {
          double group_sum = 0.0;
          for (std::int64_t j = g * group; j < (g + 1) * group; ++j) {
            sum += h[j] * w[j];
            group_sum += h[j] * q[j];
          }
          scaled[static_cast<std::size_t>(g * in + i)] = group_sum;
        }
        hw[static_cast<std::size_t>(i)] = sum;
      }
      // Unknown k = g·per_group + (0: scale, 1: bias); its column of J is q or 1 on group g.
      const auto column = [&](std::int64_t k) {
        return (k % per_group == 0 ? scaled : ones).data() + (k / per_group) * in;
      };
      for (std::int64_t a = 0; a < unknowns; ++a) {
        const std::int64_t first = (a / per_group) * group;
        const bool scale = a % per_group == 0;
        double right = 0.0;
        for (std::int64_t i = first; i < first + group; ++i)
          right += (scale ? q[i] : 1.0) * hw[static_cast<std::size_t>(i)];
        rhs[static_cast<std::size_t>(a)] = right;
        for (std::int64_t b = 0; b < unknowns; ++b) {
          const double* hj = column(b);
          double sum = 0.0;
          for (std::int64_t i = first; i < first + group; ++i) sum += (scale ? q[i] : 1.0) * hj[i];
          normal[static_cast<std::size_t>(a * unknowns + b)] = sum;
        }
      }
      const auto n = static_cast<int>(unknowns);
      const int one = 1;
      int info = 0;
      dposv_("L", &n, &one, normal.data(), &n, rhs.data(), &n, &info);
      if (info != 0) continue;  // a singular system: keep the parameters GPTQ chose
      for (std::int64_t g = 0; g < groups; ++g) {
        fitted[static_cast<std::size_t>(g)] = grid.stored(
            {static_cast<float>(rhs[static_cast<std::size_t>(g * per_group)]),
             per_group == 2 ? static_cast<float>(rhs[static_cast<std::size_t>(g * per_group + 1)])
                            : 0.0f});
      }
      GroupParams* current = &matrix.params[static_cast<std::size_t>(o * groups)];
      dequantize_row(matrix, o, current, values.data());
      const double before = row_error(w, values.data(), in, hessian, difference);
      dequantize_row(matrix, o, fitted.data(), values.data());
      if (row_error(w, values.data(), in, hessian, difference) < before)
        std::copy(fitted.begin(), fitted.end(), current);
    }
  });
}

}  // namespace uq

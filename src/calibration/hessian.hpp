#pragma once
// H = 2/N Σ xᵀx over the N input rows a linear layer saw: the curvature of
// its squared output error ‖(W - Ŵ)X‖², which GPTQ minimises and which gives
// every method's reconstruction error without storing X.
#include <cstdint>
#include <vector>

namespace uq {

class HessianAccumulator {
 public:
  explicit HessianAccumulator(std::int64_t columns);

  // Adds the rows of x [rows, columns] (float32 products per call, summed in
  // double across calls; tiles of fixed size so that the sum does not depend
  // on the thread count).
  void add(const float* x, std::int64_t rows);

  std::int64_t columns() const { return columns_; }
  std::int64_t rows() const { return rows_; }
  // 2/N Σ xᵀx, [columns, columns] row-major. Zero before any row was added.
  std::vector<double> hessian() const;

 private:
  std::int64_t columns_;
  std::int64_t rows_ = 0;
  std::vector<double> sum_;
};

// ‖(W - Ŵ)X‖² / ‖WX‖² from H: Σ_o dₒᵀHdₒ / Σ_o wₒᵀHwₒ for W, Ŵ [out, in]
// and H [in, in]. 0 when WX is zero.
double relative_output_error(const float* weights, const float* quantized, std::int64_t out,
                             std::int64_t in, const std::vector<double>& hessian);

}  // namespace uq

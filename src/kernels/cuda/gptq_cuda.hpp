#pragma once
// GPTQ of one matrix on the GPU: the algorithm of calibration/gptq.cpp (damping, Cholesky of
// H⁻¹, column-by-column quantization with error propagation, lazy block updates as cuBLAS
// GEMMs, per-group range search) with cuSOLVER's float64 Cholesky and the column loop in
// gptq_kernels.cu. Where the CPU follows GPTQ with (scale, bias) refits (grids of at most
// GptqOptions::refit_max_levels levels), the GPTQ passes run here and each refit runs through
// the CPU's group_refit.cpp on the host. MLX and quanto affine grids only; act_order and
// symmetric grids are refused. Deterministic: cuBLAS, cuSOLVER and fixed-order reductions.
#include <cstdint>
#include <string>

#include "calibration/gptq.hpp"
#include "calibration/quant_grid.hpp"
#include "kernels/cuda/device_buffer.hpp"
#include "kernels/cuda/stream.hpp"

struct cusolverDnContext;

namespace uq::cuda {

// Empty when the GPU can run GPTQ on `grid` with `options`, else why not.
std::string gptq_cuda_unsupported_reason(const QuantGrid& grid, const GptqOptions& options);

class GptqDevice {
 public:
  // Works on `stream` with `cublas` (both must outlive it).
  GptqDevice(cudaStream_t stream, cublasHandle_t cublas);
  GptqDevice(const GptqDevice&) = delete;
  GptqDevice& operator=(const GptqDevice&) = delete;
  ~GptqDevice();

  struct Result {
    QuantizedMatrix matrix;
    double reconstruction_error = 0.0;  // ‖(W - Ŵ)X‖² / ‖WX‖², relative_output_error's
  };
  // W [out, in] f32 and H [in, in] f64 (2/N XᵀX) in device memory. Writes Ŵ into
  // `dequantized` [out, in] (device). `name` goes into error messages. Throws uq::Error when
  // the grid or options are unsupported (gptq_cuda_unsupported_reason) or H stays singular.
  Result quantize(const float* weights, std::int64_t out, std::int64_t in, const double* hessian,
                  const QuantGrid& grid, const GptqOptions& options, float* dequantized,
                  const std::string& name);

 private:
  // The upper Cholesky factor of (H + λI)⁻¹ in factor_ (float), as gptq_inverse_cholesky.
  void inverse_cholesky(const double* hessian, std::int64_t in, double damp,
                        const std::string& name);
  // One GPTQ pass over a copy of W; with `fixed` (device, [out, groups] pairs) on those
  // group parameters. Leaves codes_ and params_ filled.
  void pass(const float* weights, std::int64_t out, std::int64_t in, const QuantGrid& grid,
            const GptqOptions& options, const float* fixed);
  QuantizedMatrix download(std::int64_t out, std::int64_t in, std::int64_t group) const;
  double relative_error(const float* weights, const float* dequantized, std::int64_t out,
                        std::int64_t in, const double* hessian);

  cudaStream_t stream_;
  cublasHandle_t cublas_;
  cusolverDnContext* solver_ = nullptr;
  DeviceBuffer<double> work_;
  DeviceBuffer<double> solver_scratch_;
  DeviceBuffer<int> info_;
  DeviceBuffer<double> diagonal_;
  DeviceBuffer<float> factor_;
  DeviceBuffer<float> u_diagonal_;
  DeviceBuffer<float> w_;
  DeviceBuffer<float> errors_;
  DeviceBuffer<std::int16_t> codes_;
  DeviceBuffer<float> params_;
  DeviceBuffer<float> fixed_;
  DeviceBuffer<float> product_;
  DeviceBuffer<float> difference_;
  DeviceBuffer<float> hessian_f32_;
  DeviceBuffer<double> partials_;
  DeviceBuffer<double> sums_;
};

}  // namespace uq::cuda

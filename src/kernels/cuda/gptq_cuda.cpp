#include "kernels/cuda/gptq_cuda.hpp"

#include <algorithm>
#include <vector>

#include "calibration/group_refit.hpp"
#include "core/error.hpp"
#include "kernels/cuda/cublas_library.hpp"
#include "kernels/cuda/cusolver_library.hpp"
#include "kernels/cuda/gptq_kernels.hpp"

namespace uq::cuda {
namespace {

static_assert(sizeof(GroupParams) == 2 * sizeof(float), "GroupParams is copied as float pairs");

void check_solver(cusolverStatus_t status, const char* call) {
  if (status != CUSOLVER_STATUS_SUCCESS) fail("cuda: ", call, " failed: cuSOLVER status ", status);
}

template <class T>
void reserve(DeviceBuffer<T>& buffer, std::size_t count) {
  if (buffer.size() < count) buffer = DeviceBuffer<T>(count);
}

std::size_t elements(std::int64_t rows, std::int64_t cols) {
  return static_cast<std::size_t>(rows) * static_cast<std::size_t>(cols);
}

DeviceGrid device_grid(const QuantGrid& grid) {
  DeviceGrid result;
  result.family = grid.family() == GridFamily::quanto_affine ? DeviceGrid::quanto_affine
                                                             : DeviceGrid::mlx_affine;
  result.param_dtype = grid.param_dtype() == DType::BF16  ? DeviceGrid::bf16
                       : grid.param_dtype() == DType::F16 ? DeviceGrid::f16
                                                          : DeviceGrid::f32;
  result.min_code = grid.min_code();
  result.max_code = grid.max_code();
  return result;
}

bool refits(const QuantGrid& grid, const GptqOptions& options) {
  return options.refit_rounds > 0 &&
         grid.max_code() - grid.min_code() + 1 <= options.refit_max_levels;
}

}  // namespace

std::string gptq_cuda_unsupported_reason(const QuantGrid& grid, const GptqOptions& options) {
  if (grid.family() == GridFamily::symmetric) {
    return "GPTQ on the GPU has no " + grid.describe() + " grid (mlx or quanto affine only)";
  }
  const DType dtype = grid.param_dtype();
  if (dtype != DType::BF16 && dtype != DType::F16 && dtype != DType::F32) {
    return "GPTQ on the GPU keeps scales in bf16, f16 or f32, not " +
           std::string(dtype_name(dtype));
  }
  if (kGptqBlock % grid.group_size() != 0) {
    return "GPTQ on the GPU needs a group size dividing " + std::to_string(kGptqBlock) + ", not " +
           std::to_string(grid.group_size());
  }
  if (options.act_order) return "GPTQ on the GPU has no --act-order (use --device cpu)";
  if (options.block_size != kGptqBlock) {
    return "GPTQ on the GPU uses blocks of " + std::to_string(kGptqBlock) + " columns";
  }
  return {};
}

GptqDevice::GptqDevice(cudaStream_t stream, cublasHandle_t cublas)
    : stream_(stream), cublas_(cublas), info_(1), sums_(2) {
  check_solver(cusolver_library().create(&solver_), "cusolverDnCreate");
  check_solver(cusolver_library().set_stream(solver_, stream_), "cusolverDnSetStream");
  partials_ = DeviceBuffer<double>(static_cast<std::size_t>(dot_partial_count()));
}

GptqDevice::~GptqDevice() {
  cusolver_library().destroy(solver_);
}

void GptqDevice::inverse_cholesky(const double* hessian, std::int64_t in, double damp,
                                  const std::string& name) {
  const int n = static_cast<int>(in);
  const std::size_t count = elements(in, in);
  reserve(work_, count);
  reserve(diagonal_, static_cast<std::size_t>(in));
  std::vector<double> diagonal(static_cast<std::size_t>(in));
  UQ_CUDA_CHECK(cudaMemcpy2DAsync(
      diagonal.data(), sizeof(double), hessian, (static_cast<std::size_t>(in) + 1) * sizeof(double),
      sizeof(double), static_cast<std::size_t>(in), cudaMemcpyDeviceToHost, stream_));
  UQ_CUDA_CHECK(cudaStreamSynchronize(stream_));
  double mean = 0.0;
  for (double& value : diagonal) {
    if (value == 0.0) value = 1.0;  // a dead input: gptq_inverse_cholesky's rule
    mean += value;
  }
  mean /= static_cast<double>(in);
  UQ_CUDA_CHECK(cudaMemcpyAsync(diagonal_.data(), diagonal.data(), diagonal.size() * sizeof(double),
                                cudaMemcpyHostToDevice, stream_));
  int potrf_size = 0, potri_size = 0;
  check_solver(cusolver_library().dpotrf_buffer_size(solver_, CUBLAS_FILL_MODE_LOWER, n,
                                                     work_.data(), n, &potrf_size),
               "cusolverDnDpotrf_bufferSize");
  check_solver(cusolver_library().dpotri_buffer_size(solver_, CUBLAS_FILL_MODE_LOWER, n,
                                                     work_.data(), n, &potri_size),
               "cusolverDnDpotri_bufferSize");
  const int scratch = std::max(potrf_size, potri_size);
  reserve(solver_scratch_, static_cast<std::size_t>(scratch));
  // Column-major 'L' is the row-major upper triangle (as in gptq.cpp's LAPACK calls): the
  // second potrf leaves U with (H + λI)⁻¹ = UᵀU there.
  const auto succeeded = [&] {
    int info = 0;
    UQ_CUDA_CHECK(
        cudaMemcpyAsync(&info, info_.data(), sizeof(int), cudaMemcpyDeviceToHost, stream_));
    UQ_CUDA_CHECK(cudaStreamSynchronize(stream_));
    return info == 0;
  };
  for (int attempt = 0; attempt < 6; ++attempt, damp *= 10.0) {
    UQ_CUDA_CHECK(cudaMemcpyAsync(work_.data(), hessian, count * sizeof(double),
                                  cudaMemcpyDeviceToDevice, stream_));
    set_diagonal(work_.data(), in, diagonal_.data(), damp * mean, stream_);
    check_solver(cusolver_library().dpotrf(solver_, CUBLAS_FILL_MODE_LOWER, n, work_.data(), n,
                                           solver_scratch_.data(), scratch, info_.data()),
                 "cusolverDnDpotrf");
    if (!succeeded()) continue;
    check_solver(cusolver_library().dpotri(solver_, CUBLAS_FILL_MODE_LOWER, n, work_.data(), n,
                                           solver_scratch_.data(), scratch, info_.data()),
                 "cusolverDnDpotri");
    if (!succeeded()) continue;
    check_solver(cusolver_library().dpotrf(solver_, CUBLAS_FILL_MODE_LOWER, n, work_.data(), n,
                                           solver_scratch_.data(), scratch, info_.data()),
                 "cusolverDnDpotrf");
    if (!succeeded()) continue;
    reserve(factor_, count);
    reserve(u_diagonal_, static_cast<std::size_t>(in));
    upper_to_float(work_.data(), in, factor_.data(), stream_);
    diagonal_of(factor_.data(), in, u_diagonal_.data(), stream_);
    return;
  }
  fail("gptq: ", name, ": the input Hessian is not positive definite even with damping ",
       damp / 10.0);
}

void GptqDevice::pass(const float* weights, std::int64_t out, std::int64_t in,
                      const QuantGrid& grid, const GptqOptions& options, const float* fixed) {
  const std::int64_t group = grid.group_size();
  reserve(w_, elements(out, in));
  reserve(errors_, elements(out, kGptqBlock));
  reserve(codes_, elements(out, in));
  reserve(params_, elements(out, in / group) * 2);
  UQ_CUDA_CHECK(cudaMemcpyAsync(w_.data(), weights, elements(out, in) * sizeof(float),
                                cudaMemcpyDeviceToDevice, stream_));
  GptqBlockArgs args;
  args.weights = w_.data();
  args.factor = factor_.data();
  args.u_diagonal = u_diagonal_.data();
  args.out = out;
  args.in = in;
  args.group = static_cast<int>(group);
  args.clip_steps = options.clip_steps;
  args.grid = device_grid(grid);
  args.fixed = fixed;
  args.params = params_.data();
  args.codes = codes_.data();
  args.errors = errors_.data();
  const float minus_one = -1.0f, one = 1.0f;
  for (std::int64_t begin = 0; begin < in; begin += kGptqBlock) {
    const std::int64_t end = std::min<std::int64_t>(in, begin + kGptqBlock);
    args.begin = begin;
    args.length = static_cast<int>(end - begin);
    gptq_block(args, stream_);
    if (end < in) {  // W[:, end:] -= E · U[begin:end, end:] (row-major; cuBLAS sees transposes)
      UQ_CUDA_CHECK(cublas_library().sgemm(
          cublas_, CUBLAS_OP_N, CUBLAS_OP_N, static_cast<int>(in - end), static_cast<int>(out),
          args.length, &minus_one, factor_.data() + begin * in + end, static_cast<int>(in),
          errors_.data(), kGptqBlock, &one, w_.data() + end, static_cast<int>(in)));
    }
  }
}

QuantizedMatrix GptqDevice::download(std::int64_t out, std::int64_t in, std::int64_t group) const {
  QuantizedMatrix matrix(out, in, group);
  UQ_CUDA_CHECK(cudaMemcpyAsync(matrix.codes.data(), codes_.data(),
                                matrix.codes.size() * sizeof(std::int16_t), cudaMemcpyDeviceToHost,
                                stream_));
  UQ_CUDA_CHECK(cudaMemcpyAsync(matrix.params.data(), params_.data(),
                                matrix.params.size() * sizeof(GroupParams), cudaMemcpyDeviceToHost,
                                stream_));
  UQ_CUDA_CHECK(cudaStreamSynchronize(stream_));
  return matrix;
}

double GptqDevice::relative_error(const float* weights, const float* dequantized, std::int64_t out,
                                  std::int64_t in, const double* hessian) {
  reserve(hessian_f32_, elements(in, in));
  reserve(product_, elements(out, in));
  reserve(difference_, elements(out, in));
  to_float(hessian, elements(in, in), hessian_f32_.data(), stream_);
  subtract(weights, dequantized, elements(out, in), difference_.data(), stream_);
  const float one = 1.0f, zero = 0.0f;
  const auto quadratic = [&](const float* matrix, double* result) {  // Σ_o mₒᵀ H mₒ
    UQ_CUDA_CHECK(cublas_library().sgemm(
        cublas_, CUBLAS_OP_N, CUBLAS_OP_N, static_cast<int>(in), static_cast<int>(out),
        static_cast<int>(in), &one, hessian_f32_.data(), static_cast<int>(in), matrix,
        static_cast<int>(in), &zero, product_.data(), static_cast<int>(in)));
    dot(product_.data(), matrix, elements(out, in), partials_.data(), result, stream_);
  };
  quadratic(weights, sums_.data());
  quadratic(difference_.data(), sums_.data() + 1);
  double sums[2] = {0.0, 0.0};
  UQ_CUDA_CHECK(cudaMemcpyAsync(sums, sums_.data(), sizeof sums, cudaMemcpyDeviceToHost, stream_));
  UQ_CUDA_CHECK(cudaStreamSynchronize(stream_));
  return sums[0] > 0.0 ? sums[1] / sums[0] : 0.0;
}

GptqDevice::Result GptqDevice::quantize(const float* weights, std::int64_t out, std::int64_t in,
                                        const double* hessian, const QuantGrid& grid,
                                        const GptqOptions& options, float* dequantized,
                                        const std::string& name) {
  if (const std::string reason = gptq_cuda_unsupported_reason(grid, options); !reason.empty())
    fail(name, ": ", reason);
  const std::int64_t group = grid.group_size();
  inverse_cholesky(hessian, in, options.damp, name);
  pass(weights, out, in, grid, options, nullptr);
  QuantizedMatrix best = download(out, in, group);
  if (refits(grid, options)) {
    // The refits of gptq.cpp, on the host, around GPU passes on the refit grids.
    std::vector<float> host_weights(elements(out, in));
    std::vector<double> host_hessian(elements(in, in));
    UQ_CUDA_CHECK(cudaMemcpyAsync(host_weights.data(), weights, host_weights.size() * sizeof(float),
                                  cudaMemcpyDeviceToHost, stream_));
    UQ_CUDA_CHECK(cudaMemcpyAsync(host_hessian.data(), hessian,
                                  host_hessian.size() * sizeof(double), cudaMemcpyDeviceToHost,
                                  stream_));
    UQ_CUDA_CHECK(cudaStreamSynchronize(stream_));
    const std::vector<double> curvature = damped_hessian(host_hessian, in, options.damp);
    std::vector<double> best_errors = row_output_errors(host_weights.data(), best, curvature);
    QuantizedMatrix candidate = best;
    reserve(fixed_, candidate.params.size() * 2);
    const std::int64_t groups = best.groups_per_row();
    for (int round = 0; round < options.refit_rounds; ++round) {
      if (round > 0) {
        UQ_CUDA_CHECK(cudaMemcpyAsync(fixed_.data(), candidate.params.data(),
                                      candidate.params.size() * sizeof(GroupParams),
                                      cudaMemcpyHostToDevice, stream_));
        pass(weights, out, in, grid, options, fixed_.data());
        candidate = download(out, in, group);
      }
      refit_group_params(host_weights.data(), curvature, grid, candidate);
      const std::vector<double> errors =
          row_output_errors(host_weights.data(), candidate, curvature);
      for (std::int64_t o = 0; o < out; ++o) {
        if (errors[static_cast<std::size_t>(o)] >= best_errors[static_cast<std::size_t>(o)])
          continue;
        best_errors[static_cast<std::size_t>(o)] = errors[static_cast<std::size_t>(o)];
        std::copy_n(candidate.codes.begin() + o * in, in, best.codes.begin() + o * in);
        std::copy_n(candidate.params.begin() + o * groups, groups,
                    best.params.begin() + o * groups);
      }
    }
    UQ_CUDA_CHECK(cudaMemcpyAsync(codes_.data(), best.codes.data(),
                                  best.codes.size() * sizeof(std::int16_t), cudaMemcpyHostToDevice,
                                  stream_));
    UQ_CUDA_CHECK(cudaMemcpyAsync(params_.data(), best.params.data(),
                                  best.params.size() * sizeof(GroupParams), cudaMemcpyHostToDevice,
                                  stream_));
  }
  dequantize_groups(codes_.data(), params_.data(), out, in, group, dequantized, stream_);
  const double error = relative_error(weights, dequantized, out, in, hessian);
  return {std::move(best), error};
}

}  // namespace uq::cuda

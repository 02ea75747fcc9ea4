#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cfloat>

#include "kernels/cuda/cuda_check.hpp"
#include "kernels/cuda/gptq_kernels.hpp"

namespace uq::cuda {
namespace {

constexpr int kThreads = 256;
constexpr int kLanes = 32;
constexpr int kPerLane = kGptqBlock / kLanes;  // columns of the block each lane holds
constexpr int kDotBlocks = 512;
constexpr unsigned kFullMask = 0xffffffffu;

int blocks_for(std::size_t items) {
  return static_cast<int>((items + kThreads - 1) / kThreads);
}

__device__ float round_param(float value, int dtype) {
  if (dtype == DeviceGrid::bf16) return __bfloat162float(__float2bfloat16_rn(value));
  if (dtype == DeviceGrid::f16) return __half2float(__float2half_rn(value));
  return value;
}

__device__ float2 stored(float scale, float bias, int dtype) {
  return make_float2(round_param(scale, dtype), round_param(bias, dtype));
}

// QuantGrid::params_for_range of the MLX and quanto grids (calibration/quant_grid.cpp).
__device__ float2 params_for_range(float lo, float hi, const DeviceGrid& grid) {
  const auto levels = static_cast<float>(grid.max_code);
  if (grid.family == DeviceGrid::quanto_affine) {
    return stored(__fdiv_rn(round_param(__fsub_rn(hi, lo), grid.param_dtype), levels), lo,
                  grid.param_dtype);
  }
  if (grid.max_code == 1) return stored(fmaxf(__fsub_rn(hi, lo), 1e-7f), lo, grid.param_dtype);
  float step = fmaxf(__fdiv_rn(__fsub_rn(hi, lo), levels), 1e-7f);
  const bool low_edge = fabsf(lo) > fabsf(hi);
  const float edge = low_edge ? lo : hi;
  if (!low_edge) step = -step;
  const float q0 = rintf(__fdiv_rn(edge, step));
  if (q0 != 0.0f) return stored(__fdiv_rn(edge, q0), edge, grid.param_dtype);
  return stored(step, 0.0f, grid.param_dtype);
}

// QuantGrid::code and QuantGrid::value, without contracting into FMAs.
__device__ int grid_code(float w, float2 params, const DeviceGrid& grid) {
  if (params.x == 0.0f) return min(max(0, grid.min_code), grid.max_code);
  const float q = rintf(__fdiv_rn(__fsub_rn(w, params.y), params.x));
  return static_cast<int>(
      fminf(fmaxf(q, static_cast<float>(grid.min_code)), static_cast<float>(grid.max_code)));
}

__device__ float grid_value(int code, float2 params) {
  return __fadd_rn(__fmul_rn(params.x, static_cast<float>(code)), params.y);
}

__device__ float pick(const float (&values)[kPerLane], int slot) {
  float value = values[0];
#pragma unroll
  for (int t = 1; t < kPerLane; ++t) value = slot == t ? values[t] : value;
  return value;
}

// The group's parameters from its current values: the range shrunk by the ratio among
// 1, 0.95, ... with the least Σ (w - q)² / U_ii² (gptq.cpp's group_params). The lanes
// hold the block's columns lane + 32 t; every lane returns the same pair.
__device__ float2 search_group(const float (&w)[kPerLane], int first, int group, int length,
                               const float* u_diagonal, const DeviceGrid& grid, int clip_steps) {
  const int lane = static_cast<int>(threadIdx.x) % kLanes;
  float lo = FLT_MAX, hi = -FLT_MAX;
#pragma unroll
  for (int t = 0; t < kPerLane; ++t) {
    const int k = lane + kLanes * t;
    if (k >= first && k < first + group && k < length) {
      lo = fminf(lo, w[t]);
      hi = fmaxf(hi, w[t]);
    }
  }
  for (int offset = 16; offset > 0; offset /= 2) {
    lo = fminf(lo, __shfl_xor_sync(kFullMask, lo, offset));
    hi = fmaxf(hi, __shfl_xor_sync(kFullMask, hi, offset));
  }
  float2 best = params_for_range(lo, hi, grid);
  double best_loss = DBL_MAX;
  for (int step = 0; step < clip_steps; ++step) {
    const float ratio = 1.0f - static_cast<float>(step) / 20.0f;
    const float2 params = params_for_range(__fmul_rn(lo, ratio), __fmul_rn(hi, ratio), grid);
    double loss = 0.0;
#pragma unroll
    for (int t = 0; t < kPerLane; ++t) {
      const int k = lane + kLanes * t;
      if (k >= first && k < first + group && k < length) {
        const double error = __fsub_rn(w[t], grid_value(grid_code(w[t], params, grid), params));
        const double u = u_diagonal[k];
        loss += error * error / (u * u);
      }
    }
    for (int offset = 16; offset > 0; offset /= 2) loss += __shfl_xor_sync(kFullMask, loss, offset);
    if (loss < best_loss) {
      best_loss = loss;
      best = params;
    }
  }
  return best;
}

// One warp per row: the row's block of columns lives in registers; column i's error
// updates the block's later columns at once (the eager part of GPTQ's update).
__global__ void gptq_block_kernel(GptqBlockArgs args) {
  const std::int64_t row =
      (blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x) / kLanes;
  if (row >= args.out) return;  // whole warps leave together
  const int lane = static_cast<int>(threadIdx.x) % kLanes;
  const float* source = args.weights + row * args.in + args.begin;
  const float* u_diagonal = args.u_diagonal + args.begin;
  float w[kPerLane];
#pragma unroll
  for (int t = 0; t < kPerLane; ++t) {
    const int k = lane + kLanes * t;
    w[t] = k < args.length ? source[k] : 0.0f;
  }
  const std::int64_t groups = args.in / args.group;
  float2 params = make_float2(0.0f, 0.0f);
  for (int i = 0; i < args.length; ++i) {
    const std::int64_t column = args.begin + i;
    if (column % args.group == 0) {
      const std::int64_t slot = row * groups + column / args.group;
      if (args.fixed != nullptr) {
        params = make_float2(args.fixed[2 * slot], args.fixed[2 * slot + 1]);
      } else {
        params =
            search_group(w, i, args.group, args.length, u_diagonal, args.grid, args.clip_steps);
      }
      if (lane == 0) {
        args.params[2 * slot] = params.x;
        args.params[2 * slot + 1] = params.y;
      }
    }
    const float value = __shfl_sync(kFullMask, pick(w, i / kLanes), i % kLanes);
    const int code = grid_code(value, params, args.grid);
    const float error = __fdiv_rn(__fsub_rn(value, grid_value(code, params)), u_diagonal[i]);
    if (lane == 0) {
      args.codes[row * args.in + column] = static_cast<std::int16_t>(code);
      args.errors[row * kGptqBlock + i] = error;
    }
    const float* u = args.factor + column * args.in + args.begin;
#pragma unroll
    for (int t = 0; t < kPerLane; ++t) {
      const int k = lane + kLanes * t;
      if (k > i && k < args.length) w[t] = __fsub_rn(w[t], __fmul_rn(error, u[k]));
    }
  }
}

__global__ void accumulate_f64_kernel(const float* src, std::size_t count, double* dst) {
  const std::size_t i = blockIdx.x * static_cast<std::size_t>(blockDim.x) + threadIdx.x;
  if (i < count) dst[i] += static_cast<double>(src[i]);
}

__global__ void scale_f64_kernel(double* data, std::size_t count, double factor) {
  const std::size_t i = blockIdx.x * static_cast<std::size_t>(blockDim.x) + threadIdx.x;
  if (i < count) data[i] *= factor;
}

__global__ void set_diagonal_kernel(double* a, std::int64_t n, const double* diagonal, double add) {
  const std::int64_t i = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x;
  if (i < n) a[i * n + i] = diagonal[i] + add;
}

__global__ void mirror_upper_kernel(double* a, std::int64_t n) {
  const std::size_t i = blockIdx.x * static_cast<std::size_t>(blockDim.x) + threadIdx.x;
  if (i >= static_cast<std::size_t>(n) * n) return;
  const auto r = static_cast<std::int64_t>(i / n), c = static_cast<std::int64_t>(i % n);
  if (r > c) a[i] = a[c * n + r];
}

__global__ void upper_to_float_kernel(const double* a, std::int64_t n, float* out) {
  const std::size_t i = blockIdx.x * static_cast<std::size_t>(blockDim.x) + threadIdx.x;
  if (i >= static_cast<std::size_t>(n) * n) return;
  const auto r = static_cast<std::int64_t>(i / n), c = static_cast<std::int64_t>(i % n);
  out[i] = c >= r ? static_cast<float>(a[i]) : 0.0f;
}

__global__ void to_float_kernel(const double* a, std::size_t count, float* out) {
  const std::size_t i = blockIdx.x * static_cast<std::size_t>(blockDim.x) + threadIdx.x;
  if (i < count) out[i] = static_cast<float>(a[i]);
}

__global__ void diagonal_kernel(const float* a, std::int64_t n, float* out) {
  const std::int64_t i = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x;
  if (i < n) out[i] = a[i * n + i];
}

__global__ void dequantize_kernel(const std::int16_t* codes, const float* params, std::int64_t out,
                                  std::int64_t in, std::int64_t group, float* values) {
  const std::size_t i = blockIdx.x * static_cast<std::size_t>(blockDim.x) + threadIdx.x;
  if (i >= static_cast<std::size_t>(out) * in) return;
  const auto r = static_cast<std::int64_t>(i / in), c = static_cast<std::int64_t>(i % in);
  const std::int64_t slot = r * (in / group) + c / group;
  values[i] = grid_value(codes[i], make_float2(params[2 * slot], params[2 * slot + 1]));
}

__global__ void subtract_kernel(const float* a, const float* b, std::size_t count, float* out) {
  const std::size_t i = blockIdx.x * static_cast<std::size_t>(blockDim.x) + threadIdx.x;
  if (i < count) out[i] = a[i] - b[i];
}

// Block b sums elements b·256 + t + k·(kDotBlocks·256) per thread, then a fixed tree.
__global__ void dot_partials_kernel(const float* a, const float* b, std::size_t count,
                                    double* partials) {
  __shared__ double sums[kThreads];
  double sum = 0.0;
  for (std::size_t i = blockIdx.x * static_cast<std::size_t>(kThreads) + threadIdx.x; i < count;
       i += static_cast<std::size_t>(kDotBlocks) * kThreads) {
    sum += static_cast<double>(a[i]) * static_cast<double>(b[i]);
  }
  sums[threadIdx.x] = sum;
  __syncthreads();
  for (int width = kThreads / 2; width > 0; width /= 2) {
    if (static_cast<int>(threadIdx.x) < width) sums[threadIdx.x] += sums[threadIdx.x + width];
    __syncthreads();
  }
  if (threadIdx.x == 0) partials[blockIdx.x] = sums[0];
}

__global__ void sum_partials_kernel(const double* partials, double* result) {
  __shared__ double sums[kThreads];
  double sum = 0.0;
  for (int i = static_cast<int>(threadIdx.x); i < kDotBlocks; i += kThreads) sum += partials[i];
  sums[threadIdx.x] = sum;
  __syncthreads();
  for (int width = kThreads / 2; width > 0; width /= 2) {
    if (static_cast<int>(threadIdx.x) < width) sums[threadIdx.x] += sums[threadIdx.x + width];
    __syncthreads();
  }
  if (threadIdx.x == 0) *result = sums[0];
}

__global__ void add_bias_rows_kernel(float* y, std::int64_t rows, int width, std::int64_t stride,
                                     const float* bias) {
  const std::size_t i = blockIdx.x * static_cast<std::size_t>(blockDim.x) + threadIdx.x;
  if (i >= static_cast<std::size_t>(rows) * width) return;
  const auto r = static_cast<std::int64_t>(i / width);
  const auto c = static_cast<int>(i % width);
  y[r * stride + c] += bias[c];
}

}  // namespace

void gptq_block(const GptqBlockArgs& args, cudaStream_t stream) {
  const std::size_t threads = static_cast<std::size_t>(args.out) * kLanes;
  gptq_block_kernel<<<blocks_for(threads), kThreads, 0, stream>>>(args);
  UQ_CUDA_CHECK_LAUNCH("gptq_block_kernel");
}

void accumulate_f64(const float* src, std::size_t count, double* dst, cudaStream_t stream) {
  accumulate_f64_kernel<<<blocks_for(count), kThreads, 0, stream>>>(src, count, dst);
  UQ_CUDA_CHECK_LAUNCH("accumulate_f64_kernel");
}

void scale_f64(double* data, std::size_t count, double factor, cudaStream_t stream) {
  scale_f64_kernel<<<blocks_for(count), kThreads, 0, stream>>>(data, count, factor);
  UQ_CUDA_CHECK_LAUNCH("scale_f64_kernel");
}

void set_diagonal(double* a, std::int64_t n, const double* diagonal, double add,
                  cudaStream_t stream) {
  set_diagonal_kernel<<<blocks_for(static_cast<std::size_t>(n)), kThreads, 0, stream>>>(
      a, n, diagonal, add);
  UQ_CUDA_CHECK_LAUNCH("set_diagonal_kernel");
}

void mirror_upper(double* a, std::int64_t n, cudaStream_t stream) {
  const std::size_t count = static_cast<std::size_t>(n) * static_cast<std::size_t>(n);
  mirror_upper_kernel<<<blocks_for(count), kThreads, 0, stream>>>(a, n);
  UQ_CUDA_CHECK_LAUNCH("mirror_upper_kernel");
}

void upper_to_float(const double* a, std::int64_t n, float* out, cudaStream_t stream) {
  const std::size_t count = static_cast<std::size_t>(n) * static_cast<std::size_t>(n);
  upper_to_float_kernel<<<blocks_for(count), kThreads, 0, stream>>>(a, n, out);
  UQ_CUDA_CHECK_LAUNCH("upper_to_float_kernel");
}

void to_float(const double* a, std::size_t count, float* out, cudaStream_t stream) {
  to_float_kernel<<<blocks_for(count), kThreads, 0, stream>>>(a, count, out);
  UQ_CUDA_CHECK_LAUNCH("to_float_kernel");
}

void diagonal_of(const float* a, std::int64_t n, float* out, cudaStream_t stream) {
  diagonal_kernel<<<blocks_for(static_cast<std::size_t>(n)), kThreads, 0, stream>>>(a, n, out);
  UQ_CUDA_CHECK_LAUNCH("diagonal_kernel");
}

void dequantize_groups(const std::int16_t* codes, const float* params, std::int64_t out,
                       std::int64_t in, std::int64_t group, float* values, cudaStream_t stream) {
  const std::size_t count = static_cast<std::size_t>(out) * static_cast<std::size_t>(in);
  dequantize_kernel<<<blocks_for(count), kThreads, 0, stream>>>(codes, params, out, in, group,
                                                                values);
  UQ_CUDA_CHECK_LAUNCH("dequantize_kernel");
}

void subtract(const float* a, const float* b, std::size_t count, float* out, cudaStream_t stream) {
  subtract_kernel<<<blocks_for(count), kThreads, 0, stream>>>(a, b, count, out);
  UQ_CUDA_CHECK_LAUNCH("subtract_kernel");
}

int dot_partial_count() {
  return kDotBlocks;
}

void dot(const float* a, const float* b, std::size_t count, double* partials, double* result,
         cudaStream_t stream) {
  dot_partials_kernel<<<kDotBlocks, kThreads, 0, stream>>>(a, b, count, partials);
  UQ_CUDA_CHECK_LAUNCH("dot_partials_kernel");
  sum_partials_kernel<<<1, kThreads, 0, stream>>>(partials, result);
  UQ_CUDA_CHECK_LAUNCH("sum_partials_kernel");
}

void add_bias_rows(float* y, std::int64_t rows, int width, std::int64_t stride, const float* bias,
                   cudaStream_t stream) {
  const std::size_t count = static_cast<std::size_t>(rows) * static_cast<std::size_t>(width);
  add_bias_rows_kernel<<<blocks_for(count), kThreads, 0, stream>>>(y, rows, width, stride, bias);
  UQ_CUDA_CHECK_LAUNCH("add_bias_rows_kernel");
}

}  // namespace uq::cuda

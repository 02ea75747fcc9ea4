#pragma once
// The GPU side of GPTQ (calibration/gptq.hpp) that cuBLAS and cuSOLVER do not cover: the
// column loop of one block of columns (warp per row), the group grids it rounds to, and the
// small element-wise and reduction steps around the Hessian. Every reduction has a fixed
// order (no atomics), so the same inputs give the same bits on every run.
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

namespace uq::cuda {

// The group-wise grid of calibration/quant_grid.hpp on the device: MLX affine or
// optimum-quanto affine rounding, scale and bias rounded to param_dtype.
struct DeviceGrid {
  enum Family : int { mlx_affine = 0, quanto_affine = 1 };
  enum ParamDType : int { f32 = 0, bf16 = 1, f16 = 2 };
  int family = mlx_affine;
  int param_dtype = bf16;
  int min_code = 0;
  int max_code = 0;
};

// Columns of one GPTQ block (the eager updates stay inside a block).
constexpr int kGptqBlock = 128;

struct GptqBlockArgs {
  const float* weights = nullptr;     // [out, in], current (lazily updated) values
  const float* factor = nullptr;      // [in, in] upper Cholesky factor U of H⁻¹
  const float* u_diagonal = nullptr;  // [in] U_ii
  std::int64_t out = 0;
  std::int64_t in = 0;
  std::int64_t begin = 0;  // first column of the block
  int length = 0;          // columns in the block, at most kGptqBlock
  int group = 0;           // divides kGptqBlock
  int clip_steps = 1;
  DeviceGrid grid;
  const float* fixed = nullptr;   // [out, groups] (scale, bias) pairs, or null: search them
  float* params = nullptr;        // [out, groups] (scale, bias) pairs written
  std::int16_t* codes = nullptr;  // [out, in] written for the block's columns
  float* errors = nullptr;        // [out, kGptqBlock]: (w - q) / U_ii, for the lazy update
};

// Quantizes columns begin..begin+length of every row with GPTQ's eager error propagation.
void gptq_block(const GptqBlockArgs& args, cudaStream_t stream);

// dst[i] += src[i] (float partial Hessians summed in double).
void accumulate_f64(const float* src, std::size_t count, double* dst, cudaStream_t stream);
// data[i] *= factor
void scale_f64(double* data, std::size_t count, double factor, cudaStream_t stream);
// a[i, i] = diagonal[i] + add for an [n, n] matrix.
void set_diagonal(double* a, std::int64_t n, const double* diagonal, double add,
                  cudaStream_t stream);
// a[r, c] = a[c, r] below the diagonal (row-major): the upper triangle copied down.
void mirror_upper(double* a, std::int64_t n, cudaStream_t stream);
// out = float(a) on and above the diagonal (row-major), 0 below.
void upper_to_float(const double* a, std::int64_t n, float* out, cudaStream_t stream);
// out = float(a)
void to_float(const double* a, std::size_t count, float* out, cudaStream_t stream);
// out[i] = a[i, i]
void diagonal_of(const float* a, std::int64_t n, float* out, cudaStream_t stream);
// values[r, c] = scale * code + bias of the (scale, bias) pair of (r, c / group).
void dequantize_groups(const std::int16_t* codes, const float* params, std::int64_t out,
                       std::int64_t in, std::int64_t group, float* values, cudaStream_t stream);
// out = a - b
void subtract(const float* a, const float* b, std::size_t count, float* out, cudaStream_t stream);
// *result = Σ a[i]·b[i] in double, fixed order; `partials` holds dot_partial_count() doubles.
int dot_partial_count();
void dot(const float* a, const float* b, std::size_t count, double* partials, double* result,
         cudaStream_t stream);
// y[r, c] += bias[c] for rows of `width` at row stride `stride`.
void add_bias_rows(float* y, std::int64_t rows, int width, std::int64_t stride, const float* bias,
                   cudaStream_t stream);

}  // namespace uq::cuda

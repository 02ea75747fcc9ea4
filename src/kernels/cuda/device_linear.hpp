#pragma once
// Linear layers on the GPU, weights uploaded once from the CPU model's Weight objects:
//   FloatWeight bf16 -> bf16 matrix; 1-2 rows (decode) by bf16_gemv_cuda (f32 x, exact
//     products); more rows by cuBLAS (bf16 in, fp32 compute) with the f32 activations split
//     into bf16 high + low parts, stacked as twice the rows, so one pass over the weights gives
//     a product accurate to ~16 significant bits of x;
//   FloatWeight f32 / f16 -> f32 matrix, cuBLAS sgemm;
//   AffineWeight (MLX layout, bf16 scales, bits 2-6/8, groups 32/64/128) -> AffineDeviceWeight
//     and affine_gemv_cuda;
//   every other format (other affine scales/bits/groups, symmetric, float8, bnb, LLM.int8, ggml,
//     quanto activations, LoRA) -> FormatDeviceMatrix (format_device_matrix.hpp).
// A Weight type with none of these is refused with a uq::Error naming the layer and its format.
// Several layers reading the same input (q|k|v, gate|up) are fused into one matrix when their
// formats match, so one launch reads them all.
#include <cuda_bf16.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "kernels/cuda/affine_device_weight.hpp"
#include "kernels/cuda/affine_gemv.hpp"
#include "kernels/cuda/device_buffer.hpp"

namespace uq {
class Weight;
}

namespace uq::cuda {

class FormatDeviceMatrix;

// Device buffers a product needs besides its input and output; grown on demand.
struct LinearScratch {
  DeviceBuffer<__nv_bfloat16> split;  // [2 * rows, in] bf16 parts of x
  DeviceBuffer<float> product;        // [2 * rows, out] raw products
  // FormatDeviceMatrix: decoded tile of W, quantized activations, LoRA projection, LLM.int8.
  DeviceBuffer<float> tile;
  DeviceBuffer<float> activations;
  DeviceBuffer<float> lora;
  DeviceBuffer<std::int8_t> quantized_x;
  DeviceBuffer<float> row_absmax;
  DeviceBuffer<std::int32_t> outliers;
  GemvScratch gemv;  // the persistent affine GEMV's x fragments
};

struct LinearContext {
  cudaStream_t stream = nullptr;
  cublasHandle_t cublas = nullptr;
  LinearScratch* scratch = nullptr;
};

struct NamedWeight {
  std::string name;  // HF module path, for error messages
  const Weight* weight = nullptr;
};

// Empty when `weight` can go to the GPU, else why not ("no CUDA kernel for ... yet").
std::optional<std::string> cuda_unsupported_reason(const NamedWeight& weight);

// The row-concatenation of weights of one format, on the device.
class DeviceMatrix {
 public:
  // All parts must share a format and in_features (see fusable); throws uq::Error otherwise.
  explicit DeviceMatrix(const std::vector<NamedWeight>& parts);
  ~DeviceMatrix();
  // True when `a` and `b` can share one DeviceMatrix.
  static bool fusable(const Weight& a, const Weight& b);

  int out() const { return out_; }
  int in() const { return in_; }
  // Raw product of x [rows, in]: y = a (+ b where b is not null), both [rows, out] in scratch,
  // or, where the format allows and `direct` is not null, a = direct, b = null, written there
  // (with `accumulate`, added to what direct holds: only where accumulates_in_place(rows)).
  struct Product {
    const float* a;
    const float* b;
  };
  Product multiply(const float* x, int rows, const LinearContext& context, float* direct = nullptr,
                   bool accumulate = false) const;
  // True when multiply can add a product of `rows` rows straight into its output (the decoder's
  // residual adds without an epilogue kernel).
  bool accumulates_in_place(int rows) const;
  // True when multiply_fused takes `rows` rows (affine weights where `automatic` picks the
  // stream or persistent kernel for `rows`).
  bool fuses_input(int rows) const;
  // y [rows, out] = (accumulate ? y : 0) + f(input) W^T with the input transform in the GEMV
  // (affine_gemv_fused_cuda); only where fuses_input(rows).
  void multiply_fused(const float* input, int rows, const GemvInput& how, float* y, bool accumulate,
                      const LinearContext& context) const;
  // out[t, :] = W[ids[t], :] as float (embedding lookup).
  void gather(const std::int32_t* ids, int count, float* out, cudaStream_t stream) const;

 private:
  // The affine kernel `automatic` runs for `rows` rows of this (affine) matrix.
  GemvKernel automatic_kernel(int rows) const;

  enum class Kind { bf16, f32, affine, format };
  Kind kind_;
  int out_ = 0;
  int in_ = 0;
  DeviceBuffer<__nv_bfloat16> bf16_;
  DeviceBuffer<float> f32_;
  std::unique_ptr<AffineDeviceWeight> affine_;
  std::unique_ptr<const FormatDeviceMatrix> format_;
};

// y = x W^T + bias for W the concatenation of its parts; biases (empty when a part has none)
// are concatenated with zeros in the gaps.
class DeviceLinear {
 public:
  struct Part {
    NamedWeight weight;
    const std::vector<float>* bias = nullptr;  // null or empty: none
  };
  explicit DeviceLinear(const std::vector<Part>& parts);
  // Shares an uploaded matrix (lm_head tied to the embedding).
  explicit DeviceLinear(std::shared_ptr<const DeviceMatrix> matrix);

  int out() const { return out_; }
  // y[r, 0..out) at row stride y_stride = (accumulate ? y : 0) + x[r] W^T + bias.
  void apply(const float* x, int rows, float* y, int y_stride, bool accumulate,
             const LinearContext& context) const;
  // True where apply_fused takes `rows` rows: one affine matrix without bias, y contiguous
  // (y_stride == out) and the persistent kernel being the automatic choice.
  bool fuses_input(int rows, int y_stride) const;
  // apply() of x = f(input) (RMSNorm or SwiGLU, see GemvInput) in one fused product; only where
  // fuses_input(rows, y_stride) (throws uq::Error otherwise).
  void apply_fused(const float* input, int rows, const GemvInput& how, float* y, int y_stride,
                   bool accumulate, const LinearContext& context) const;

 private:
  std::vector<std::shared_ptr<const DeviceMatrix>> groups_;
  DeviceBuffer<float> bias_;
  int out_ = 0;
};

}  // namespace uq::cuda

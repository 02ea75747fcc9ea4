#pragma once
// A quantized linear whose activations quanto also quantizes (QModuleMixin
// with activations=qint8/qfloat8): the input is quantized-dequantized with
// input_scale before the product and the output with output_scale after it,
// both per tensor, as quanto's quantize_input / quantize_output hooks do.
// The weight it wraps keeps its own format and kernels. A linear's bias is
// added by the decoder after matmul, so this form is for bias-free linears
// (Llama's); the quanto layout refuses activations with a bias.
#include <memory>

#include "core/dtype.hpp"
#include "model/weight.hpp"

namespace uq {

struct ActivationScales {
  float input = 1.0f;  // quanto's initial (uncalibrated) value
  float output = 1.0f;
};

class QuantoActivationWeight final : public Weight {
 public:
  // `qtype`: I8, F8_E4M3 or F8_E5M2; scales are values of `scale_dtype`
  // (finite, > 0). Throws uq::Error naming `tensor` otherwise.
  QuantoActivationWeight(std::shared_ptr<const Weight> weight, DType qtype, DType scale_dtype,
                         ActivationScales scales, std::string_view tensor);

  std::int64_t out_features() const override { return weight_->out_features(); }
  std::int64_t in_features() const override { return weight_->in_features(); }
  void matmul(const float* x, std::int64_t rows, float* y) const override;
  void dequantize_rows(std::int64_t first, std::int64_t count, float* out) const override {
    weight_->dequantize_rows(first, count, out);
  }
  std::size_t storage_bytes() const override { return weight_->storage_bytes(); }
  std::string describe() const override;  // "<weight> + qint8 activations"

  const std::shared_ptr<const Weight>& weight() const { return weight_; }
  DType qtype() const { return qtype_; }
  DType scale_dtype() const { return scale_dtype_; }
  const ActivationScales& scales() const { return scales_; }

 private:
  std::shared_ptr<const Weight> weight_;
  DType qtype_;
  DType scale_dtype_;
  ActivationScales scales_;
};

}  // namespace uq

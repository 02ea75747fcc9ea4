#include "quant/quanto_activation_weight.hpp"

#include <cmath>
#include <vector>

#include "core/error.hpp"
#include "quant/quanto_activations.hpp"

namespace uq {

QuantoActivationWeight::QuantoActivationWeight(std::shared_ptr<const Weight> weight, DType qtype,
                                               DType scale_dtype, ActivationScales scales,
                                               std::string_view tensor)
    : weight_(std::move(weight)), qtype_(qtype), scale_dtype_(scale_dtype), scales_(scales) {
  if (!weight_) fail("tensor '", tensor, "': no weight to quantize the activations of");
  activation_qmax(qtype);  // rejects a dtype that is no activation qtype
  for (const float scale : {scales.input, scales.output}) {
    if (!std::isfinite(scale) || scale <= 0.0f) {
      fail("tensor '", tensor, "': activation scale ", scale, " must be finite and positive");
    }
  }
}

void QuantoActivationWeight::matmul(const float* x, std::int64_t rows, float* y) const {
  const auto inputs = static_cast<std::size_t>(rows * in_features());
  std::vector<float> quantized(x, x + inputs);
  quantize_dequantize_activation(quantized.data(), inputs, qtype_, scales_.input);
  weight_->matmul(quantized.data(), rows, y);
  quantize_dequantize_activation(y, static_cast<std::size_t>(rows * out_features()), qtype_,
                                 scales_.output);
}

std::string QuantoActivationWeight::describe() const {
  return weight_->describe() + " + " + activation_qtype_name(qtype_) + " activations";
}

}  // namespace uq

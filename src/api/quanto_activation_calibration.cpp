#include "api/quanto_activation_calibration.hpp"

#include <algorithm>
#include <map>
#include <memory>

#include "core/progress.hpp"
#include "model/decoder.hpp"
#include "quant/quanto_activation_weight.hpp"
#include "quant/quanto_activations.hpp"

namespace uq {
namespace {

// A linear under calibration: quanto's calibrate_input / quantize_input
// before the product and calibrate_output / quantize_output after it.
class CalibratingWeight final : public Weight {
 public:
  CalibratingWeight(std::shared_ptr<const Weight> weight, DType qtype, DType scale_dtype)
      : weight_(std::move(weight)), qtype_(qtype), scale_dtype_(scale_dtype) {}

  std::int64_t out_features() const override { return weight_->out_features(); }
  std::int64_t in_features() const override { return weight_->in_features(); }
  void matmul(const float* x, std::int64_t rows, float* y) const override {
    const auto inputs = static_cast<std::size_t>(rows * in_features());
    std::vector<float> quantized(x, x + inputs);
    scales_.input = updated_activation_scale(
        scales_.input, activation_absmax_scale(x, inputs, qtype_, scale_dtype_), scale_dtype_);
    quantize_dequantize_activation(quantized.data(), inputs, qtype_, scales_.input);
    weight_->matmul(quantized.data(), rows, y);
    const auto outputs = static_cast<std::size_t>(rows * out_features());
    scales_.output = updated_activation_scale(
        scales_.output, activation_absmax_scale(y, outputs, qtype_, scale_dtype_), scale_dtype_);
    quantize_dequantize_activation(y, outputs, qtype_, scales_.output);
  }
  void dequantize_rows(std::int64_t first, std::int64_t count, float* out) const override {
    weight_->dequantize_rows(first, count, out);
  }
  std::size_t storage_bytes() const override { return weight_->storage_bytes(); }
  std::string describe() const override { return weight_->describe(); }

  const std::shared_ptr<const Weight>& weight() const { return weight_; }
  const ActivationScales& scales() const { return scales_; }

 private:
  std::shared_ptr<const Weight> weight_;
  DType qtype_;
  DType scale_dtype_;
  mutable ActivationScales scales_;  // updated by every product, as quanto's buffers are
};

}  // namespace

void calibrate_quanto_activations(Model& model, const std::vector<std::string>& paths, DType qtype,
                                  const std::vector<std::vector<std::int32_t>>& windows) {
  const DType scale_dtype = model.config().dtype;
  std::map<std::string, std::shared_ptr<CalibratingWeight>> calibrating;
  for (auto& slot : model.weight_slots()) {
    if (std::find(paths.begin(), paths.end(), slot.path) == paths.end()) continue;
    auto wrapper = std::make_shared<CalibratingWeight>(slot.weight, qtype, scale_dtype);
    slot.weight = wrapper;
    calibrating.emplace(slot.path, std::move(wrapper));
  }
  Progress progress("calibrate activations", static_cast<std::int64_t>(windows.size()));
  for (const auto& window : windows) {
    model.forward(window);
    progress.advance();
  }
  for (auto& slot : model.weight_slots()) {
    const auto found = calibrating.find(slot.path);
    if (found == calibrating.end()) continue;
    slot.weight = std::make_shared<QuantoActivationWeight>(
        found->second->weight(), qtype, scale_dtype, found->second->scales(), slot.path);
  }
}

}  // namespace uq

#include "api/backends/custom_backend.hpp"

#include "io/formats/custom_layout.hpp"
#include "io/formats/layout_writer.hpp"
#include "model/float_weight.hpp"
#include "quant/symmetric_weight.hpp"

namespace uq {

const BackendSpec& CustomBackend::spec() const {
  static const BackendSpec spec{
      "custom",
      "symmetric per output channel: w = scale*q, int8 or packed int4 (fp32 scales)",
      {4, 8},
      {},
      "uq-custom (docs/FORMATS.md)"};
  return spec;
}

std::shared_ptr<Weight> CustomBackend::quantize(const std::string& module_path,
                                                const Weight& weight, int bits,
                                                const UnifiedQuantizationConfig& /*config*/,
                                                std::string& note) const {
  const auto* dense = dynamic_cast<const FloatWeight*>(&weight);
  if (dense == nullptr) {
    note = "already " + weight.describe();
    return nullptr;
  }
  return SymmetricWeight::quantize(dense->bytes().data(), dense->dtype(), dense->out_features(),
                                   dense->in_features(), bits, DType::F32, module_path + ".weight");
}

bool CustomBackend::rows_independent(int /*bits*/,
                                     const UnifiedQuantizationConfig& /*config*/) const {
  return true;
}

std::unique_ptr<LayoutEncoder> CustomBackend::encoder(
    DType /*model_dtype*/, const UnifiedQuantizationConfig& config) const {
  return custom_encoder(config.effective_bits());
}

}  // namespace uq

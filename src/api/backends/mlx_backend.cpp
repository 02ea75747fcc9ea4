#include "api/backends/mlx_backend.hpp"

#include "io/formats/layout_writer.hpp"
#include "io/formats/mlx_layout.hpp"
#include "model/float_weight.hpp"
#include "quant/affine_weight.hpp"

namespace uq {

const BackendSpec& MlxBackend::spec() const {
  static const BackendSpec spec{
      "mlx",
      "affine per group: w = scale*q + bias (scale, bias in the model dtype)",
      {1, 2, 3, 4, 5, 6, 7, 8},
      {32, 64, 128},
      "mlx-lm"};
  return spec;
}

std::shared_ptr<Weight> MlxBackend::quantize(const std::string& module_path, const Weight& weight,
                                             int bits, const UnifiedQuantizationConfig& config,
                                             std::string& note) const {
  const auto* dense = dynamic_cast<const FloatWeight*>(&weight);
  if (dense == nullptr) {
    note = "already " + weight.describe();
    return nullptr;
  }
  if (dense->in_features() % config.group_size != 0) {
    note = "input dimension " + std::to_string(dense->in_features()) +
           " does not divide by group size " + std::to_string(config.group_size);
    return nullptr;
  }
  return AffineWeight::quantize(dense->bytes().data(), dense->dtype(), dense->out_features(),
                                dense->in_features(), bits, config.group_size,
                                module_path + ".weight");
}

bool MlxBackend::rows_independent(int /*bits*/, const UnifiedQuantizationConfig& /*config*/) const {
  return true;
}

std::unique_ptr<LayoutEncoder> MlxBackend::encoder(DType /*model_dtype*/,
                                                   const UnifiedQuantizationConfig& config) const {
  return mlx_encoder(MlxQuantization{config.effective_bits(), config.group_size, {}});
}

}  // namespace uq

#include "api/backends/quanto_backend.hpp"

#include "io/formats/layout_writer.hpp"
#include "io/formats/quanto_layout.hpp"
#include "model/float_weight.hpp"
#include "quant/affine_weight.hpp"
#include "quant/float8_weight.hpp"
#include "quant/quanto_affine.hpp"
#include "quant/symmetric_weight.hpp"

namespace uq {

const BackendSpec& QuantoBackend::spec() const {
  static const BackendSpec spec{"quanto",
                                "qint8 symmetric per channel; qfloat8 (e4m3fn/e5m2) per channel; "
                                "qint4/qint2 affine per group of 128/96/64/32 (scale, shift in "
                                "the model dtype); optional qint8/qfloat8 activations",
                                {2, 4, 8},
                                {},
                                "optimum-quanto state dict + quantization_map.json"};
  return spec;
}

std::shared_ptr<Weight> QuantoBackend::quantize(const std::string& module_path,
                                                const Weight& weight, int bits,
                                                const UnifiedQuantizationConfig& config,
                                                std::string& note) const {
  const auto* dense = dynamic_cast<const FloatWeight*>(&weight);
  if (dense == nullptr) {
    note = "already " + weight.describe();
    return nullptr;
  }
  if (module_path == "model.embed_tokens") {
    note = "optimum-quanto quantizes Linear layers only, not embeddings";
    return nullptr;
  }
  const std::string tensor = module_path + ".weight";
  if (config.quanto_weights != "qint") {
    const DType format = config.quanto_weights == "qfloat8_e5m2" ? DType::F8_E5M2 : DType::F8_E4M3;
    return Float8Weight::quantize(dense->bytes().data(), dense->dtype(), dense->out_features(),
                                  dense->in_features(), format, dense->dtype(), tensor);
  }
  if (bits == 8) {
    // quanto keeps scales in the weight dtype and computes in it.
    return SymmetricWeight::quantize(dense->bytes().data(), dense->dtype(), dense->out_features(),
                                     dense->in_features(), 8, dense->dtype(), tensor);
  }
  return quanto_affine_quantize(dense->bytes().data(), dense->dtype(), dense->out_features(),
                                dense->in_features(), bits, tensor, note);
}

bool QuantoBackend::rows_independent(int /*bits*/,
                                     const UnifiedQuantizationConfig& /*config*/) const {
  // qint4/qint2 pack pairs of groups across the whole matrix.
  return false;
}

int QuantoBackend::interleaved_row_parts(int bits,
                                         const UnifiedQuantizationConfig& /*config*/) const {
  // qint8: a scale per row; qint4/qint2: 8/bits code rows share a byte row,
  // R/2 (R/4) group rows apart (quant/quanto_affine.hpp).
  if (bits == 8) return 1;
  return bits == 2 || bits == 4 ? 8 / bits : 0;
}

std::unique_ptr<LayoutEncoder> QuantoBackend::encoder(
    DType model_dtype, const UnifiedQuantizationConfig& /*config*/) const {
  return quanto_encoder(model_dtype);
}

}  // namespace uq

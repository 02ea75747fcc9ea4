#include "api/backends/bnb_backend.hpp"

#include "core/error.hpp"
#include "io/formats/bnb_layout.hpp"
#include "io/formats/layout_writer.hpp"
#include "model/float_weight.hpp"
#include "quant/bnb4_weight.hpp"
#include "quant/int8_rowwise_weight.hpp"

namespace uq {

const BackendSpec& BnbBackend::spec() const {
  static const BackendSpec spec{
      "bnb",
      "4 bits: NF4/FP4 codes x fp32 absmax per block of group_size (double-quantized absmax); "
      "8 bits: LLM.int8 int8 per row x SCB, outlier inputs (|x| >= 6) in float",
      {4, 8},
      {32, 64, 128, 256, 512, 1024, 2048, 4096},
      "transformers + bitsandbytes"};
  return spec;
}

std::shared_ptr<Weight> BnbBackend::quantize(const std::string& module_path, const Weight& weight,
                                             int bits, const UnifiedQuantizationConfig& config,
                                             std::string& note) const {
  const auto* dense = dynamic_cast<const FloatWeight*>(&weight);
  if (dense == nullptr) {
    note = "already " + weight.describe();
    return nullptr;
  }
  const std::string tensor = module_path + ".weight";
  if (bits == 8) {
    return Int8RowwiseWeight::quantize(dense->bytes().data(), dense->dtype(), dense->out_features(),
                                       dense->in_features(), Int8RowwiseWeight::kDefaultThreshold,
                                       tensor);
  }
  if (bits != 4) fail("bnb backend: bits ", bits, " for '", module_path, "' (supported: 4, 8)");
  const auto type =
      config.bnb_4bit_quant_type == "fp4" ? bnb::FourBitType::FP4 : bnb::FourBitType::NF4;
  return Bnb4Weight::quantize(dense->bytes().data(), dense->dtype(), dense->out_features(),
                              dense->in_features(), type, config.group_size,
                              config.bnb_4bit_use_double_quant, tensor);
}

bool BnbBackend::rows_independent(int /*bits*/, const UnifiedQuantizationConfig& /*config*/) const {
  // 4-bit blocks (and their double-quantized absmax) span the flattened matrix.
  return false;
}

std::unique_ptr<LayoutEncoder> BnbBackend::encoder(
    DType model_dtype, const UnifiedQuantizationConfig& /*config*/) const {
  return bnb_encoder(model_dtype);
}

}  // namespace uq

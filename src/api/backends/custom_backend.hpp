#pragma once
// custom (alias mps): symmetric int8 / packed int4 per output channel, no
// calibration, the native layout of docs/FORMATS.md.
#include "api/backend.hpp"

namespace uq {

class CustomBackend final : public Backend {
 public:
  const BackendSpec& spec() const override;
  std::shared_ptr<Weight> quantize(const std::string& module_path, const Weight& weight, int bits,
                                   const UnifiedQuantizationConfig& config,
                                   std::string& note) const override;
  bool rows_independent(int bits, const UnifiedQuantizationConfig& config) const override;
  std::unique_ptr<LayoutEncoder> encoder(DType model_dtype,
                                         const UnifiedQuantizationConfig& config) const override;
};

}  // namespace uq

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
  void save(const Model& model, const std::filesystem::path& dir,
            const UnifiedQuantizationConfig& config) const override;
};

}  // namespace uq

#pragma once
// quanto: optimum-quanto numerics (qint8 symmetric per channel, qint4/qint2
// affine per group) and its state-dict + quantization-map layout.
#include "api/backend.hpp"

namespace uq {

class QuantoBackend final : public Backend {
 public:
  const BackendSpec& spec() const override;
  std::shared_ptr<Weight> quantize(const std::string& module_path, const Weight& weight, int bits,
                                   const UnifiedQuantizationConfig& config,
                                   std::string& note) const override;
  void save(const Model& model, const std::filesystem::path& dir,
            const UnifiedQuantizationConfig& config) const override;
};

}  // namespace uq

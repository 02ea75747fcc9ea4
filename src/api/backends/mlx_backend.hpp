#pragma once
// mlx: MLX-compatible affine group-wise quantization, the mlx-lm layout.
#include "api/backend.hpp"

namespace uq {

class MlxBackend final : public Backend {
 public:
  const BackendSpec& spec() const override;
  std::shared_ptr<Weight> quantize(const std::string& module_path, const Weight& weight, int bits,
                                   const UnifiedQuantizationConfig& config,
                                   std::string& note) const override;
  void save(const Model& model, const std::filesystem::path& dir,
            const UnifiedQuantizationConfig& config) const override;
};

}  // namespace uq

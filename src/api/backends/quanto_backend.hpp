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
  bool rows_independent(int bits, const UnifiedQuantizationConfig& config) const override;
  int interleaved_row_parts(int bits, const UnifiedQuantizationConfig& config) const override;
  std::unique_ptr<LayoutEncoder> encoder(DType model_dtype,
                                         const UnifiedQuantizationConfig& config) const override;
};

}  // namespace uq

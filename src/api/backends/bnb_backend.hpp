#pragma once
// bnb: bitsandbytes NF4/FP4 blockwise (+ double quantization) at 4 bits and
// LLM.int8 row-wise at 8 bits, in the Hugging Face + bitsandbytes layout.
#include "api/backend.hpp"

namespace uq {

class BnbBackend final : public Backend {
 public:
  const BackendSpec& spec() const override;
  std::shared_ptr<Weight> quantize(const std::string& module_path, const Weight& weight, int bits,
                                   const UnifiedQuantizationConfig& config,
                                   std::string& note) const override;
  bool rows_independent(int bits, const UnifiedQuantizationConfig& config) const override;
  std::unique_ptr<ChunkedModule> chunked_module(
      const std::string& module_path, std::int64_t out, std::int64_t in, int bits,
      const UnifiedQuantizationConfig& config) const override;
  std::unique_ptr<LayoutEncoder> encoder(DType model_dtype,
                                         const UnifiedQuantizationConfig& config) const override;
};

}  // namespace uq

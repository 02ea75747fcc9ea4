#pragma once
// A frozen weight with a LoRA adapter on top, usable wherever a Weight is:
// matmul gives y = W·x + scale·B(A·x). Put in a model's weight slots, it makes
// eval, generate and logits run the adapted model.
#include <memory>

#include "model/weight.hpp"
#include "train/lora_adapter.hpp"

namespace uq {

class LoraWeight final : public Weight {
 public:
  // Throws uq::Error when the adapter's shape does not fit `base`.
  LoraWeight(std::shared_ptr<const Weight> base, std::shared_ptr<LoraAdapter> adapter);

  std::int64_t out_features() const override { return base_->out_features(); }
  std::int64_t in_features() const override { return base_->in_features(); }
  void matmul(const float* x, std::int64_t rows, float* y) const override;
  void matmul_transposed(const float* g, std::int64_t rows, float* x) const override;
  void dequantize_rows(std::int64_t first, std::int64_t count, float* out) const override;
  std::size_t storage_bytes() const override;
  std::string describe() const override;

  const std::shared_ptr<const Weight>& base() const { return base_; }
  // Shared, not copied: a trainer updating it changes what matmul computes.
  const std::shared_ptr<LoraAdapter>& adapter() const { return adapter_; }

 private:
  std::shared_ptr<const Weight> base_;
  std::shared_ptr<LoraAdapter> adapter_;
};

}  // namespace uq

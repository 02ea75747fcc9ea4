#include "train/lora_weight.hpp"

#include <vector>

#include "core/error.hpp"
#include "train/training_ops.hpp"

namespace uq {

LoraWeight::LoraWeight(std::shared_ptr<const Weight> base, std::shared_ptr<LoraAdapter> adapter)
    : base_(std::move(base)), adapter_(std::move(adapter)) {
  if (!base_ || !adapter_) fail("LoraWeight: missing base weight or adapter");
  if (adapter_->in_features != base_->in_features() ||
      adapter_->out_features != base_->out_features()) {
    fail("LoRA adapter of shape [", adapter_->out_features, ", ", adapter_->in_features,
         "] does not fit a weight of shape [", base_->out_features(), ", ", base_->in_features(),
         "]");
  }
}

void LoraWeight::matmul(const float* x, std::int64_t rows, float* y) const {
  base_->matmul(x, rows, y);
  const LoraAdapter& lora = *adapter_;
  std::vector<float> projected(static_cast<std::size_t>(rows * lora.rank));
  // projected = x·Aᵀ [rows, r]; y += scale·projected·Bᵀ.
  train::gemm<float>(false, true, rows, lora.rank, lora.in_features, 1.0f, x, lora.in_features,
                     lora.a.data(), lora.in_features, 0.0f, projected.data(), lora.rank);
  train::gemm<float>(false, true, rows, lora.out_features, lora.rank, lora.scale, projected.data(),
                     lora.rank, lora.b.data(), lora.rank, 1.0f, y, lora.out_features);
}

void LoraWeight::matmul_transposed(const float* g, std::int64_t rows, float* x) const {
  base_->matmul_transposed(g, rows, x);
  const LoraAdapter& lora = *adapter_;
  std::vector<float> projected(static_cast<std::size_t>(rows * lora.rank));
  train::gemm<float>(false, false, rows, lora.rank, lora.out_features, lora.scale, g,
                     lora.out_features, lora.b.data(), lora.rank, 0.0f, projected.data(),
                     lora.rank);
  train::gemm<float>(false, false, rows, lora.in_features, lora.rank, 1.0f, projected.data(),
                     lora.rank, lora.a.data(), lora.in_features, 1.0f, x, lora.in_features);
}

void LoraWeight::dequantize_rows(std::int64_t first, std::int64_t count, float* out) const {
  base_->dequantize_rows(first, count, out);
  const LoraAdapter& lora = *adapter_;
  // rows of W + scale·B·A
  train::gemm<float>(false, false, count, lora.in_features, lora.rank, lora.scale,
                     lora.b.data() + first * lora.rank, lora.rank, lora.a.data(), lora.in_features,
                     1.0f, out, lora.in_features);
}

std::size_t LoraWeight::storage_bytes() const {
  return base_->storage_bytes() + (adapter_->a.size() + adapter_->b.size()) * sizeof(float);
}

std::string LoraWeight::describe() const {
  return base_->describe() + " + lora r" + std::to_string(adapter_->rank);
}

}  // namespace uq

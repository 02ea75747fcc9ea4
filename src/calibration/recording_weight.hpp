#pragma once
// A Weight that shows every input it multiplies to an observer before
// delegating to the weight it wraps. Put in a model's slot, it captures a
// linear layer's real inputs while the decoder runs unchanged.
#include <functional>
#include <memory>
#include <string>

#include "model/weight.hpp"

namespace uq {

class RecordingWeight final : public Weight {
 public:
  // Called with x [rows, in] on each matmul, before the product.
  using Observer = std::function<void(const float* x, std::int64_t rows)>;

  RecordingWeight(std::shared_ptr<Weight> inner, Observer observer)
      : inner_(std::move(inner)), observer_(std::move(observer)) {}

  std::int64_t out_features() const override { return inner_->out_features(); }
  std::int64_t in_features() const override { return inner_->in_features(); }
  void matmul(const float* x, std::int64_t rows, float* y) const override {
    observer_(x, rows);
    inner_->matmul(x, rows, y);
  }
  void dequantize_rows(std::int64_t first, std::int64_t count, float* out) const override {
    inner_->dequantize_rows(first, count, out);
  }
  std::size_t storage_bytes() const override { return inner_->storage_bytes(); }
  std::string describe() const override { return inner_->describe(); }

 private:
  std::shared_ptr<Weight> inner_;
  Observer observer_;
};

}  // namespace uq

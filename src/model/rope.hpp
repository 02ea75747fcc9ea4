#pragma once
// Rotary position embeddings in the Hugging Face "rotate_half" layout: the
// pairs rotated together are (i, i + head_dim/2), not adjacent elements.
#include <cstdint>
#include <vector>

#include "io/hf_config.hpp"

namespace uq {

class Rope {
 public:
  // Inverse frequencies from rope_theta, head_dim and the scaling kind.
  explicit Rope(const ModelConfig& config);

  const std::vector<float>& inverse_frequencies() const { return inverse_frequencies_; }
  // Rotates `rows` rows of `heads` heads (row r is at position first_position + r)
  // in place; x is [rows, heads * head_dim].
  void apply(float* x, std::int64_t rows, std::int64_t heads, std::int64_t first_position) const;

 private:
  std::int64_t head_dim_;
  std::vector<float> inverse_frequencies_;  // head_dim / 2 entries
};

}  // namespace uq

#pragma once
// Causal grouped-query attention over a KV cache, optionally limited to a
// sliding window of the latest keys.
#include <cstdint>
#include <optional>

#include "model/kv_cache.hpp"

namespace uq {

struct AttentionShape {
  std::int64_t heads = 0;
  std::int64_t kv_heads = 0;  // query head h reads key/value head h / (heads / kv_heads)
  std::int64_t head_dim = 0;
  // A query at position p sees keys in (p - window, p]; none means all of [0, p].
  std::optional<std::int64_t> sliding_window;
};

// q is [count, heads * head_dim] for the tokens at positions
// [first_position, first_position + count), whose keys/values `cache` already
// holds for `layer`. Writes softmax(q k^T / sqrt(head_dim)) v into out
// ([count, heads * head_dim]). Multi-threaded over (head, token) pairs.
void causal_attention(const float* q, std::int64_t count, std::int64_t first_position,
                      const KVCache& cache, std::int64_t layer, const AttentionShape& shape,
                      float* out);

}  // namespace uq

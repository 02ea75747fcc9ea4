#include "model/attention.hpp"

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/thread_pool.hpp"

namespace uq {

void causal_attention(const float* q, std::int64_t count, std::int64_t first_position,
                      const KVCache& cache, std::int64_t layer, const AttentionShape& shape,
                      float* out) {
  const std::int64_t head_dim = shape.head_dim;
  const std::int64_t group = shape.heads / shape.kv_heads;
  const std::int64_t row = shape.heads * head_dim;
  const float scale = 1.0f / std::sqrt(static_cast<float>(head_dim));
  const std::int64_t tasks = shape.heads * count;
  parallel_for(0, tasks, 1, [&](std::int64_t lo, std::int64_t hi) {
    std::vector<float> scores;
    for (std::int64_t task = lo; task < hi; ++task) {
      const std::int64_t head = task / count;
      const std::int64_t token = task % count;
      const std::int64_t position = first_position + token;
      const std::int64_t first_key =
          shape.sliding_window ? std::max<std::int64_t>(0, position - *shape.sliding_window + 1) : 0;
      const std::int64_t keys_seen = position + 1 - first_key;
      const float* query = q + token * row + head * head_dim;
      const float* keys = cache.keys(layer, head / group) + first_key * head_dim;
      const float* values = cache.values(layer, head / group) + first_key * head_dim;

      scores.resize(keys_seen);
      float max_score = -INFINITY;
      for (std::int64_t k = 0; k < keys_seen; ++k) {
        const float* key = keys + k * head_dim;
        float dot = 0.0f;
        for (std::int64_t d = 0; d < head_dim; ++d) dot += query[d] * key[d];
        scores[k] = dot * scale;
        max_score = std::max(max_score, scores[k]);
      }
      float total = 0.0f;
      for (auto& score : scores) {
        score = std::exp(score - max_score);
        total += score;
      }
      float* result = out + token * row + head * head_dim;
      std::fill_n(result, head_dim, 0.0f);
      const float inverse_total = 1.0f / total;
      for (std::int64_t k = 0; k < keys_seen; ++k) {
        const float weight = scores[k] * inverse_total;
        const float* value = values + k * head_dim;
        for (std::int64_t d = 0; d < head_dim; ++d) result[d] += weight * value[d];
      }
    }
  });
}

}  // namespace uq

#include "model/attention.hpp"

#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/thread_pool.hpp"

namespace uq {
namespace {

float dot(const float* a, const float* b, std::int64_t n) {
  __m256 acc = _mm256_setzero_ps();
  std::int64_t i = 0;
  for (; i + 8 <= n; i += 8) acc = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), acc);
  const __m128 sum4 = _mm_add_ps(_mm256_castps256_ps128(acc), _mm256_extractf128_ps(acc, 1));
  const __m128 sum2 = _mm_add_ps(sum4, _mm_movehl_ps(sum4, sum4));
  float sum = _mm_cvtss_f32(_mm_add_ss(sum2, _mm_movehdup_ps(sum2)));
  for (; i < n; ++i) sum += a[i] * b[i];
  return sum;
}

// y += alpha * x
void axpy(float alpha, const float* x, float* y, std::int64_t n) {
  const __m256 scale = _mm256_set1_ps(alpha);
  std::int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    _mm256_storeu_ps(y + i, _mm256_fmadd_ps(scale, _mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i)));
  }
  for (; i < n; ++i) y[i] += alpha * x[i];
}

}  // namespace

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
        scores[k] = dot(query, keys + k * head_dim, head_dim) * scale;
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
        axpy(scores[k] * inverse_total, values + k * head_dim, result, head_dim);
      }
    }
  });
}

}  // namespace uq

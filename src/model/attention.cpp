#include "model/attention.hpp"

#include <cblas.h>
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/thread_pool.hpp"
#include "model/blas.hpp"

namespace uq {
namespace {

float dot(const float* a, const float* b, std::int64_t n) {
  __m256 acc = _mm256_setzero_ps();
  std::int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    acc = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), acc);
  const __m128 sum4 = _mm_add_ps(_mm256_castps256_ps128(acc), _mm256_extractf128_ps(acc, 1));
  const __m128 sum2 = _mm_add_ps(sum4, _mm_movehl_ps(sum4, sum4));
  float sum = _mm_cvtss_f32(_mm_add_ss(sum2, _mm_movehdup_ps(sum2)));
  for (; i < n; ++i) sum += a[i] * b[i];
  return sum;
}

// Below this many new tokens the per-token path is faster than sgemm blocks.
constexpr std::int64_t kBlockedMinTokens = 16;
constexpr std::int64_t kQueryBlock = 64;

std::int64_t first_visible_key(const AttentionShape& shape, std::int64_t position) {
  return shape.sliding_window ? std::max<std::int64_t>(0, position - *shape.sliding_window + 1) : 0;
}

void softmax_in_place(float* values, std::int64_t count) {
  const float max_value = *std::max_element(values, values + count);
  float total = 0.0f;
  for (std::int64_t i = 0; i < count; ++i) {
    values[i] = std::exp(values[i] - max_value);
    total += values[i];
  }
  const float inverse_total = 1.0f / total;
  for (std::int64_t i = 0; i < count; ++i) values[i] *= inverse_total;
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

// One query at a time: dot products with the visible keys, softmax, weighted
// sum of values. Best for decoding (one new token per call).
void attention_per_token(const float* q, std::int64_t count, std::int64_t first_position,
                         const KVCache& cache, std::int64_t layer, const AttentionShape& shape,
                         float* out) {
  const std::int64_t head_dim = shape.head_dim;
  const std::int64_t group = shape.heads / shape.kv_heads;
  const std::int64_t row = shape.heads * head_dim;
  const float scale = 1.0f / std::sqrt(static_cast<float>(head_dim));
  // Each (head, token) task reads at most every cached key and value once.
  const std::int64_t work_per_task = 2 * (first_position + count) * head_dim;
  parallel_for(0, shape.heads * count, items_per_task(work_per_task),
               [&](std::int64_t lo, std::int64_t hi) {
                 std::vector<float> scores;
                 for (std::int64_t task = lo; task < hi; ++task) {
                   const std::int64_t head = task / count;
                   const std::int64_t token = task % count;
                   const std::int64_t position = first_position + token;
                   const std::int64_t first_key = first_visible_key(shape, position);
                   const std::int64_t keys_seen = position + 1 - first_key;
                   const float* query = q + token * row + head * head_dim;
                   const float* keys = cache.keys(layer, head / group) + first_key * head_dim;
                   const float* values = cache.values(layer, head / group) + first_key * head_dim;

                   scores.resize(keys_seen);
                   for (std::int64_t k = 0; k < keys_seen; ++k) {
                     scores[k] = dot(query, keys + k * head_dim, head_dim) * scale;
                   }
                   softmax_in_place(scores.data(), keys_seen);
                   float* result = out + token * row + head * head_dim;
                   std::fill_n(result, head_dim, 0.0f);
                   for (std::int64_t k = 0; k < keys_seen; ++k) {
                     axpy(scores[k], values + k * head_dim, result, head_dim);
                   }
                 }
               });
}

// Blocks of queries per head: scores and the weighted sum of values are two
// sgemm calls; keys outside a query's causal (or sliding) range get weight 0.
void attention_blocked(const float* q, std::int64_t count, std::int64_t first_position,
                       const KVCache& cache, std::int64_t layer, const AttentionShape& shape,
                       float* out) {
  use_single_threaded_blas();
  const std::int64_t head_dim = shape.head_dim;
  const std::int64_t group = shape.heads / shape.kv_heads;
  const std::int64_t row = shape.heads * head_dim;
  const float scale = 1.0f / std::sqrt(static_cast<float>(head_dim));
  const std::int64_t blocks = (count + kQueryBlock - 1) / kQueryBlock;
  const std::int64_t work_per_task = 2 * kQueryBlock * (first_position + count) * head_dim;
  parallel_for(
      0, shape.heads * blocks, items_per_task(work_per_task),
      [&](std::int64_t lo, std::int64_t hi) {
        std::vector<float> scores;
        for (std::int64_t task = lo; task < hi; ++task) {
          const std::int64_t head = task / blocks;
          const std::int64_t first_token = (task % blocks) * kQueryBlock;
          const std::int64_t queries = std::min(kQueryBlock, count - first_token);
          const std::int64_t first_key = first_visible_key(shape, first_position + first_token);
          const std::int64_t last_key = first_position + first_token + queries - 1;
          const std::int64_t keys_seen = last_key + 1 - first_key;
          const float* keys = cache.keys(layer, head / group) + first_key * head_dim;
          const float* values = cache.values(layer, head / group) + first_key * head_dim;
          const auto dim = static_cast<blasint>(head_dim);
          const auto m = static_cast<blasint>(queries);
          const auto n = static_cast<blasint>(keys_seen);

          scores.resize(static_cast<std::size_t>(queries * keys_seen));
          cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, n, dim, scale,
                      q + first_token * row + head * head_dim, static_cast<blasint>(row), keys, dim,
                      0.0f, scores.data(), n);
          for (std::int64_t i = 0; i < queries; ++i) {
            const std::int64_t position = first_position + first_token + i;
            const std::int64_t visible_from = first_visible_key(shape, position) - first_key;
            const std::int64_t visible_to = position - first_key;  // inclusive
            float* scores_row = scores.data() + i * keys_seen;
            softmax_in_place(scores_row + visible_from, visible_to + 1 - visible_from);
            std::fill(scores_row, scores_row + visible_from, 0.0f);
            std::fill(scores_row + visible_to + 1, scores_row + keys_seen, 0.0f);
          }
          cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, dim, n, 1.0f, scores.data(), n,
                      values, dim, 0.0f, out + first_token * row + head * head_dim,
                      static_cast<blasint>(row));
        }
      });
}

}  // namespace

void causal_attention(const float* q, std::int64_t count, std::int64_t first_position,
                      const KVCache& cache, std::int64_t layer, const AttentionShape& shape,
                      float* out) {
  if (count >= kBlockedMinTokens) {
    attention_blocked(q, count, first_position, cache, layer, shape, out);
  } else {
    attention_per_token(q, count, first_position, cache, layer, shape, out);
  }
}

}  // namespace uq

#include "model/kv_cache.hpp"

#include <algorithm>
#include <cstring>

#include "core/error.hpp"

namespace uq {

KVCache::KVCache(std::int64_t layers, std::int64_t kv_heads, std::int64_t head_dim)
    : layers_(layers), kv_heads_(kv_heads), head_dim_(head_dim) {}

std::size_t KVCache::offset(std::int64_t layer, std::int64_t head) const {
  return static_cast<std::size_t>(((layer * kv_heads_ + head) * capacity_) * head_dim_);
}

void KVCache::reserve_more(std::int64_t count) {
  const std::int64_t needed = length_ + count;
  if (needed <= capacity_) return;
  // Grow geometrically so token-by-token decoding copies O(n) in total.
  const std::int64_t new_capacity = std::max({needed, 2 * capacity_, std::int64_t{64}});
  const auto new_size = static_cast<std::size_t>(layers_ * kv_heads_ * new_capacity * head_dim_);
  std::vector<float> new_keys(new_size);
  std::vector<float> new_values(new_size);
  const auto stored = static_cast<std::size_t>(length_ * head_dim_);
  for (std::int64_t layer = 0; layer < layers_; ++layer) {
    for (std::int64_t head = 0; head < kv_heads_; ++head) {
      const std::size_t from = offset(layer, head);
      const auto to =
          static_cast<std::size_t>(((layer * kv_heads_ + head) * new_capacity) * head_dim_);
      std::copy_n(keys_.data() + from, stored, new_keys.data() + to);
      std::copy_n(values_.data() + from, stored, new_values.data() + to);
    }
  }
  keys_ = std::move(new_keys);
  values_ = std::move(new_values);
  capacity_ = new_capacity;
}

void KVCache::store(std::int64_t layer, const float* k, const float* v, std::int64_t count) {
  if (length_ + count > capacity_) fail("kv cache: storing ", count, " tokens without room");
  const std::int64_t row = kv_heads_ * head_dim_;
  for (std::int64_t head = 0; head < kv_heads_; ++head) {
    float* key_rows = keys_.data() + offset(layer, head) + length_ * head_dim_;
    float* value_rows = values_.data() + offset(layer, head) + length_ * head_dim_;
    for (std::int64_t t = 0; t < count; ++t) {
      std::memcpy(key_rows + t * head_dim_, k + t * row + head * head_dim_,
                  head_dim_ * sizeof(float));
      std::memcpy(value_rows + t * head_dim_, v + t * row + head * head_dim_,
                  head_dim_ * sizeof(float));
    }
  }
}

void KVCache::advance(std::int64_t count) {
  length_ += count;
}

const float* KVCache::keys(std::int64_t layer, std::int64_t head) const {
  return keys_.data() + offset(layer, head);
}

const float* KVCache::values(std::int64_t layer, std::int64_t head) const {
  return values_.data() + offset(layer, head);
}

}  // namespace uq

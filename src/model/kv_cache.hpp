#pragma once
// Keys and values of the tokens processed so far, per layer and key/value head,
// so that decoding a new token costs one row of work instead of the whole prefix.
#include <cstdint>
#include <vector>

namespace uq {

class KVCache {
 public:
  KVCache(std::int64_t layers, std::int64_t kv_heads, std::int64_t head_dim);

  // Tokens whose keys and values every layer holds.
  std::int64_t length() const { return length_; }
  std::int64_t layers() const { return layers_; }
  // Makes room for `count` more tokens (keeps what is stored).
  void reserve_more(std::int64_t count);
  // Stores keys/values of `count` new tokens of one layer at positions
  // [length(), length() + count); k and v are [count, kv_heads * head_dim].
  void store(std::int64_t layer, const float* k, const float* v, std::int64_t count);
  // Marks the `count` tokens stored in every layer as part of the cache.
  void advance(std::int64_t count);
  void clear() { length_ = 0; }

  // Position-major keys/values of one head: [capacity, head_dim], valid up to
  // the positions stored so far.
  const float* keys(std::int64_t layer, std::int64_t head) const;
  const float* values(std::int64_t layer, std::int64_t head) const;

 private:
  std::size_t offset(std::int64_t layer, std::int64_t head) const;

  std::int64_t layers_;
  std::int64_t kv_heads_;
  std::int64_t head_dim_;
  std::int64_t length_ = 0;
  std::int64_t capacity_ = 0;
  std::vector<float> keys_;  // [layer][head][capacity][head_dim]
  std::vector<float> values_;
};

}  // namespace uq

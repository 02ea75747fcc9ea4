#pragma once
// A weight matrix W of shape [out_features, in_features] in whatever storage a
// backend chose (float, affine-quantized, ...). The decoder only multiplies by
// it and, for embeddings, reads rows; it never needs the whole matrix in float.
#include <cstddef>
#include <cstdint>
#include <string>

namespace uq {

class Weight {
 public:
  virtual ~Weight() = default;

  virtual std::int64_t out_features() const = 0;
  virtual std::int64_t in_features() const = 0;

  // y[r, o] = sum_i x[r, i] * W[o, i] for r < rows. x is [rows, in] and y is
  // [rows, out], both row-major float32. Multi-threaded inside.
  virtual void matmul(const float* x, std::int64_t rows, float* y) const = 0;

  // x[r, i] = sum_o g[r, o] * W[o, i] for r < rows: the product backprop needs
  // (grad_input = grad_output · W). g is [rows, out] and x is [rows, in]. The
  // default dequantizes tiles of rows of W and multiplies them with sgemm, so
  // W is never held whole in float; it is correct for every Weight type.
  virtual void matmul_transposed(const float* g, std::int64_t rows, float* x) const;

  // Writes rows [first, first + count) of W as float32 into out ([count, in]).
  virtual void dequantize_rows(std::int64_t first, std::int64_t count, float* out) const = 0;

  // Bytes the weight occupies in memory (codes + scales + biases, or floats).
  virtual std::size_t storage_bytes() const = 0;

  // A short description such as "f32", "bf16" or "affine b4 g64".
  virtual std::string describe() const = 0;
};

}  // namespace uq

#pragma once
// The integer grid of one storage format, as the calibrated methods see it:
// per group of `group_size()` consecutive columns of a row, w ≈ scale*q + bias
// with integer q in [min_code(), max_code()]. GPTQ, AWQ and HQQ only choose
// codes and (scale, bias); `build` turns their choice into the format's own
// Weight (AffineWeight for mlx and quanto int2/int4, SymmetricWeight for
// quanto int8 and custom), which the existing savers write unchanged.
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/dtype.hpp"

namespace uq {

class Weight;

struct GroupParams {
  float scale = 0.0f;
  float bias = 0.0f;
};

// Codes and parameters chosen for an [out, in] matrix.
struct QuantizedMatrix {
  std::int64_t out = 0;
  std::int64_t in = 0;
  std::int64_t group_size = 0;
  std::vector<std::int16_t> codes;  // [out, in]
  std::vector<GroupParams> params;  // [out, in / group_size]

  QuantizedMatrix(std::int64_t rows, std::int64_t cols, std::int64_t group);
  std::int64_t groups_per_row() const { return in / group_size; }
  GroupParams& param(std::int64_t row, std::int64_t col) {
    return params[static_cast<std::size_t>(row * groups_per_row() + col / group_size)];
  }
  const GroupParams& param(std::int64_t row, std::int64_t col) const {
    return params[static_cast<std::size_t>(row * groups_per_row() + col / group_size)];
  }
  // The float matrix the codes stand for, [out, in].
  std::vector<float> dequantize() const;
};

// Which rounding rule params_for_range follows (the GPU GPTQ re-implements them).
enum class GridFamily { mlx_affine, quanto_affine, symmetric };

class QuantGrid {
 public:
  virtual ~QuantGrid() = default;

  virtual GridFamily family() const = 0;
  // The dtype the format stores scale and bias in (stored() rounds to it).
  virtual DType param_dtype() const = 0;

  std::int64_t group_size() const { return group_size_; }
  int min_code() const { return min_code_; }
  int max_code() const { return max_code_; }
  // False for zero-point free (symmetric) formats, whose bias is always 0.
  bool affine() const { return affine_; }

  // The format's own (scale, bias) for a group whose values span [lo, hi]
  // (round-to-nearest uses min and max; clipping searches pass a narrower
  // range), rounded as the format stores them.
  virtual GroupParams params_for_range(float lo, float hi) const = 0;
  // Arbitrary (scale, bias), e.g. refined by HQQ, rounded as stored (the bias
  // of a symmetric format is dropped).
  virtual GroupParams stored(GroupParams params) const = 0;
  // The format's Weight holding `matrix`. Throws uq::Error naming `tensor`.
  virtual std::unique_ptr<Weight> build(const QuantizedMatrix& matrix,
                                        std::string_view tensor) const = 0;
  virtual std::string describe() const = 0;

  // The nearest code to w on the grid of `params`.
  int code(float w, GroupParams params) const;
  static float value(int code, GroupParams params) {
    return params.scale * static_cast<float>(code) + params.bias;
  }

 protected:
  QuantGrid(std::int64_t group_size, int min_code, int max_code, bool affine)
      : group_size_(group_size), min_code_(min_code), max_code_(max_code), affine_(affine) {}

 private:
  std::int64_t group_size_;
  int min_code_;
  int max_code_;
  bool affine_;
};

// The grid `backend` writes for a weight of `in_features` columns and dtype
// `weight_dtype` at `bits` (config_group_size applies to mlx). nullptr with
// `note` saying why when the backend has no such grid (bnb's codebooks) or
// the shape does not fit it.
std::unique_ptr<QuantGrid> make_grid(std::string_view backend, int bits, int config_group_size,
                                     std::int64_t in_features, DType weight_dtype,
                                     std::string& note);

// Round-to-nearest on `grid`: each group's parameters from its [min, max]
// scaled by clip[row * groups + group] when `clip` is given.
QuantizedMatrix round_to_nearest(const float* weights, std::int64_t out, std::int64_t in,
                                 const QuantGrid& grid, const std::vector<float>* clip = nullptr);

}  // namespace uq

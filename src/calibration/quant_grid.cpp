#include "calibration/quant_grid.hpp"

#include <algorithm>
#include <cmath>

#include "core/error.hpp"
#include "quant/affine.hpp"
#include "quant/affine_weight.hpp"
#include "quant/quanto_affine.hpp"
#include "quant/symmetric_weight.hpp"

namespace uq {
namespace {

std::vector<std::byte> param_bytes(const std::vector<float>& values, DType dtype) {
  std::vector<std::byte> bytes(values.size() * dtype_size(dtype));
  convert_from_f32(values.data(), values.size(), dtype, bytes.data());
  return bytes;
}

// MLX's affine grid (quant/affine.hpp): scale and bias in the weight's dtype.
class MlxAffineGrid final : public QuantGrid {
 public:
  MlxAffineGrid(int bits, std::int64_t group_size, DType param_dtype)
      : QuantGrid(group_size, 0, (1 << bits) - 1, true), bits_(bits), param_dtype_(param_dtype) {}

  GridFamily family() const override { return GridFamily::mlx_affine; }
  DType param_dtype() const override { return param_dtype_; }

  GroupParams params_for_range(float lo, float hi) const override {
    const auto levels = static_cast<float>(max_code());
    if (bits_ == 1) return stored({std::max(hi - lo, 1e-7f), lo});
    float step = std::max((hi - lo) / levels, 1e-7f);
    const bool low_edge = std::fabs(lo) > std::fabs(hi);
    const float edge = low_edge ? lo : hi;
    if (!low_edge) step = -step;
    const float q0 = std::nearbyint(edge / step);
    if (q0 != 0.0f) return stored({edge / q0, edge});
    return stored({step, 0.0f});
  }
  GroupParams stored(GroupParams params) const override {
    return {round_to_dtype(params.scale, param_dtype_), round_to_dtype(params.bias, param_dtype_)};
  }
  std::unique_ptr<Weight> build(const QuantizedMatrix& matrix,
                                std::string_view tensor) const override {
    const std::int64_t words = affine_words_per_row(matrix.in, bits_);
    std::vector<std::uint32_t> packed(static_cast<std::size_t>(matrix.out * words));
    std::vector<std::uint8_t> row(static_cast<std::size_t>(matrix.in));
    for (std::int64_t o = 0; o < matrix.out; ++o) {
      for (std::int64_t i = 0; i < matrix.in; ++i) {
        row[static_cast<std::size_t>(i)] =
            static_cast<std::uint8_t>(matrix.codes[static_cast<std::size_t>(o * matrix.in + i)]);
      }
      pack_codes(row, bits_, packed.data() + o * words);
    }
    std::vector<float> scales, biases;
    for (const auto& params : matrix.params) {
      scales.push_back(params.scale);
      biases.push_back(params.bias);
    }
    return AffineWeight::from_packed(
        matrix.out, matrix.in, bits_, static_cast<int>(matrix.group_size), packed, param_dtype_,
        param_bytes(scales, param_dtype_), param_bytes(biases, param_dtype_), tensor);
  }
  std::string describe() const override {
    return "mlx affine b" + std::to_string(bits_) + " g" + std::to_string(group_size());
  }

 private:
  int bits_;
  DType param_dtype_;
};

// optimum-quanto's qint2/qint4 (quant/quanto_affine.hpp): scale and shift =
// -bias in the weight dtype, groups of quanto_group_size(in).
class QuantoAffineGrid final : public QuantGrid {
 public:
  QuantoAffineGrid(int bits, std::int64_t group_size, DType dtype)
      : QuantGrid(group_size, 0, (1 << bits) - 1, true), bits_(bits), dtype_(dtype) {}

  GridFamily family() const override { return GridFamily::quanto_affine; }
  DType param_dtype() const override { return dtype_; }

  GroupParams params_for_range(float lo, float hi) const override {
    const float range = round_to_dtype(hi - lo, dtype_);
    return stored({range / static_cast<float>(max_code()), lo});
  }
  GroupParams stored(GroupParams params) const override {
    return {round_to_dtype(params.scale, dtype_), round_to_dtype(params.bias, dtype_)};
  }
  std::unique_ptr<Weight> build(const QuantizedMatrix& matrix,
                                std::string_view tensor) const override {
    std::vector<std::uint8_t> codes(matrix.codes.size());
    std::transform(matrix.codes.begin(), matrix.codes.end(), codes.begin(),
                   [](std::int16_t code) { return static_cast<std::uint8_t>(code); });
    std::vector<float> scales, shifts;
    for (const auto& params : matrix.params) {
      scales.push_back(params.scale);
      shifts.push_back(-params.bias);
    }
    return affine_from_quanto(matrix.out, matrix.in, bits_, matrix.group_size, codes, dtype_,
                              param_bytes(scales, dtype_), param_bytes(shifts, dtype_), tensor);
  }
  std::string describe() const override {
    return "quanto affine b" + std::to_string(bits_) + " g" + std::to_string(group_size());
  }

 private:
  int bits_;
  DType dtype_;
};

// Symmetric per output channel (quant/symmetric.hpp): one scale per row.
class SymmetricGrid final : public QuantGrid {
 public:
  SymmetricGrid(int bits, std::int64_t in_features, DType scale_dtype)
      : QuantGrid(in_features, -(1 << (bits - 1)), (1 << (bits - 1)) - 1, false),
        bits_(bits),
        scale_dtype_(scale_dtype) {}

  GridFamily family() const override { return GridFamily::symmetric; }
  DType param_dtype() const override { return scale_dtype_; }

  GroupParams params_for_range(float lo, float hi) const override {
    const float absmax = std::max(std::fabs(lo), std::fabs(hi));
    return stored({absmax / static_cast<float>(max_code()), 0.0f});
  }
  GroupParams stored(GroupParams params) const override {
    return {round_to_dtype(params.scale, scale_dtype_), 0.0f};
  }
  std::unique_ptr<Weight> build(const QuantizedMatrix& matrix,
                                std::string_view tensor) const override {
    const std::int64_t row_bytes = bits_ == 8 ? matrix.in : (matrix.in + 1) / 2;
    std::vector<std::byte> codes(static_cast<std::size_t>(matrix.out * row_bytes));
    for (std::int64_t o = 0; o < matrix.out; ++o) {
      std::byte* row = codes.data() + o * row_bytes;
      for (std::int64_t i = 0; i < matrix.in; ++i) {
        const int code = matrix.codes[static_cast<std::size_t>(o * matrix.in + i)];
        if (bits_ == 8) {
          row[i] =
              static_cast<std::byte>(static_cast<std::uint8_t>(static_cast<std::int8_t>(code)));
        } else {
          row[i / 2] |= static_cast<std::byte>((code + 8) << (4 * (i % 2)));
        }
      }
    }
    std::vector<float> scales;
    for (const auto& params : matrix.params) scales.push_back(params.scale);
    return SymmetricWeight::from_codes(matrix.out, matrix.in, bits_, codes, scale_dtype_,
                                       param_bytes(scales, scale_dtype_), tensor);
  }
  std::string describe() const override {
    return "symmetric int" + std::to_string(bits_) + " per-channel";
  }

 private:
  int bits_;
  DType scale_dtype_;
};

}  // namespace

QuantizedMatrix::QuantizedMatrix(std::int64_t rows, std::int64_t cols, std::int64_t group)
    : out(rows),
      in(cols),
      group_size(group),
      codes(static_cast<std::size_t>(rows * cols)),
      params(static_cast<std::size_t>(rows * (cols / group))) {}

std::vector<float> QuantizedMatrix::dequantize() const {
  std::vector<float> values(codes.size());
  for (std::int64_t o = 0; o < out; ++o) {
    for (std::int64_t i = 0; i < in; ++i) {
      const auto index = static_cast<std::size_t>(o * in + i);
      values[index] = QuantGrid::value(codes[index], param(o, i));
    }
  }
  return values;
}

int QuantGrid::code(float w, GroupParams params) const {
  if (params.scale == 0.0f) return std::clamp(0, min_code_, max_code_);
  const float q = std::nearbyint((w - params.bias) / params.scale);
  return static_cast<int>(
      std::clamp(q, static_cast<float>(min_code_), static_cast<float>(max_code_)));
}

std::unique_ptr<QuantGrid> make_grid(std::string_view backend, int bits, int config_group_size,
                                     std::int64_t in_features, DType weight_dtype,
                                     std::string& note) {
  if (backend == "mlx") {
    if (in_features % config_group_size != 0) {
      note = "input dimension " + std::to_string(in_features) + " does not divide by group size " +
             std::to_string(config_group_size);
      return nullptr;
    }
    return std::make_unique<MlxAffineGrid>(bits, config_group_size,
                                           affine_param_dtype_for(weight_dtype));
  }
  if (backend == "quanto") {
    if (bits == 8) return std::make_unique<SymmetricGrid>(8, in_features, weight_dtype);
    const std::int64_t group = quanto_group_size(in_features);
    if (group % 32 != 0) {
      note = "quanto group of " + std::to_string(group) + " is not a multiple of 32";
      return nullptr;
    }
    return std::make_unique<QuantoAffineGrid>(bits, group, weight_dtype);
  }
  if (backend == "custom") return std::make_unique<SymmetricGrid>(bits, in_features, DType::F32);
  note = "backend '" + std::string(backend) + "' has no group-wise integer grid for calibration";
  return nullptr;
}

QuantizedMatrix round_to_nearest(const float* weights, std::int64_t out, std::int64_t in,
                                 const QuantGrid& grid, const std::vector<float>* clip) {
  QuantizedMatrix result(out, in, grid.group_size());
  const std::int64_t group = grid.group_size();
  for (std::int64_t o = 0; o < out; ++o) {
    for (std::int64_t g = 0; g < in / group; ++g) {
      const float* values = weights + o * in + g * group;
      const auto [lo, hi] = std::minmax_element(values, values + group);
      const float ratio = clip ? (*clip)[static_cast<std::size_t>(o * (in / group) + g)] : 1.0f;
      const GroupParams params = grid.params_for_range(*lo * ratio, *hi * ratio);
      result.params[static_cast<std::size_t>(o * (in / group) + g)] = params;
      for (std::int64_t i = 0; i < group; ++i) {
        result.codes[static_cast<std::size_t>(o * in + g * group + i)] =
            static_cast<std::int16_t>(grid.code(values[i], params));
      }
    }
  }
  return result;
}

}  // namespace uq

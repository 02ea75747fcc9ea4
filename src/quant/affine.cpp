#include "quant/affine.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "core/error.hpp"
#include "core/thread_pool.hpp"

namespace uq {
namespace {

constexpr float kLargest = std::numeric_limits<float>::max();

struct GroupParams {
  float scale;
  float bias;
};

// MLX's rule (mlx/backend/cpu/quantized.cpp, `quantize`), statistics in fp32.
GroupParams affine_group_params(const float* w, int group_size, int bits, float n_bins) {
  // Eight running extremes (group sizes are multiples of 32) let the compiler
  // use vector min/max; for finite values the result is the same in any order
  // (a zero's sign can differ, which no formula below can see).
  constexpr int kLanes = 8;
  float lane_min[kLanes], lane_max[kLanes];
  for (int k = 0; k < kLanes; ++k) lane_min[k] = lane_max[k] = w[k];
  for (int j = kLanes; j < group_size; j += kLanes) {
    for (int k = 0; k < kLanes; ++k) {
      lane_max[k] = std::max(lane_max[k], w[j + k]);
      lane_min[k] = std::min(lane_min[k], w[j + k]);
    }
  }
  float w_min = lane_min[0];
  float w_max = lane_max[0];
  for (int k = 1; k < kLanes; ++k) {
    w_max = std::max(w_max, lane_max[k]);
    w_min = std::min(w_min, lane_min[k]);
  }
  // MLX (>= 0.29) maps 1-bit codes straight onto {min, max}.
  if (bits == 1) return {std::max(w_max - w_min, 1e-7f), w_min};
  const bool min_is_edge = std::abs(w_min) > std::abs(w_max);
  float scale = std::max((w_max - w_min) / n_bins, 1e-7f);
  scale = min_is_edge ? scale : -scale;
  const float edge = min_is_edge ? w_min : w_max;
  const float q0 = std::rint(edge / scale);
  if (q0 != 0.0f) return {edge / q0, edge};
  return {scale, 0.0f};
}

// Codes of one group; restrict: the byte stores cannot alias the weights,
// so the loop vectorizes.
void quantize_group(const float* __restrict w, int group_size, GroupParams params, float n_bins,
                    std::uint8_t* __restrict codes) {
  for (int j = 0; j < group_size; ++j) {
    const float q = std::rint((w[j] - params.bias) / params.scale);
    codes[j] = static_cast<std::uint8_t>(std::clamp(q, 0.0f, n_bins));
  }
}

void store_param(void* params, DType dtype, std::int64_t index, float value) {
  switch (dtype) {
    case DType::BF16:
      static_cast<std::uint16_t*>(params)[index] = f32_to_bf16(value);
      break;
    case DType::F16:
      static_cast<std::uint16_t*>(params)[index] = f32_to_f16(value);
      break;
    default:
      static_cast<float*>(params)[index] = value;
  }
}

}  // namespace

void validate_affine_shape(int bits, int group_size, std::int64_t cols, std::string_view tensor) {
  if (bits < 1 || bits > 8) {
    fail("tensor '", tensor, "': affine quantization supports bits 1 to 8, not ", bits);
  }
  if (group_size < 32 || group_size % 32 != 0) {
    fail("tensor '", tensor, "': group size ", group_size,
         " is not supported (a positive multiple of 32 is required: 32, 64, 128, ...)");
  }
  if (cols <= 0 || cols % group_size != 0) {
    fail("tensor '", tensor, "': group size ", group_size, " does not divide the row length ",
         cols);
  }
}

std::int64_t affine_words_per_row(std::int64_t cols, int bits) {
  return cols / 32 * bits;
}

DType affine_param_dtype_for(DType weight_dtype) {
  switch (weight_dtype) {
    case DType::F16:
    case DType::BF16:
      return weight_dtype;
    default:
      return DType::F32;
  }
}

namespace {

// Bit widths dividing 32: whole words of codes, no code straddles two words
// (a loop the compiler vectorizes; streaming quantization spends its time here).
template <int Bits>
void pack_whole_words(std::span<const std::uint8_t> codes, std::uint32_t* words) {
  constexpr std::size_t kPerWord = 32 / Bits;
  const std::size_t full = codes.size() / kPerWord;
  for (std::size_t w = 0; w < full; ++w) {
    std::uint32_t word = 0;
    for (std::size_t j = 0; j < kPerWord; ++j) {
      word |= static_cast<std::uint32_t>(codes[w * kPerWord + j]) << (j * Bits);
    }
    words[w] = word;
  }
  if (const std::size_t rest = codes.size() - full * kPerWord; rest > 0) {
    std::uint32_t word = 0;
    for (std::size_t j = 0; j < rest; ++j) {
      word |= static_cast<std::uint32_t>(codes[full * kPerWord + j]) << (j * Bits);
    }
    words[full] = word;
  }
}

}  // namespace

void pack_codes(std::span<const std::uint8_t> codes, int bits, std::uint32_t* words) {
  switch (bits) {
    case 2:
      return pack_whole_words<2>(codes, words);
    case 4:
      return pack_whole_words<4>(codes, words);
    case 8:
      return pack_whole_words<8>(codes, words);
    default:
      break;
  }
  const auto total_bits = static_cast<std::int64_t>(codes.size()) * bits;
  std::fill(words, words + (total_bits + 31) / 32, 0u);
  for (std::size_t i = 0; i < codes.size(); ++i) {
    const auto bit = static_cast<std::int64_t>(i) * bits;
    const auto offset = static_cast<unsigned>(bit & 31);
    const std::uint32_t code = codes[i];
    words[bit >> 5] |= code << offset;
    if (offset + static_cast<unsigned>(bits) > 32) words[(bit >> 5) + 1] |= code >> (32 - offset);
  }
}

void affine_quantize(const void* data, DType dtype, std::int64_t rows, std::int64_t cols, int bits,
                     int group_size, DType param_dtype, std::string_view tensor,
                     std::uint32_t* codes, void* scales, void* biases) {
  validate_affine_shape(bits, group_size, cols, tensor);
  if (!is_float(dtype)) fail("tensor '", tensor, "': cannot quantize dtype ", dtype_name(dtype));
  if (param_dtype != DType::F32 && param_dtype != DType::F16 && param_dtype != DType::BF16) {
    fail("tensor '", tensor, "': scales must be F32, F16 or BF16, not ", dtype_name(param_dtype));
  }
  const auto n_bins = static_cast<float>((1 << bits) - 1);
  const auto words_per_row = affine_words_per_row(cols, bits);
  const auto groups_per_row = cols / group_size;
  const auto* bytes = static_cast<const std::byte*>(data);
  const auto element_size = static_cast<std::int64_t>(dtype_size(dtype));

  parallel_for(0, rows, 1, [&](std::int64_t first, std::int64_t last) {
    std::vector<float> row(static_cast<std::size_t>(cols));
    std::vector<std::uint8_t> row_codes(static_cast<std::size_t>(cols));
    for (std::int64_t r = first; r < last; ++r) {
      convert_to_f32(dtype, bytes + r * cols * element_size, static_cast<std::size_t>(cols),
                     row.data());
      // Branch-free scan first (it vectorizes), the culprit's position only on failure.
      bool all_finite = true;
      for (std::int64_t c = 0; c < cols; ++c) all_finite &= std::abs(row[c]) <= kLargest;
      for (std::int64_t c = 0; !all_finite && c < cols; ++c) {
        if (!std::isfinite(row[c])) {
          fail("tensor '", tensor, "': non-finite value ", row[c], " at [", r, ", ", c,
               "] cannot be quantized");
        }
      }
      for (std::int64_t g = 0; g < groups_per_row; ++g) {
        const float* w = row.data() + g * group_size;
        const auto params = affine_group_params(w, group_size, bits, n_bins);
        quantize_group(w, group_size, params, n_bins, row_codes.data() + g * group_size);
        store_param(scales, param_dtype, r * groups_per_row + g, params.scale);
        store_param(biases, param_dtype, r * groups_per_row + g, params.bias);
      }
      pack_codes(row_codes, bits, codes + r * words_per_row);
    }
  });
}

}  // namespace uq

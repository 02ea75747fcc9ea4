#include "quant/quanto_affine.hpp"

#include <algorithm>
#include <cmath>

#include "core/error.hpp"
#include "quant/affine.hpp"
#include "quant/affine_weight.hpp"

namespace uq {
namespace {

void check_bits(int bits, std::string_view tensor) {
  if (bits != 2 && bits != 4) fail("tensor '", tensor, "': quanto packs 2 or 4 bits, not ", bits);
}

std::int64_t packed_rows(std::int64_t rows, int bits) {
  const std::int64_t per_byte = 8 / bits;
  return (rows + per_byte - 1) / per_byte;
}

}  // namespace

std::int64_t quanto_group_size(std::int64_t in_features) {
  if (in_features <= 128) return in_features;
  for (std::int64_t group : {128, 96, 64, 32}) {
    if (in_features % group == 0) return group;
  }
  return in_features;
}

std::vector<std::uint8_t> quanto_pack(std::span<const std::uint8_t> codes, std::int64_t rows,
                                      std::int64_t cols, int bits) {
  check_bits(bits, "quanto_pack");
  const auto stride = packed_rows(rows, bits);
  std::vector<std::uint8_t> packed(static_cast<std::size_t>(stride * cols), 0);
  for (std::int64_t r = 0; r < rows; ++r) {
    const auto shift = bits * (r / stride);
    for (std::int64_t c = 0; c < cols; ++c) {
      packed[(r % stride) * cols + c] |= static_cast<std::uint8_t>(codes[r * cols + c] << shift);
    }
  }
  return packed;
}

std::vector<std::uint8_t> quanto_unpack(std::span<const std::uint8_t> packed, std::int64_t rows,
                                        std::int64_t cols, int bits) {
  check_bits(bits, "quanto_unpack");
  const auto stride = packed_rows(rows, bits);
  if (packed.size() != static_cast<std::size_t>(stride * cols)) {
    fail("quanto_unpack: expected ", stride * cols, " packed bytes, got ", packed.size());
  }
  std::vector<std::uint8_t> codes(static_cast<std::size_t>(rows * cols));
  const auto mask = static_cast<unsigned>((1 << bits) - 1);
  for (std::int64_t r = 0; r < rows; ++r) {
    const auto shift = bits * (r / stride);
    for (std::int64_t c = 0; c < cols; ++c) {
      codes[r * cols + c] =
          static_cast<std::uint8_t>((packed[(r % stride) * cols + c] >> shift) & mask);
    }
  }
  return codes;
}

std::unique_ptr<AffineWeight> quanto_affine_quantize(const void* data, DType dtype,
                                                     std::int64_t out, std::int64_t in, int bits,
                                                     std::string_view tensor, std::string& note) {
  check_bits(bits, tensor);
  if (dtype != DType::F32 && dtype != DType::F16 && dtype != DType::BF16) {
    fail("tensor '", tensor, "': quanto quantizes F32, F16 or BF16 weights, not ",
         dtype_name(dtype));
  }
  const auto group = quanto_group_size(in);
  if (group % 32 != 0) {
    note = "quanto's group for in_features " + std::to_string(in) + " is " + std::to_string(group) +
           ", not a multiple of 32";
    return nullptr;
  }
  const auto groups = out * in / group;
  const float levels = static_cast<float>((1 << bits) - 1);
  std::vector<float> values(static_cast<std::size_t>(out * in));
  convert_to_f32(dtype, data, values.size(), values.data());
  std::vector<std::uint8_t> codes(values.size());
  std::vector<float> scales(static_cast<std::size_t>(groups)), shifts(scales.size());
  for (std::int64_t g = 0; g < groups; ++g) {
    const float* w = values.data() + g * group;
    for (std::int64_t i = 0; i < group; ++i) {
      if (!std::isfinite(w[i])) {
        fail("tensor '", tensor, "': non-finite value at [", (g * group + i) / in, ", ",
             (g * group + i) % in, "]");
      }
    }
    const auto [lo, hi] = std::minmax_element(w, w + group);
    const float scale = round_to_dtype(round_to_dtype(*hi - *lo, dtype) / levels, dtype);
    const float shift = -*lo;
    scales[g] = scale;
    shifts[g] = shift;
    for (std::int64_t i = 0; i < group; ++i) {
      float q = 0.0f;
      if (scale != 0.0f) {
        const float shifted = round_to_dtype(w[i] + shift, dtype);
        q = std::clamp(std::nearbyint(round_to_dtype(shifted / scale, dtype)), 0.0f, levels);
      }
      codes[g * group + i] = static_cast<std::uint8_t>(q);
    }
  }
  std::vector<std::byte> scale_bytes(scales.size() * dtype_size(dtype)),
      shift_bytes(scale_bytes.size());
  convert_from_f32(scales.data(), scales.size(), dtype, scale_bytes.data());
  convert_from_f32(shifts.data(), shifts.size(), dtype, shift_bytes.data());
  return affine_from_quanto(out, in, bits, group, codes, dtype, scale_bytes, shift_bytes, tensor);
}

std::unique_ptr<AffineWeight> affine_from_quanto(
    std::int64_t out, std::int64_t in, int bits, std::int64_t group_size,
    std::span<const std::uint8_t> codes, DType param_dtype, std::span<const std::byte> scale,
    std::span<const std::byte> shift, std::string_view tensor) {
  check_bits(bits, tensor);
  validate_affine_shape(bits, static_cast<int>(group_size), in, tensor);
  if (codes.size() != static_cast<std::size_t>(out * in)) {
    fail("tensor '", tensor, "': expected ", out * in, " codes, got ", codes.size());
  }
  const auto words_per_row = affine_words_per_row(in, bits);
  std::vector<std::uint32_t> words(static_cast<std::size_t>(out * words_per_row));
  for (std::int64_t o = 0; o < out; ++o) {
    pack_codes(codes.subspan(static_cast<std::size_t>(o * in), static_cast<std::size_t>(in)), bits,
               words.data() + o * words_per_row);
  }
  // bias = -shift: a sign flip, exact in every float dtype.
  const auto count = shift.size() / dtype_size(param_dtype);
  std::vector<float> bias(count);
  convert_to_f32(param_dtype, shift.data(), count, bias.data());
  for (float& value : bias) value = -value;
  std::vector<std::byte> bias_bytes(shift.size());
  convert_from_f32(bias.data(), count, param_dtype, bias_bytes.data());
  return AffineWeight::from_packed(out, in, bits, static_cast<int>(group_size), words, param_dtype,
                                   scale, bias_bytes, tensor);
}

std::vector<std::uint8_t> affine_codes(const AffineWeight& weight) {
  const auto out = weight.out_features();
  const auto in = weight.in_features();
  const auto words_per_row = affine_words_per_row(in, weight.bits());
  const auto words = weight.codes();
  std::vector<std::uint8_t> codes(static_cast<std::size_t>(out * in));
  for (std::int64_t o = 0; o < out; ++o) {
    for (std::int64_t i = 0; i < in; ++i) {
      codes[o * in + i] = static_cast<std::uint8_t>(
          unpack_code(words.data() + o * words_per_row, i, weight.bits()));
    }
  }
  return codes;
}

std::vector<std::byte> quanto_shift_bytes(const AffineWeight& weight) {
  const auto dtype = weight.param_dtype();
  const auto count = weight.biases().size() / dtype_size(dtype);
  std::vector<float> shift(count);
  convert_to_f32(dtype, weight.biases().data(), count, shift.data());
  for (float& value : shift) value = -value;
  std::vector<std::byte> bytes(weight.biases().size());
  convert_from_f32(shift.data(), count, dtype, bytes.data());
  return bytes;
}

}  // namespace uq

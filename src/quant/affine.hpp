#pragma once
// MLX-compatible affine (asymmetric, group-wise) quantization of a row-major
// [rows, cols] matrix, and the packing of its integer codes.
//
// Per group of `group_size` consecutive elements of a row, statistics in fp32:
//   n = 2^bits - 1, s = max((max - min) / n, 1e-7)
//   |min| > |max|: s = +s, edge = min;  otherwise s = -s, edge = max
//   q0 = rint(edge / s); q0 != 0: scale = edge / q0, bias = edge;  else scale = s, bias = 0
//   q = clamp(rint((w - bias) / scale), 0, n)      (fp32 scale and bias, as MLX's CPU does)
// then scale and bias are stored rounded to the parameter dtype; w ≈ scale * q + bias.
// For bits = 1, MLX instead uses scale = max(max - min, 1e-7), bias = min.
//
// Packing: each row is one little-endian bit stream, element i at bits
// [i*bits, (i+1)*bits), stored as uint32 words. This is exactly MLX's layout
// for every width (for 3/5/6 bits MLX writes 8 codes into 3/5/6 bytes, which
// is the same bit stream).
//
// Supported: bits 1..8 (MLX itself accepts 1,2,3,4,5,6,8; 7 is our extension)
// and any group size that is a positive multiple of 32 dividing the row (MLX
// accepts 32, 64, 128). A multiple of 32 keeps every group on whole uint32
// words for every bit width, which the kernels rely on.
#include <cstdint>
#include <span>
#include <string_view>

#include "core/dtype.hpp"

namespace uq {

// Throws uq::Error naming `tensor` unless bits/group_size/cols are supported.
void validate_affine_shape(int bits, int group_size, std::int64_t cols, std::string_view tensor);

// uint32 words per packed row of `cols` codes (cols * bits / 32).
std::int64_t affine_words_per_row(std::int64_t cols, int bits);

// The dtype MLX would store scales and biases in for a weight of `dtype`
// (the same for F32/F16/BF16; F32 for any other float dtype).
DType affine_param_dtype_for(DType weight_dtype);

// Quantizes `data` ([rows, cols] of float dtype `dtype`) into `codes`
// ([rows, words_per_row]), `scales` and `biases` ([rows, cols / group_size]
// of `param_dtype`, F32/F16/BF16). NaN or Inf → uq::Error naming `tensor`
// and the element. Multi-threaded over rows.
void affine_quantize(const void* data, DType dtype, std::int64_t rows, std::int64_t cols, int bits,
                     int group_size, DType param_dtype, std::string_view tensor,
                     std::uint32_t* codes, void* scales, void* biases);

// Packs `codes` (each < 2^bits) into the bit stream `words`
// (ceil(count * bits / 32) words, overwritten).
void pack_codes(std::span<const std::uint8_t> codes, int bits, std::uint32_t* words);
// Reads code `index` of a packed bit stream.
inline std::uint32_t unpack_code(const std::uint32_t* words, std::int64_t index, int bits) {
  const std::int64_t bit = index * bits;
  const auto word = bit >> 5;
  const auto offset = static_cast<unsigned>(bit & 31);
  std::uint32_t value = words[word] >> offset;
  if (offset + static_cast<unsigned>(bits) > 32) value |= words[word + 1] << (32 - offset);
  return value & ((1u << bits) - 1u);
}

// Reads element `index` of a scale/bias array of dtype F32/F16/BF16 as float.
inline float load_param(const void* params, DType dtype, std::int64_t index) {
  switch (dtype) {
    case DType::BF16:
      return bf16_to_f32(static_cast<const std::uint16_t*>(params)[index]);
    case DType::F16:
      return f16_to_f32(static_cast<const std::uint16_t*>(params)[index]);
    default:
      return static_cast<const float*>(params)[index];
  }
}

}  // namespace uq

#pragma once
// ggml's tensor storage types ("block formats"): how llama.cpp packs a row of
// weights into fixed-size blocks, with quantizers that produce the same bytes
// as ggml's reference (non-imatrix) quantizers and the matching dequantizers.
// A row of n elements takes n / block_size(type) blocks of type_size(type)
// bytes; block formats are defined per row, so rows are independent.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

#include "core/dtype.hpp"

namespace uq {

// Values are ggml's `enum ggml_type` codes, as stored in GGUF files.
enum class GgmlType : std::uint32_t {
  F32 = 0,
  F16 = 1,
  Q4_0 = 2,
  Q4_1 = 3,
  Q5_0 = 6,
  Q8_0 = 8,
  Q4_K = 12,
  Q6_K = 14,
  BF16 = 30,
};

// Nullopt for codes this library does not read (other ggml types).
std::optional<GgmlType> ggml_type_from_code(std::uint32_t code);
std::optional<GgmlType> parse_ggml_type(std::string_view name);  // "Q4_K", "f16", ...
std::string_view ggml_type_name(GgmlType type);                  // "Q4_K", "F16", ...

// The element dtype of a plain float type (F32, F16, BF16); nullopt for block formats.
std::optional<DType> ggml_element_dtype(GgmlType type);

std::int64_t ggml_block_size(GgmlType type);  // elements per block: 1, 32 or 256
std::size_t ggml_type_size(GgmlType type);    // bytes per block
// Bytes of one row of `elements` (a multiple of the block size).
std::size_t ggml_row_bytes(GgmlType type, std::int64_t elements);

// Packs `count` floats (a multiple of the block size) into `out`
// (ggml_row_bytes(type, count) bytes).
void ggml_quantize_row(GgmlType type, const float* x, std::int64_t count, std::byte* out);
// Unpacks `count` elements from `blocks` into float32.
void ggml_dequantize_row(GgmlType type, const std::byte* blocks, std::int64_t count, float* out);
// sum_i dequantized(blocks)[i] * x[i] over `count` elements, without
// materialising the row: the inner loop of the GEMV kernels.
float ggml_dot_row(GgmlType type, const std::byte* blocks, const float* x, std::int64_t count);

}  // namespace uq

#pragma once
// What the per-output-channel formats (symmetric int8/int4, float8) share: a
// row's absolute maximum when quantizing, and their [out] scales kept as
// float32 in memory and as F32, F16 or BF16 on disk.
#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include "core/dtype.hpp"

namespace uq {

// Converts row `row` of the [*, in] matrix `data` (float dtype `dtype`) into
// `out` (in floats) and returns max |value|. Throws uq::Error naming `tensor`
// and the element's [row, column] for a non-finite value.
float load_row_absmax(const void* data, DType dtype, std::int64_t row, std::int64_t in, float* out,
                      std::string_view tensor);

// Throws uq::Error naming `tensor` unless `dtype` is F32, F16 or BF16.
void check_scale_dtype(DType dtype, std::string_view tensor);

// `out` scales stored as bytes of `dtype`, as float32. Throws uq::Error naming
// `tensor` for a wrong count or a non-finite scale.
std::vector<float> read_channel_scales(std::span<const std::byte> bytes, DType dtype,
                                       std::int64_t out, std::string_view tensor);

// The scales as bytes of `dtype`, for saving.
std::vector<std::byte> channel_scale_bytes(const std::vector<float>& scales, DType dtype);

}  // namespace uq
